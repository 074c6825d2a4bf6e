/**
 * src/daemon/reconciler.ts in-process: each `pass()` against fake ports (test/helpers/worker-ports.ts), the
 * journal of host changes, modprobe runs and reports showing what one pass does.
 */
import t from 'tap';
import { rm } from 'node:fs/promises';
import { parseModuleConfig, type ModuleConfig } from '../../src/config/module-config.js';
import { silentLogger } from '../../src/log.js';
import { OperationError } from '../../src/errors.js';
import { ModuleReconciler } from '../../src/daemon/reconciler.js';
import { makeHostRoot } from '../helpers/host-root.js';
import { fakePorts, makeKmodsTree } from '../helpers/worker-ports.js';
import { ensureTestKmods } from '../kmods/kmods.js';

const { kver } = await ensureTestKmods();
const configWith = (parameters: string[]): ModuleConfig => parseModuleConfig(
  `kernelVersion: ${kver}\ncontainerImage: registry.example/kmm:1\n` +
    `modprobe: {moduleName: kmm_hello, parameters: ${JSON.stringify(parameters)}}\n`,
  'test config',
);

async function setUp(t: { teardown(fn: () => unknown): void }) {
  const host = await makeHostRoot({ kver });
  t.teardown(host.cleanup);
  const tree = await makeKmodsTree(t);
  const journal: string[] = [];
  const stop = new AbortController();
  const prefetched: ModuleConfig[] = [];
  const modprobeFails = { now: false };
  const reconciler = new ModuleReconciler({
    configPath: 'config.yaml',
    firmwarePath: undefined,
    checkIntervalMs: 1000,
    maxBackoffMs: 10_000,
    log: silentLogger(),
    stop: stop.signal,
    wire: async () => {
      const ports = fakePorts(host, tree, journal);
      const modprobe = ports.modprobe;
      return { ...ports, modprobe: { run: (argv) => (modprobeFails.now ? Promise.reject(new OperationError('modprobe failed')) : modprobe.run(argv)) } };
    },
    prefetch: async (config) => void prefetched.push(config),
  }, configWith(['a=1']));
  const take = () => journal.splice(0).map((l) => l.replace(tree, '<kmods>'));
  return { host, reconciler, take, stop, prefetched, modprobeFails };
}

t.test('a pass loads the wanted config once; a pass with the module live does nothing', async (t) => {
  const { reconciler, take, prefetched } = await setUp(t);
  t.equal(reconciler.notReadyReason(), 'loading');
  await reconciler.pass();
  t.same(take(), ['modprobe -v -d <kmods> kmm_hello a=1', 'report ModuleLoaded']);
  t.equal(reconciler.notReadyReason(), null, 'ready');
  t.equal(prefetched.length, 1, 'the other kernels are prefetched after the first load');
  await reconciler.pass();
  t.same(take(), [], 'nothing to do');
  t.equal(prefetched.length, 1, 'prefetched once per config');
});

t.test('a module that left the kernel is loaded again by the next pass', async (t) => {
  const { host, reconciler, take } = await setUp(t);
  await reconciler.pass();
  take();
  await rm(host.sysModule('kmm_hello'), { recursive: true });
  await reconciler.pass();
  t.same(take(), ['modprobe -v -d <kmods> kmm_hello a=1', 'report ModuleLoaded']);
});

t.test('a changed config: the pass unloads the applied one, then loads the wanted one', async (t) => {
  const { reconciler, take } = await setUp(t);
  await reconciler.pass();
  take();
  reconciler.want(configWith(['a=2']));
  t.equal(reconciler.notReadyReason(), 'config changed; reloading');
  await reconciler.pass();
  t.same(take(), [
    'modprobe -r -v -d <kmods> kmm_hello',
    'report ModuleUnloaded',
    'modprobe -v -d <kmods> kmm_hello a=2',
    'report ModuleLoaded',
  ]);
});

t.test('a failing pass is retried with backoff; shutdown unloads what was applied', async (t) => {
  const { reconciler, take, modprobeFails } = await setUp(t);
  modprobeFails.now = true;
  await reconciler.kick();
  t.equal(reconciler.notReadyReason(), 'last attempt failed: modprobe failed');
  t.notOk(reconciler.due(Date.now()), 'not before the backoff');
  t.ok(reconciler.due(Date.now() + 1000), 'due after checkIntervalMs');
  t.same(take(), ['report ModuleLoadFailed']);
  modprobeFails.now = false;
  await reconciler.kick();
  t.equal(reconciler.notReadyReason(), null, 'the retry loaded it');
  take();
  await reconciler.settle();
  await reconciler.unloadAtShutdown();
  t.same(take(), ['modprobe -r -v -d <kmods> kmm_hello', 'report ModuleUnloaded']);
});
