import t, { type Test } from 'tap';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { get, makeDaemonEnv, until, untilReady } from './fixtures.js';

const exists = (p: string) => stat(p).then(() => true, () => false);
const cfg = (kver: string, moduleName: string, more: object = {}) => ({
  kernelVersion: kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName, ...more },
});

/** A daemon whose config loads kmm_hello, once it is ready; torn down with the test. */
async function readyHelloDaemon(t: Test) {
  const d = await makeDaemonEnv(['kmm_hello']);
  t.teardown(d.cleanup);
  await d.volume.write(cfg(d.env.kmods.kver, 'kmm_hello'));
  const daemon = await d.start();
  await untilReady(daemon);
  return { d, daemon };
}

t.test('run: loads, serves /healthz and /readyz, reports, and on SIGTERM unloads and exits 0', async (t) => {
  const d = await makeDaemonEnv(['kmm_fw'], { 'kmm/fw.bin': 'firmware-bytes' });
  t.teardown(d.cleanup);
  await d.volume.write(cfg(d.env.kmods.kver, 'kmm_fw', { firmwarePath: '/firmware' }));
  const daemon = await d.start(['--firmware-path', '/var/lib/firmware']);
  t.match((await get(`${daemon.healthUrl}/healthz`)).status, 200);
  await untilReady(daemon);
  t.equal((await readFile(join(d.env.host.sysModule('kmm_fw'), 'initstate'), 'utf8')).trim(), 'live');
  t.equal(await readFile(d.env.host.path('/var/lib/firmware/kmm/fw.bin'), 'utf8'), 'firmware-bytes', 'firmware on the host');
  t.equal((await get(`${daemon.healthUrl}/nope`)).status, 404);
  await until(() => d.api.objects('events').some((e) => e.reason === 'ModuleLoaded'), 'ModuleLoaded event');

  daemon.proc.kill('SIGTERM');
  const r = await daemon.exit;
  t.equal(r.code, 0, 'exit 0 after SIGTERM', { stderr: r.stderr });
  t.same(await d.env.host.loadedModules(), [], 'module unloaded');
  t.notOk(await exists(d.env.host.path('/var/lib/firmware/kmm/fw.bin')), 'firmware removed');
  const reasons = d.api.objects('events').map((e) => e.reason).sort();
  t.same(reasons, ['ModuleLoaded', 'ModuleUnloaded']);
  t.equal(d.api.objects('events').find((e) => e.reason === 'ModuleUnloaded')?.message, 'Module kmm-ops/kmm_fw unloaded from the kernel');
  await t.rejects(get(`${daemon.healthUrl}/healthz`), 'health server closed');
});

t.test('run: a downward-API ..data swap unloads the old config and loads the new one', async (t) => {
  const d = await makeDaemonEnv(['kmm_hello', 'kmm_standalone']);
  t.teardown(d.cleanup);
  const kver = d.env.kmods.kver;
  await d.volume.write(cfg(kver, 'kmm_hello'));
  // a long check interval: only the directory watch can notice the swap in time
  const daemon = await d.start(['--check-interval', '60']);
  await untilReady(daemon);
  t.same(await d.env.host.loadedModules(), ['kmm_hello']);

  await d.volume.write(cfg(kver, 'kmm_standalone'));
  await daemon.waitFor((l) => l.msg === 'config file changed');
  await until(async () => JSON.stringify(await d.env.host.loadedModules()) === '["kmm_standalone"]', 'new module loaded, old gone');
  await untilReady(daemon, 'ready again');
  const root = join(d.env.shared, 'opt');
  t.same(await d.env.argv(), [['-v', '-d', root, 'kmm_hello'], ['-r', '-v', '-d', root, 'kmm_hello'], ['-v', '-d', root, 'kmm_standalone']],
    'load A, unload A, load B — in that order');
  const events = d.api.objects('events').map((e) => `${e.reason} ${e.metadata.annotations.module}`).sort();
  t.same(events, ['ModuleLoaded kmm-ops/kmm_hello', 'ModuleLoaded kmm-ops/kmm_standalone', 'ModuleUnloaded kmm-ops/kmm_hello']);

  // an invalid update keeps the running module
  await d.volume.write({ kernelVersion: kver, modprobe: { moduleName: 'kmm_hello' } });
  await daemon.waitFor((l) => l.level === 50 && /changed but is invalid, keeping the current module: .*containerImage/.test(l.msg));
  t.same(await d.env.host.loadedModules(), ['kmm_standalone']);
  t.equal((await get(`${daemon.healthUrl}/readyz`)).status, 200);

  daemon.proc.kill('SIGINT');
  t.equal((await daemon.exit).code, 0, 'exit 0 after SIGINT');
  t.same(await d.env.host.loadedModules(), []);
});

