/**
 * Log lines as a host admin sees them: text in a pipe and under journald, pretty on a terminal, JSON in a pod,
 * and --log-format over all of them; secrets redacted in each.
 */
import t from 'tap';
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inPipe, onTerminal, underJournald, plain, userEnv } from './run-cli.js';

const MISSING = '/nonexistent/kmm/config.yaml';

t.test('in a pipe: one text line, level and message first, key=value after', async (t) => {
  const r = await inPipe(['kmod', 'load', MISSING]);
  t.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, r.stderr);
  t.match(lines[0], /^ERROR .*nonexistent\/kmm\/config\.yaml.* exitCode=2 time=\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  t.notMatch(r.stderr, /^\{/m, 'no JSON');
});

t.test('under journald: syslog priority prefix, no timestamp (journald stamps)', async (t) => {
  const r = await underJournald(['kmod', 'load', MISSING]);
  t.equal(r.code, 2);
  t.match(r.stderr.trim(), /^<3>ERROR .*config\.yaml.* exitCode=2$/);
});

t.test('a JOURNAL_STREAM inherited while stderr is elsewhere is not the journal', async (t) => {
  const r = await inPipe(['kmod', 'load', MISSING], { JOURNAL_STREAM: '1:2' });
  t.match(r.stderr, /^ERROR /);
});

t.test('on a terminal: pretty, with colour and the level name', async (t) => {
  const r = await onTerminal(['kmod', 'load', MISSING]);
  t.equal(r.code, 2);
  t.match(r.screen, /\x1b\[/, 'coloured');
  t.match(plain(r.screen), /\[\d\d:\d\d:\d\d\.\d{3}\] ERROR: .*config\.yaml/);
});

t.test('in a pod: JSON lines', async (t) => {
  const r = await inPipe(['kmod', 'load', MISSING], { KUBERNETES_SERVICE_HOST: '10.0.0.1' });
  const o = JSON.parse(r.stderr.trim().split('\n')[0]!) as { level: number; msg: string; exitCode: number };
  t.equal(o.level, 50);
  t.equal(o.exitCode, 2);
});

t.test('--log-format and KMM_LOG_FORMAT override the context', async (t) => {
  t.match((await inPipe(['--log-format', 'json', 'kmod', 'load', MISSING])).stderr, /^\{"level":50/);
  t.match((await inPipe(['--log-format', 'text', 'kmod', 'load', MISSING], { KUBERNETES_SERVICE_HOST: 'x' })).stderr, /^ERROR /);
  t.match(plain((await onTerminal(['--log-format', 'text', 'kmod', 'load', MISSING])).screen), /^ERROR /);
  t.match((await inPipe(['kmod', 'load', MISSING], { KMM_LOG_FORMAT: 'pretty' })).stderr, /ERROR: /);
  const bad = await inPipe(['--log-format', 'xml', 'version']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /json, pretty, text/);
});

t.test('secrets are redacted in every format', async (t) => {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/log.js');
  for (const format of ['text', 'json', 'pretty']) {
    const script = `const { createLogger } = await import(${JSON.stringify(dist)});
      const log = await createLogger({ format: '${format}' });
      log.info({ registry: 'r.example', auth: { password: 'hunter2', token: 'tok-123' }, password: 'p4ss' }, 'credentials used');`;
    const r = await execa(process.execPath, ['--input-type=module', '-e', script], { env: userEnv(), extendEnv: false, reject: false });
    t.equal(r.exitCode, 0, String(r.stderr));
    t.match(String(r.stderr), /credentials used/, format);
    t.notMatch(String(r.stderr), /hunter2|tok-123|p4ss/, `${format}: no secret`);
    t.match(String(r.stderr), /\[redacted\]/, `${format}: redaction visible`);
  }
});
