/**
 * Issue 14, row SIG: a stop signal ends a blocked process within a few seconds. The blocked step here is a
 * read of the node's kernel release that never returns (the host root's osrelease is a FIFO nobody writes):
 * the flow cannot see the abort, so the CLI must end the process itself, with the signal's exit code and one
 * line saying so. A running host step is still waited for (test/daemon: the second SIGTERM during an unload).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { constants, open, rm, type FileHandle } from 'node:fs/promises';
import { makeEnv } from '../worker/fixtures.js';

async function blockedLoad(t: Test) {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const osrelease = env.host.path('/proc/sys/kernel/osrelease');
  await rm(osrelease, { force: true });
  await execa('mkfifo', [osrelease]);
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/hello:v1', modprobe: { moduleName: 'kmm_hello' } });
  const proc = env.spawn(['kmod', 'load', cfg], { KMM_STOP_GRACE_SECONDS: '3' });
  // wait until it is in the blocking step: a non-blocking open of the write end succeeds only once a reader
  // is there; keep that end open and silent, so its read blocks for good
  let writer: FileHandle | undefined;
  for (let i = 0; i < 600 && !writer; i++) {
    writer = await open(osrelease, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
    if (!writer) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(writer, 'the load is blocked reading the node kernel release');
  t.teardown(() => writer?.close());
  await new Promise((r) => setTimeout(r, 300));
  return { env, proc };
}

const lines = (stderr: string) =>
  stderr.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as { level: number; msg: string }];
    } catch {
      return [];
    }
  });

t.test('SIG: SIGTERM ends a process blocked in a step within the grace period', async (t) => {
  const { env, proc } = await blockedLoad(t);
  const sent = Date.now();
  proc.kill('SIGTERM');
  const r = await proc;
  const ms = Date.now() - sent;
  // ended by SIGTERM's default action (status 143 for a shell or the kubelet)
  t.ok(r.exitCode === 143 || r.signal === 'SIGTERM', 'ended as by SIGTERM', { exitCode: r.exitCode, signal: r.signal, stderr: String(r.stderr).slice(0, 2000) });
  t.ok(ms < 10_000, `ended ${ms} ms after SIGTERM (grace 3 s)`);
  const errors = lines(String(r.stderr)).filter((l) => l.level >= 50);
  t.equal(errors.length, 1, 'one error line');
  t.match(errors[0]?.msg, /^interrupted by SIGTERM: the command did not stop within 3s; exiting without waiting for it$/);
  t.same(await env.argv(), [], 'modprobe never ran');
});

t.test('SIG: a second signal ends a blocked process at once', async (t) => {
  const { proc } = await blockedLoad(t);
  proc.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  const sent = Date.now();
  proc.kill('SIGINT');
  const r = await proc;
  const ms = Date.now() - sent;
  t.ok(r.exitCode === 130 || r.signal === 'SIGINT', 'ended as by SIGINT', { exitCode: r.exitCode, signal: r.signal, stderr: String(r.stderr).slice(0, 2000) });
  t.ok(ms < 2_500, `ended ${ms} ms after the second signal`);
  t.match(String(r.stderr), /interrupted by SIGINT: second signal; exiting without waiting for it/);
});
