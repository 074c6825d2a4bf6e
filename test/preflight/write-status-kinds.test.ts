/**
 * `preflight --write-status` writes to whichever preflight kind the cluster serves, found by discovery:
 * upstream KMM's PreflightValidation (kmm.sigs.x-k8s.io/v1beta2, plural preflightvalidations) or OpenShift's
 * PreflightValidationOCP. Against the strict fake API server.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FakeApiServer, type ResourceDef } from '../helpers/fake-apiserver.js';
import { fakeKo, K, moduleCR, publish, runCli, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const GROUP = 'kmm.sigs.x-k8s.io';
const PV: ResourceDef = { group: GROUP, version: 'v1beta2', resource: 'preflightvalidations', kind: 'PreflightValidation', namespaced: false, subresources: ['status'] };
const PVO: ResourceDef = { group: GROUP, version: 'v1beta2', resource: 'preflightvalidationsocp', kind: 'PreflightValidationOCP', namespaced: false, subresources: ['status'] };
const MODULES: ResourceDef = { group: GROUP, version: 'v1beta1', resource: 'modules', kind: 'Module', namespaced: true, subresources: ['status'] };

const work = await tmpDir('write-status-kinds');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const reg = await testRegistry(t);
await publish(reg, work, [`kmod/good:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]);
const moduleFile = await writeYaml(path.join(work, 'module.yaml'), [
  moduleCR('from-file', { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }, { namespace: 'dev' }),
]);

async function cluster(served: ResourceDef[], seedIn: ResourceDef[]) {
  const api = await FakeApiServer.start({ resources: [MODULES, ...served] });
  t.teardown(() => api.close());
  for (const def of seedIn) {
    api.seed({ group: def.group, version: def.version, resource: def.resource }, {
      apiVersion: `${GROUP}/v1beta2`, kind: def.kind, metadata: { name: 'pf' }, spec: { kernelVersion: K },
    });
  }
  const kubeconfig = await api.writeKubeconfig(path.join(work, `kubeconfig-${Math.random().toString(36).slice(2)}`));
  return { api, env: { KUBECONFIG: kubeconfig } };
}

const statusPatches = (api: FakeApiServer) => api.requests.filter((q) => q.method === 'PATCH').map((q) => q.path);
const names = (api: FakeApiServer, def: ResourceDef) =>
  (api.objects(def.resource, { group: def.group, version: def.version })[0]?.status?.modules ?? []).map((m: { namespace: string; name: string }) => `${m.namespace}/${m.name}`);

t.test('upstream KMM: only PreflightValidation is served; the status is written there', async (t) => {
  const { api, env } = await cluster([PV], [PV]);
  const r = await runCli(['preflight', '--module', moduleFile, '--write-status', 'pf'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(statusPatches(api), [`/apis/${GROUP}/v1beta2/preflightvalidations/pf/status`]);
  t.same(names(api, PV), ['dev/from-file']);
  t.match(r.stderr, /status written to PreflightValidation pf/);
});

t.test('OpenShift: only PreflightValidationOCP is served; the status is written there', async (t) => {
  const { api, env } = await cluster([PVO], [PVO]);
  const r = await runCli(['preflight', '--module', moduleFile, '--write-status', 'pf'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(statusPatches(api), [`/apis/${GROUP}/v1beta2/preflightvalidationsocp/pf/status`]);
  t.same(names(api, PVO), ['dev/from-file']);
});

t.test('both kinds served: the one that holds the named object', async (t) => {
  const { api, env } = await cluster([PV, PVO], [PVO]);
  const r = await runCli(['preflight', '--module', moduleFile, '--write-status', 'pf'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(statusPatches(api), [`/apis/${GROUP}/v1beta2/preflightvalidationsocp/pf/status`]);
});

t.test('the kernel comes from the PreflightValidation; mistakes name the kind (exit 2, nothing written)', async (t) => {
  const { api, env } = await cluster([PV], [PV]);
  const clash = await runCli(['preflight', '--module', moduleFile, '--kernel', '6.1.0-28-amd64', '--write-status', 'pf'], env);
  t.equal(clash.code, 2);
  t.match(clash.stderr, new RegExp(`--kernel says kernel 6\\.1\\.0-28-amd64 but PreflightValidation pf says ${K.replaceAll('.', '\\.')}`));
  const missing = await runCli(['preflight', '--module', moduleFile, '--write-status', 'nope'], env);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--write-status: PreflightValidation nope not found/);
  const none = await cluster([], []);
  const noKmm = await runCli(['preflight', '--module', moduleFile, '--kernel', K, '--write-status', 'pf'], none.env);
  t.equal(noKmm.code, 2);
  t.match(noKmm.stderr, /--write-status: the cluster serves neither PreflightValidation nor PreflightValidationOCP/);
  t.same(statusPatches(api), []);
  t.same(statusPatches(none.api), []);
});
