import t from 'tap';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { OperationError, UsageError } from '../../src/errors.js';
import { DEFAULT_REBOOT_COMMAND, parseRebootCommand, runRebootCommand } from '../../src/day1/reboot.js';

const silent = pino({ level: 'silent' });

t.test('the command is split on spaces', async (t) => {
  t.same(parseRebootCommand(DEFAULT_REBOOT_COMMAND), ['systemctl', 'reboot']);
  t.same(parseRebootCommand('  nsenter --target=1  --mount -- systemctl reboot '), ['nsenter', '--target=1', '--mount', '--', 'systemctl', 'reboot']);
  t.throws(() => parseRebootCommand('   '), UsageError);
});

t.test('runs once, with exactly its argv, without a shell', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kmm-reboot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const recorder = join(dir, 'reboot');
  const log = join(dir, 'calls');
  await writeFile(recorder, `#!/bin/sh\nfor a in "$@"; do printf '[%s]' "$a"; done >> ${log}\necho >> ${log}\n`);
  await chmod(recorder, 0o755);
  const marker = join(dir, 'injected');
  // shell syntax stays literal arguments: nothing interprets ';' or '$'
  await runRebootCommand(parseRebootCommand(`${recorder} now ; touch ${marker} $HOME`), silent);
  t.equal(await readFile(log, 'utf8'), `[now][;][touch][${marker}][$HOME]\n`, 'one call, argv verbatim');
  await t.rejects(stat(marker), 'no shell ran the injected command');
});

t.test('a failing reboot command is an operation failure naming it', async (t) => {
  const err = await runRebootCommand(['false'], silent).catch((e: unknown) => e);
  t.type(err, OperationError);
  t.match((err as Error).message, /reboot command 'false' exited with code 1/);
  const missing = await runRebootCommand(['/nonexistent/reboot-now'], silent).catch((e: unknown) => e);
  t.type(missing, OperationError);
  t.match((missing as Error).message, /\/nonexistent\/reboot-now/);
});