t.test('run: a module that vanishes from the kernel is loaded again and reported', async (t) => {
  const { d, daemon } = await readyHelloDaemon(t);
  const root = join(d.env.shared, 'opt');
  // someone runs modprobe -r on the node: the (recording) kernel drops /sys/module/kmm_hello
  await execa(recordingModprobePath, ['-r', '-d', root, 'kmm_hello'], { env: recordingModprobeEnv(d.env.host.root, join(d.env.work, 'other.log')) });
  t.same(await d.env.host.loadedModules(), []);
  await daemon.waitFor((l) => /no longer live in the kernel; loading it again/.test(l.msg));
  await until(async () => JSON.stringify(await d.env.host.loadedModules()) === '["kmm_hello"]', 'loaded again');
  await until(() => d.api.objects('events').find((e) => e.reason === 'ModuleLoaded')?.count === 2, 'ModuleLoaded count 2');
  t.equal(d.api.objects('events').length, 1, 'one Event object, count 2');
  t.equal(d.api.requests.filter((q) => q.method === 'GET' && q.path === '/api/v1/nodes/node-7').length, 1, "the Node's uid was read once for both loads");
  daemon.proc.kill('SIGTERM');
  t.equal((await daemon.exit).code, 0);
});

t.test('run: SIGTERM during the load, then a second SIGTERM during the unload: nothing left half-removed', async (t) => {
  const d = await makeDaemonEnv(['kmm_fw'], { 'kmm/fw.bin': 'fw', 'kmm/sub/other.bin': 'fw2' });
  t.teardown(d.cleanup);
  await d.volume.write(cfg(d.env.kmods.kver, 'kmm_fw', { firmwarePath: '/firmware' }));
  const marker = join(d.env.work, 'unload-started');
  const daemon = await d.start(['--modprobe', d.slowModprobe], { SLOW_LOAD: '2', SLOW_UNLOAD: '2', SLOW_MARKER: marker });
  // the module is in the kernel, modprobe has not returned yet
  await until(async () => (await d.env.argv()).length === 1 && (await d.env.host.loadedModules()).includes('kmm_fw'), 'modprobe inserted');
  t.equal((await get(`${daemon.healthUrl}/readyz`)).status, 503, 'not ready while loading');
  daemon.proc.kill('SIGTERM');
  // the unload's modprobe -r has started (and sleeps before removing anything): signal again right now
  await until(() => exists(marker), 'modprobe -r started');
  t.same((await d.env.argv()).length, 1, 'nothing removed yet');
  daemon.proc.kill('SIGTERM');
  const r = await daemon.exit;
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  t.ok(daemon.lines.some((l) => /second signal received/.test(l.msg)), 'the second signal was seen');
  t.same(await d.env.host.loadedModules(), [], 'module removed');
  t.notOk(await exists(d.env.host.path('/var/lib/firmware/kmm/fw.bin')), 'firmware removed');
  t.notOk(await exists(d.env.host.path('/var/lib/firmware/kmm/sub/other.bin')), 'all of it');
  t.same((await d.env.argv()).map((a) => a[0]), ['-v', '-r'], 'one load, one unload');
  // modprobe is never killed midway (the flows stop between steps): the load finishes, then the unload runs
  t.same(d.api.objects('events').map((e) => e.reason).sort(), ['ModuleLoaded', 'ModuleUnloaded']);
});

