// runTool: how modprobe, modinfo and depmod are run (their output line by line, exit codes, signals, a missing
// program, an interrupted run), against real programs (sh, sleep).
import t from 'tap';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from '../../src/host/runners.js';
import type { Logger } from '../../src/log.js';

function recordingLog() {
  const lines: Array<{ level: string; tool: unknown; stream: unknown; msg: string }> = [];
  const at = (level: string) => (o: { tool?: unknown; stream?: unknown }, msg: string) => lines.push({ level, tool: o.tool, stream: o.stream, msg });
  return { log: { info: at('info'), debug: at('debug'), warn: at('warn'), error: at('error') } as unknown as Logger, lines };
}

t.test('every line of stdout and stderr, CRLF or not, the last one without a newline; the exit code', async (t) => {
  const { log, lines } = recordingLog();
  const r = await runTool('sh', ['-c', 'printf "one\\r\\ntwo\\n"; printf "err\\n" >&2; sleep 0.05; printf "last"; exit 3'], { log, tool: 'modprobe' });
  t.equal(r.exitCode, 3);
  t.same([...r.lines].sort(), ['err', 'last', 'one', 'two']);
  t.same(lines.filter((l) => l.stream === 'stdout').map((l) => l.msg), ['one', 'two', 'last'], 'stdout lines in order');
  t.same(lines.map((l) => [l.level, l.tool]), lines.map(() => ['info', 'modprobe']));
  const quiet = recordingLog();
  const q = await runTool('sh', ['-c', 'echo 1A2B'], { log: quiet.log, tool: 'modinfo', quiet: true });
  t.same([q.exitCode, q.lines, quiet.lines], [0, ['1A2B'], []], 'quiet: lines kept, none logged');
  const debug = recordingLog();
  await runTool('sh', ['-c', 'echo warning >&2'], { log: debug.log, tool: 'depmod', level: 'debug' });
  t.same(debug.lines.map((l) => [l.level, l.stream, l.msg]), [['debug', 'stderr', 'warning']]);
});

t.test('the tool runs with LC_ALL=C, the rest of the environment as given', async (t) => {
  process.env.KMM_RUN_TOOL_TEST = 'kept';
  const r = await runTool('sh', ['-c', 'echo "$LC_ALL $KMM_RUN_TOOL_TEST"'], { log: recordingLog().log, tool: 'modprobe', quiet: true });
  delete process.env.KMM_RUN_TOOL_TEST;
  t.same(r.lines, ['C kept']);
});

t.test('a program killed by a signal is exit 128 with a line saying so', async (t) => {
  const r = await runTool('sh', ['-c', 'echo before; kill -KILL $$'], { log: recordingLog().log, tool: 'modprobe', quiet: true });
  t.same(r, { exitCode: 128, lines: ['before', 'killed by SIGKILL'] });
});

t.test('a program that cannot start is one OperationError naming the tool and the path', async (t) => {
  await t.rejects(runTool('/nonexistent/modprobe', [], { log: recordingLog().log, tool: 'modprobe' }),
    { name: 'OperationError', message: "modprobe: cannot run '/nonexistent/modprobe': not found" });
  const dir = t.testdir({ 'not-executable': 'echo hi\n' });
  const notExecutable = join(dir, 'not-executable');
  await chmod(notExecutable, 0o644);
  await t.rejects(runTool(notExecutable, [], { log: recordingLog().log, tool: 'depmod' }),
    { name: 'OperationError', message: `depmod: cannot run '${notExecutable}': EACCES` });
});

t.test('an abort stops the program and says the tool was interrupted', async (t) => {
  const ac = new AbortController();
  const started = performance.now();
  const run = runTool('sleep', ['30'], { log: recordingLog().log, tool: 'modprobe', signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  await t.rejects(run, { name: 'OperationError', message: 'modprobe was interrupted' });
  t.ok(performance.now() - started < 10_000, 'sleep 30 did not run to its end');
  const pre = new AbortController();
  pre.abort();
  await t.rejects(runTool('sleep', ['30'], { log: recordingLog().log, tool: 'depmod', signal: pre.signal }), { message: 'depmod was interrupted' });
});
