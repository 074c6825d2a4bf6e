// The real CLI reports what `kmod load|unload` did, and reporting never changes the outcome or the exit code.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { makeEnv } from '../worker/fixtures.js';
import { FakeApiServer, forbiddenMessage } from '../helpers/fake-apiserver.js';

const NODE = 'node-cli';

async function setup(t: Test) {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  const api = await FakeApiServer.start({ token: 'cli-token-do-not-log' });
  t.teardown(async () => {
    await api.close();
    await env.cleanup();
  });
  const node = api.seed({ resource: 'nodes' }, { metadata: { name: NODE } });
  const kubeconfig = await api.writeKubeconfig(join(env.work, 'kubeconfig'));
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello' } });
  const report = { KUBECONFIG: kubeconfig, NODE_NAME: NODE };
  return { env, api, node, cfg, report };
}

t.test('kmod load / unload report ModuleLoaded / ModuleUnloaded; --module-namespace/--module-name set the identity', async (t) => {
  const { env, api, node, cfg, report } = await setup(t);
  const load = await env.cli(['kmod', 'load', cfg], report);
  t.equal(load.code, 0, 'load ok', { stderr: load.stderr });
  const unload = await env.cli(['--module-namespace', 'gpu', '--module-name', 'hello-module', 'kmod', 'unload', cfg], report);
  t.equal(unload.code, 0);
  const evs = api.objects('events', { namespace: 'default' });
  t.same(evs.map((e) => [e.reason, e.type, e.message, e.metadata.annotations.module]).sort(), [
    ['ModuleLoaded', 'Normal', 'Module kmm-ops/kmm_hello loaded into the kernel', 'kmm-ops/kmm_hello'],
    ['ModuleUnloaded', 'Normal', 'Module gpu/hello-module unloaded from the kernel', 'gpu/hello-module'],
  ]);
  for (const e of evs) t.same(e.involvedObject, { apiVersion: 'v1', kind: 'Node', name: NODE, uid: node.metadata.uid });
  t.notMatch(load.stderr + unload.stderr, 'cli-token-do-not-log');

  const again = await env.cli(['kmod', 'load', cfg], report);
  t.equal(again.code, 0);
  const loaded = api.objects('events').filter((e) => e.reason === 'ModuleLoaded');
  t.equal(loaded.length, 1, 'a second identical load: still one object');
  t.equal(loaded[0]!.count, 2, '...with count 2');
});

t.test('a failed load reports ModuleLoadFailed (Warning) with the one-line cause; exit stays 1', async (t) => {
  const { env, api, cfg, report } = await setup(t);
  const r = await env.cli(['kmod', 'load', cfg], { ...report, RECORDING_MODPROBE_FAIL: 'kmm_hello' });
  t.equal(r.code, 1);
  const [ev] = api.objects('events');
  t.equal(ev?.reason, 'ModuleLoadFailed');
  t.equal(ev?.type, 'Warning');
  t.equal(ev?.message, r.errors[0], 'the event message is the one-line cause printed');
  t.match(ev?.message, /kmm_hello/);
});

t.test('API down, hanging, or RBAC missing: the kernel operation still succeeds (exit 0), a warning says why, in bounded time', async (t) => {
  const { env, api, cfg, report } = await setup(t);
  api.fail({ method: 'POST', status: 403, message: forbiddenMessage('create', 'events', { namespace: 'default' }) });
  const forbidden = await env.cli(['kmod', 'load', cfg], report);
  t.equal(forbidden.code, 0);
  t.match(forbidden.stderr, /permission denied: not allowed to \\"create\\" events in namespace \\"default\\"/);

  api.clearFaults();
  api.fail({ status: 'stall' });
  const hanging = await env.cli(['kmod', 'unload', cfg], { ...report, KMM_REPORT_TIMEOUT: '1.5' });
  t.equal(hanging.code, 0);
  // measured inside the process (log times), not the whole CLI run: the machine may be busy
  const lines = hanging.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string });
  const done = lines.find((l) => /module kmm-ops\/kmm_hello unloaded/.test(l.msg));
  const warned = lines.find((l) => /could not report ModuleUnloaded/.test(l.msg));
  const took = warned!.time - done!.time;
  t.ok(took >= 1000 && took < 3500, `reporting gave up within KMM_REPORT_TIMEOUT=1.5s: ${took} ms`);
  t.match(hanging.stderr, /could not report ModuleUnloaded on Node node-cli/);
  await api.close();

  const down = await env.cli(['kmod', 'load', cfg], report);
  t.equal(down.code, 0);
  t.match(down.stderr, /could not report ModuleLoaded on Node node-cli: .*ECONNREFUSED/);
  t.same(await env.host.loadedModules(), ['kmm_hello']);
});

t.test('--report off and KMM_REPORT=off send nothing', async (t) => {
  const { env, api, cfg, report } = await setup(t);
  t.equal((await env.cli(['--report', 'off', 'kmod', 'load', cfg], report)).code, 0);
  t.equal((await env.cli(['kmod', 'unload', cfg], { ...report, KMM_REPORT: 'off' })).code, 0);
  t.equal(api.requests.length, 0);
  t.equal((await env.cli(['kmod', 'load', cfg], report)).code, 0);
  t.equal(api.objects('events').length, 1, 'and auto does report');
});