t.test('run: SIGTERM while the module is in use → the unload fails, exit 1 naming the holder', async (t) => {
  const { d, daemon } = await readyHelloDaemon(t);
  // another module now holds it
  await writeFile(join(d.env.host.sysModule('kmm_hello'), 'refcnt'), '1\n');
  await mkdir(join(d.env.host.sysModule('kmm_hello'), 'holders'), { recursive: true });
  await writeFile(join(d.env.host.sysModule('kmm_hello'), 'holders', 'other_mod'), '');
  daemon.proc.kill('SIGTERM');
  const r = await daemon.exit;
  t.equal(r.code, 1, 'exit 1: the unload failed');
  t.ok(daemon.lines.some((l) => l.level === 50 && /other_mod/.test(l.msg)), 'the message names the holder');
  t.same(await d.env.host.loadedModules(), ['kmm_hello'], 'nothing forced out');
  t.ok(d.api.objects('events').some((e) => e.reason === 'ModuleUnloadFailed'), 'reported');
});

t.test('run: a failing load is retried with backoff, reported each time, and /readyz says why', async (t) => {
  const d = await makeDaemonEnv(['kmm_hello']);
  t.teardown(d.cleanup);
  await d.volume.write(cfg(d.env.kmods.kver, 'kmm_hello'));
  const daemon = await d.start([], { RECORDING_MODPROBE_FAIL: 'kmm_hello' });
  await until(() => d.api.objects('events').find((e) => e.reason === 'ModuleLoadFailed')?.count >= 2, 'failed twice, one Event with count 2');
  const ready = await get(`${daemon.healthUrl}/readyz`);
  t.equal(ready.status, 503);
  t.match(ready.body, /not ready: last attempt failed: .*kmm_hello/);
  t.equal((await get(`${daemon.healthUrl}/healthz`)).status, 200, 'still live: the kubelet need not restart it');
  const retries = daemon.lines.filter((l) => typeof l.retryInMs === 'number').map((l) => l.retryInMs as number);
  t.ok(retries.length >= 2 && retries[1]! > retries[0]!, `backoff grows: ${retries.join(', ')} ms`);
  daemon.proc.kill('SIGTERM');
  t.equal((await daemon.exit).code, 0);
  t.same(await d.env.host.loadedModules(), []);
});

t.test('run: bad command line or config → exit 2 before anything is touched', async (t) => {
  const d = await makeDaemonEnv(['kmm_hello']);
  t.teardown(d.cleanup);
  await d.volume.write({ kernelVersion: d.env.kmods.kver, modprobe: { moduleName: 'kmm_hello' } });
  const report = { KUBECONFIG: d.kubeconfig, NODE_NAME: 'node-7' };
  const bad = await d.env.cli(['run', d.volume.configPath, '--health-addr', '127.0.0.1:0'], report);
  t.equal(bad.code, 2);
  t.match(bad.errors.join('\n'), /containerImage/);
  const addr = await d.env.cli(['run', d.volume.configPath, '--health-addr', 'localhost'], report);
  t.equal(addr.code, 2);
  t.match(addr.errors.join('\n'), /--health-addr must be HOST:PORT/);
  t.same(await d.env.argv(), [], 'no modprobe ran');
  t.equal(d.api.requests.length, 0, 'nothing reported');
});

t.test('run --dry-run prints the load plan once and exits 0, touching nothing', async (t) => {
  const d = await makeDaemonEnv(['kmm_hello']);
  t.teardown(d.cleanup);
  await d.volume.write(cfg(d.env.kmods.kver, 'kmm_hello'));
  const r = await d.env.cli(['--dry-run', 'run', d.volume.configPath, '--health-addr', '127.0.0.1:0'], { KUBECONFIG: d.kubeconfig, NODE_NAME: 'node-7' });
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  t.match(r.stdout, /kmm_hello/, 'the plan names the module');
  t.same(await d.env.argv(), [], 'no modprobe ran');
  t.same(await d.env.host.loadedModules(), []);
  t.equal(d.api.requests.length, 0, 'nothing reported');
});
