// A load in the shape of the worker pod KMM creates (internal/pod/workerpodmanager.go): the shared emptyDir is
// mounted READ-ONLY at /tmp, the kmods come without modules.dep, and neither NODE_NAME nor TMPDIR is set. Run
// for real in a mount namespace of its own (unshare -m), with the shared dir bind-mounted read-only over /tmp.
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cliPath, makeEnv, repoRoot, type Env } from '../worker/fixtures.js';
import { recordingModprobePath } from '../helpers/recording-modprobe.js';

const exists = (p: string) => stat(p).then(() => true, () => false);

interface Shaped {
  code: number;
  stderr: string;
  lines: { level: number; msg: string }[];
}

/**
 * Runs `kmm-worker kmod <verb> <cfg>` as KMM's pod does (no --shared-dir: the default /tmp), with `readOnly`
 * extra paths made read-only too. Only PATH and the recording modprobe's variables are in the environment.
 */
async function runInPodShape(env: Env, verb: string, cfg: string, readOnly: string[] = []): Promise<Shaped> {
  const remounts = ['/tmp', ...readOnly].map((p) => `mount --bind "${p === '/tmp' ? '$SHARED' : p}" ${p} && mount -o remount,bind,ro ${p}`);
  const script = [
    'set -e',
    'mount --make-rprivate /',
    ...remounts,
    `exec "$NODE" "$CLI" --host-root "$HOST_ROOT" --modprobe "$RECORDER" kmod ${verb} "$CFG"`,
  ].join('\n');
  const r = await execa('unshare', ['-m', 'sh', '-c', script], {
    reject: false,
    extendEnv: false,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin:/usr/sbin:/sbin',
      KMM_LOG_LEVEL: 'info',
      KMM_LOG_FORMAT: 'json', // the lines are read as JSON, as a pod's log pipeline reads them
      SHARED: env.shared,
      NODE: process.execPath,
      CLI: cliPath,
      HOST_ROOT: env.host.root,
      RECORDER: recordingModprobePath,
      CFG: cfg,
      RECORDING_MODPROBE_HOST_ROOT: env.host.root,
      RECORDING_MODPROBE_LOG: env.logFile,
    },
    timeout: 60_000,
  });
  const lines = String(r.stderr)
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { level: number; msg: string }];
      } catch {
        return [];
      }
    });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr), lines };
}

/** Test dirs outside /tmp: the bind mount hides /tmp's own contents from the worker. */
async function podEnv(t: Test): Promise<Env> {
  const saved = process.env.TMPDIR;
  await mkdir(join(repoRoot, '.tap'), { recursive: true });
  const base = await mkdtemp(join(repoRoot, '.tap', 'kmm-pod-shape-'));
  process.env.TMPDIR = base;
  try {
    const env = await makeEnv({ modules: ['kmm_hello'], depmod: false });
    t.teardown(async () => {
      await env.cleanup();
      await rm(base, { recursive: true, force: true });
    });
    return env;
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

t.test('KMM pod shape: read-only /tmp, no modules.dep, no NODE_NAME, no TMPDIR: the load works and says Events are off', async (t) => {
  const env = await podEnv(t);
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello' } });
  const varTmpBefore = await readdir('/var/tmp');
  const load = await runInPodShape(env, 'load', cfg);
  t.equal(load.code, 0, 'load exits 0', { stderr: load.stderr });
  t.same(await env.host.loadedModules(), ['kmm_hello']);
  const [argv] = await env.argv();
  const modulesRoot = argv?.[argv.indexOf('-d') + 1];
  t.match(modulesRoot, /^\/var\/tmp\/kmm-worker-kmods-/, 'the scratch copy went to /var/tmp, the first writable place');
  t.notOk(await exists(modulesRoot!), 'and is gone');
  t.same(await readdir('/var/tmp'), varTmpBefore, 'nothing left in /var/tmp');
  t.notOk(await exists(join(env.shared, 'opt/lib/modules', env.kmods.kver, 'modules.dep')), 'the read-only shared dir was not written');
  const off = load.lines.filter((l) => /Events are off/.test(l.msg));
  t.equal(off.length, 1, 'one line says Events are off');
  t.equal(off[0]?.level, 30, '...at info level');
  t.match(off[0]?.msg, /no node name.*NODE_NAME.*spec\.nodeName/, '...why, and how to turn them on');
  t.notOk(load.lines.some((l) => l.level >= 40), 'no warning or error', { stderr: load.stderr });

  const unload = await runInPodShape(env, 'unload', cfg);
  t.equal(unload.code, 0, 'unload exits 0', { stderr: unload.stderr });
  t.same(await env.host.loadedModules(), []);
});

t.test('KMM pod shape with nothing writable for temporary files: exit 1, one line that says so', async (t) => {
  const env = await podEnv(t);
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello' } });
  const r = await runInPodShape(env, 'load', cfg, ['/var/tmp', '/dev/shm']);
  t.equal(r.code, 1, 'exit 1', { stderr: r.stderr });
  const errors = r.lines.filter((l) => l.level >= 50).map((l) => l.msg);
  t.equal(errors.length, 1, 'one error line');
  t.match(errors[0], /^no writable place for temporary files \(\/tmp: read-only file system; \/var\/tmp: read-only file system; \/dev\/shm: read-only file system\); set TMPDIR/);
  t.same(await env.argv(), [], 'modprobe never ran');
});
