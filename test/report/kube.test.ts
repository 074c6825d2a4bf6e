import t from 'tap';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PatchStrategy } from '@kubernetes/client-node';
import { apiStatus, callOptions, describeApiError, kubeClients, loadKubeConfig, SERVICE_ACCOUNT_DIR } from '../../src/report/kube.js';
import { FakeApiServer } from '../helpers/fake-apiserver.js';

const TOKEN = 'tok-3f9a1c-secret';

t.test('client-node against the fake API server: kubeconfig, TLS, bearer token, core and custom objects', async (t) => {
  const api = await FakeApiServer.start({
    tls: true,
    token: TOKEN,
    resources: [{ group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', resource: 'modules', kind: 'Module', namespaced: true, subresources: ['status'] }],
  });
  t.teardown(() => api.close());
  const dir = await mkdtemp(join(tmpdir(), 'kube-'));
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  const loaded = loadKubeConfig({ env: { KUBECONFIG: kubeconfig } });
  t.equal(loaded?.source, 'kubeconfig');
  const { core, customObjects, server } = kubeClients(loaded!);
  t.equal(server, api.url);
  const opts = () => callOptions({ timeoutMs: 2000 });

  api.seed({ resource: 'nodes' }, { metadata: { name: 'node-a' } });
  const node = await core.readNode({ name: 'node-a' }, opts());
  t.match(node.metadata?.uid, /^[0-9a-f-]{36}$/);
  t.equal(api.requests.at(-1)?.authorization, `Bearer ${TOKEN}`);

  const ev = {
    metadata: { name: 'node-a.x1', namespace: 'default' },
    involvedObject: { apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: node.metadata!.uid },
    reason: 'ModuleLoaded', type: 'Normal', message: 'hello', count: 1,
  };
  await core.createNamespacedEvent({ namespace: 'default', body: ev }, opts());
  const conflict = await core.createNamespacedEvent({ namespace: 'default', body: ev }, opts()).catch((e: unknown) => e);
  t.equal(apiStatus(conflict), 409, 'a taken name is 409 AlreadyExists');
  t.match(describeApiError(conflict), /^HTTP 409 AlreadyExists: events "node-a.x1" already exists$/);
  t.notMatch(describeApiError(conflict), TOKEN);

  const merged = await core.patchNamespacedEvent({ namespace: 'default', name: 'node-a.x1', body: { count: 2 } },
    callOptions({ timeoutMs: 2000, contentType: PatchStrategy.MergePatch }));
  t.equal(merged.count, 2);
  t.equal(api.requests.at(-1)?.contentType, 'application/merge-patch+json');
  const jp = await core.patchNamespacedEvent({ namespace: 'default', name: 'node-a.x1', body: [{ op: 'test', path: '/count', value: 2 }, { op: 'replace', path: '/count', value: 3 }] },
    callOptions({ timeoutMs: 2000, contentType: PatchStrategy.JsonPatch }));
  t.equal(jp.count, 3);
  const failedTest = await core.patchNamespacedEvent({ namespace: 'default', name: 'node-a.x1', body: [{ op: 'test', path: '/count', value: 2 }] },
    callOptions({ timeoutMs: 2000, contentType: PatchStrategy.JsonPatch })).catch((e: unknown) => e);
  t.equal(apiStatus(failedTest), 422, 'a failed JSON-patch test is 422');

  const list = await core.listEventForAllNamespaces({ fieldSelector: 'involvedObject.name=node-a,involvedObject.kind=Node,reason=ModuleLoaded' }, opts());
  t.equal(list.items.length, 1);
  const none = await core.listEventForAllNamespaces({ fieldSelector: 'involvedObject.name=node-b' }, opts());
  t.equal(none.items.length, 0);
  const bad = await core.listEventForAllNamespaces({ fieldSelector: 'spec.bogus=1' }, opts()).catch((e: unknown) => e);
  t.equal(apiStatus(bad), 400, 'an unsupported field label is 400');

  const invalid = await core.createNamespacedEvent({ namespace: 'kube-public', body: { ...ev, metadata: { name: 'y', namespace: 'kube-public' } } }, opts()).catch((e: unknown) => e);
  t.equal(apiStatus(invalid), 422, 'an Event on a Node outside "default" is rejected as the apiserver does');

  // a custom resource with a status subresource, as preflight uses
  api.seed({ group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', resource: 'modules' }, {
    apiVersion: 'kmm.sigs.x-k8s.io/v1beta1', kind: 'Module', metadata: { name: 'm1', namespace: 'ns1', labels: { team: 'a' } }, spec: { x: 1 },
  });
  const mods = (await customObjects.listClusterCustomObject({ group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', plural: 'modules', labelSelector: 'team in (a,b)' }, opts())) as { items: unknown[] };
  t.equal(mods.items.length, 1);
  await customObjects.patchNamespacedCustomObjectStatus({ group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', namespace: 'ns1', plural: 'modules', name: 'm1', body: { status: { ok: true }, spec: { x: 2 } } },
    callOptions({ timeoutMs: 2000, contentType: PatchStrategy.MergePatch }));
  const [m1] = api.objects('modules', { group: 'kmm.sigs.x-k8s.io', version: 'v1beta1' });
  t.same(m1?.status, { ok: true }, 'the status subresource writes status');
  t.same(m1?.spec, { x: 1 }, '...and nothing else');
});

t.test('a wrong token is 401; a stalled server is cut off by the call time limit', async (t) => {
  const api = await FakeApiServer.start({ token: TOKEN });
  t.teardown(() => api.close());
  const dir = await mkdtemp(join(tmpdir(), 'kube-'));
  const { core } = kubeClients(loadKubeConfig({ env: { KUBECONFIG: await api.writeKubeconfig(join(dir, 'kc'), { token: 'wrong' }) } })!);
  const err = await core.readNode({ name: 'n' }, callOptions({ timeoutMs: 2000 })).catch((e: unknown) => e);
  t.equal(apiStatus(err), 401);

  const { core: ok } = kubeClients(loadKubeConfig({ env: { KUBECONFIG: await api.writeKubeconfig(join(dir, 'kc2')) } })!);
  api.fail({ path: '/api/v1/nodes/n', status: 'stall' });
  const t0 = Date.now();
  const stalled = await ok.readNode({ name: 'n' }, callOptions({ timeoutMs: 300 })).catch((e: unknown) => e);
  t.ok(Date.now() - t0 < 2000, 'gave up within the limit');
  t.equal(apiStatus(stalled), undefined);
  t.equal(describeApiError(stalled), 'no answer in time');
});

t.test('in-cluster credentials: service-account token, CA and the KUBERNETES_SERVICE_* environment', async (t) => {
  const api = await FakeApiServer.start({ tls: true, token: TOKEN });
  t.teardown(() => api.close());
  const root = await mkdtemp(join(tmpdir(), 'sa-'));
  await mkdir(root + SERVICE_ACCOUNT_DIR, { recursive: true });
  await writeFile(join(root + SERVICE_ACCOUNT_DIR, 'token'), TOKEN);
  await writeFile(join(root + SERVICE_ACCOUNT_DIR, 'ca.crt'), api.caPem!);
  await writeFile(join(root + SERVICE_ACCOUNT_DIR, 'namespace'), 'kmm-operator-system');
  const port = new URL(api.url).port;
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
  process.env.KUBERNETES_SERVICE_PORT = port;
  t.equal(loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, inClusterRoot: join(root, 'nope') }), undefined,
    'no token file: no credentials');
  const loaded = loadKubeConfig({ env: process.env.KUBECONFIG ? { ...process.env, KUBECONFIG: '' } : process.env, inClusterRoot: root });
  t.equal(loaded?.source, 'in-cluster');
  api.seed({ resource: 'nodes' }, { metadata: { name: 'node-b' } });
  const node = await kubeClients(loaded!).core.readNode({ name: 'node-b' }, callOptions({ timeoutMs: 2000 }));
  t.equal(node.metadata?.name, 'node-b');
  t.equal(api.requests.at(-1)?.authorization, `Bearer ${TOKEN}`);
  t.equal(loadKubeConfig({ env: {} }), undefined, 'nothing configured: no reporting');
});
