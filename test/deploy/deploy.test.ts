// deploy/ manifests and the Containerfile: what can be checked without a cluster or a container engine.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { parseModuleConfig } from '../../src/config/module-config.js';
import { parseHealthAddr } from '../../src/daemon/health.js';
import { FakeApiServer } from '../helpers/fake-apiserver.js';
import { checkSchema } from './schema.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const deployDir = join(repo, 'deploy');
const files = readdirSync(deployDir).filter((f) => f.endsWith('.yaml')).sort();
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
const docs: { file: string; obj: Obj }[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(deployDir, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { file, obj: d.toJS() as Obj };
  }),
);
const find = (kind: string, name?: string) => docs.find((d) => d.obj.kind === kind && (!name || d.obj.metadata.name === name))?.obj;

t.test('deploy/ has the RBAC, the worker Pod and the DaemonSet', async (t) => {
  t.same(files, ['daemonset.yaml', 'namespace.yaml', 'rbac.yaml', 'worker-pod.yaml']);
  t.same(docs.map((d) => d.obj.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'Pod', 'ServiceAccount', 'ServiceAccount']);
});

t.test('every manifest passes kubectl apply --dry-run=client against the (fake) API server', async (t) => {
  const api = await FakeApiServer.start({ tls: true, token: 'deploy-test' });
  t.teardown(() => api.close());
  const kubeconfig = await api.writeKubeconfig(join(await mkdtemp(join(tmpdir(), 'deploy-')), 'kubeconfig'));
  for (const file of files) {
    const r = await run('kubectl', ['apply', '--dry-run=client', '--validate=false', '-f', join(deployDir, file)], { env: { ...process.env, KUBECONFIG: kubeconfig } });
    const expected = docs.filter((d) => d.file === file).length;
    const created = r.stdout.trim().split('\n').filter((l) => / created \(dry run\)$/.test(l));
    t.equal(created.length, expected, `${file}: ${r.stdout.trim()}`);
  }
  t.equal(api.requests.filter((q) => q.method !== 'GET').length, 0, 'a client dry run writes nothing');
});

t.test('schema: required fields, types, and no unknown fields', async (t) => {
  for (const { file, obj } of docs) t.same(checkSchema(obj), [], `${file} ${obj.kind}/${obj.metadata?.name}`);
  // the checker itself catches what it should
  t.same(checkSchema({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'i', readinesProbe: {} }] } }),
    ['Pod.spec.containers[0].readinesProbe: unknown field']);
  t.same(checkSchema({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ image: 'i', args: 'run' }] } }),
    ['Pod.spec.containers[0].name: required', 'Pod.spec.containers[0].args: must be an array']);
});

t.test('RBAC: get nodes, create/patch events — nothing more — bound to the service accounts the pods run as', async (t) => {
  const role = find('ClusterRole', 'kmm-worker')!;
  t.same(role.rules, [
    { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ]);
  const binding = find('ClusterRoleBinding')!;
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  const pod = find('Pod')!;
  const ds = find('DaemonSet')!;
  // KMM runs its worker pod as the Module's service account, in the Module's namespace
  const accounts = [
    { name: pod.spec.serviceAccountName, namespace: pod.metadata.namespace },
    { name: ds.spec.template.spec.serviceAccountName, namespace: ds.metadata.namespace },
  ];
  t.not(accounts[0]!.name, accounts[1]!.name, 'the worker pod does not run as the DaemonSet\'s account');
  for (const a of accounts) {
    t.ok(find('ServiceAccount', a.name), `ServiceAccount ${a.name} exists`);
    t.ok(binding.subjects.some((s: Obj) => s.kind === 'ServiceAccount' && s.name === a.name && s.namespace === a.namespace), `${a.namespace}/${a.name} is bound`);
  }
  t.equal(binding.subjects.length, 2, 'no other subject');
});

function mountsOf(spec: Obj): Map<string, { volume: Obj; mount: Obj }> {
  const c = spec.containers[0];
  const out = new Map<string, { volume: Obj; mount: Obj }>();
  for (const m of c.volumeMounts) {
    const volume = spec.volumes.find((v: Obj) => v.name === m.name);
    if (!volume) throw new Error(`volumeMount ${m.name} has no volume`);
    out.set(m.mountPath, { volume, mount: m });
  }
  return out;
}

t.test('worker Pod: as KMM creates it — config from a downward-API annotation, host paths, privileges', async (t) => {
  const pod = find('Pod')!;
  const c = pod.spec.containers[0];
  // internal/pod/workerpodmanager.go at upstream HEAD, with the operator's default firmwareHostPath
  t.same(c.args, ['kmod', 'load', '/etc/kmm-worker/config.yaml', '--firmware-path', '/lib/firmware']);
  t.equal(pod.spec.restartPolicy, 'OnFailure');
  const resources = { requests: { cpu: '500m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } };
  t.same(c.resources, resources, 'worker: requests 0.5 CPU/64Mi, limits 1 CPU/128Mi');
  const init = pod.spec.initContainers[0];
  t.equal(init.name, 'image-extractor');
  t.same(init.resources, resources);
  t.same(init.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }], 'the init container writes the shared dir');
  t.same(pod.metadata.labels, {
    'app.kubernetes.io/name': 'kmm',
    'app.kubernetes.io/component': 'worker',
    'app.kubernetes.io/part-of': 'kmm',
    'kmm.node.kubernetes.io/module.name': 'kmm-ci-a',
    'kmm.node.kubernetes.io/worker-action': 'Load',
  });
  t.same(pod.metadata.finalizers, ['kmm.node.kubernetes.io/nodemodulesconfig-reconciler']);
  t.notOk(pod.spec.tolerations, 'the example Module has no tolerations');
  t.same(Object.keys(c).sort(), ['args', 'env', 'image', 'name', 'resources', 'securityContext', 'volumeMounts'],
    'no field the operator does not set, but the optional env');
  t.same(c.volumeMounts.map((m: Obj) => [m.name, m.mountPath, m.readOnly ?? false]), [
    ['config', '/etc/kmm-worker', true],
    ['lib-modules', '/lib/modules', true],
    ['lib-modules', '/host/lib/modules', true],
    ['tmp', '/tmp', true],
    ['lib-firmware', '/lib/firmware', false],
  ], 'the shared emptyDir is READ-ONLY at /tmp in the worker');
  t.same(pod.spec.volumes.find((v: Obj) => v.name === 'tmp'), { name: 'tmp', emptyDir: {} });
  const mounts = mountsOf(pod.spec);
  const cfg = mounts.get('/etc/kmm-worker')!;
  const item = cfg.volume.downwardAPI.items[0];
  t.equal(item.path, 'config.yaml');
  const key = /^metadata\.annotations\['(.+)'\]$/.exec(item.fieldRef.fieldPath)?.[1];
  t.equal(key, 'kmm.node.kubernetes.io/worker-config');
  const config = parseModuleConfig(pod.metadata.annotations[key!], 'worker-pod annotation');
  t.equal(config.modprobe.moduleName, 'kmm_ci_a', 'the annotation is a valid ModuleConfig for our own parser');
  t.same(mounts.get('/lib/modules')!.volume.hostPath, { path: '/lib/modules', type: 'Directory' });
  t.equal(mounts.get('/lib/modules')!.mount.readOnly, true);
  t.equal(mounts.get('/lib/firmware')!.volume.hostPath.path, '/lib/firmware', 'firmware dir = --firmware-path, from the host');
  t.equal(c.securityContext.privileged, true, 'firmware_class.path needs a writable /sys');
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
  t.equal(env.NODE_NAME, 'spec.nodeName');
  t.equal(env.POD_NAMESPACE, 'metadata.namespace');
  t.ok(pod.metadata.labels['kmm.node.kubernetes.io/module.name'], 'the label KMM_MODULE_NAME reads exists');
});

t.test('DaemonSet: run with probes on its health address, config from a ConfigMap that parses', async (t) => {
  const ds = find('DaemonSet')!;
  t.same(ds.spec.selector.matchLabels, Object.fromEntries(Object.entries(ds.spec.template.metadata.labels).filter(([k]) => k in ds.spec.selector.matchLabels)),
    'selector matches the template');
  const c = ds.spec.template.spec.containers[0];
  t.equal(c.args[0], 'run');
  t.equal(c.args[1], '/etc/kmm-worker/config.yaml');
  const addr = parseHealthAddr(c.args[c.args.indexOf('--health-addr') + 1]);
  t.equal(addr.host, '0.0.0.0', 'reachable by the kubelet on the pod IP');
  const port = c.ports.find((p: Obj) => p.name === 'health');
  t.equal(port.containerPort, addr.port);
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.readinessProbe.httpGet.port, 'health');
  const cm = find('ConfigMap', mountsOf(ds.spec.template.spec).get('/etc/kmm-worker')!.volume.configMap.name)!;
  t.equal(parseModuleConfig(cm.data['config.yaml'], 'ConfigMap').modprobe.moduleName, 'kmm_ci_a');
  t.ok(ds.spec.template.spec.terminationGracePeriodSeconds >= 30, 'time to unload on SIGTERM');
});

t.test('Containerfile: multi-stage, Node 24, kmod, production dependencies only, ENTRYPOINT, OCI labels', async (t) => {
  const text = readFileSync(join(repo, 'Containerfile'), 'utf8');
  // instructions with their continuation lines joined
  const instr = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const froms = instr.filter((l) => /^FROM /i.test(l));
  t.ok(froms.length >= 2, 'multi-stage');
  t.match(text, /^ARG NODE_IMAGE=docker\.io\/library\/node:24-[a-z-]+$/m, 'Node 24 base');
  t.match(froms.at(-1), /^FROM \$\{NODE_IMAGE\}$/, 'runtime on Node 24');
  const runtime = instr.slice(instr.indexOf(froms.at(-1)!));
  t.ok(runtime.some((l) => /apt-get install .*\bkmod\b/.test(l)), 'kmod (modprobe, modinfo, depmod) from the distribution');
  t.ok(instr.some((l) => /npm prune --omit=dev/.test(l)), 'dev dependencies pruned');
  t.notOk(runtime.some((l) => /^COPY (?!--from=)/.test(l)), 'the runtime stage copies only from the build stage');
  t.same(JSON.parse(runtime.find((l) => l.startsWith('ENTRYPOINT '))!.slice('ENTRYPOINT '.length)), ['kmm-worker']);
  const labels = runtime.filter((l) => l.startsWith('LABEL ')).join(' ');
  for (const k of ['title', 'description', 'version', 'licenses', 'source', 'revision', 'base.name']) t.match(labels, `org.opencontainers.image.${k}=`, `label ${k}`);
  // an ARG declared before the first FROM is empty after a FROM unless declared again there
  const runtimeArgs = runtime.filter((l) => /^ARG /.test(l)).map((l) => l.slice(4).split('=')[0]);
  for (const ref of labels.matchAll(/\$\{(\w+)\}/g)) t.ok(runtimeArgs.includes(ref[1]!), `ARG ${ref[1]} is declared in the runtime stage`);
  t.notMatch(labels, /kernel-module-management/, 'no label points at another project');
  t.match(text, /runs as root/i, 'says why it runs as root');

  // every path the build copies from the context exists, and what the runtime takes from the build exists
  // after `npm run build` (the tap pretest)
  for (const l of instr.filter((l) => /^COPY (?!--from=)/.test(l))) {
    for (const src of l.split(/\s+/).slice(1, -1)) t.ok(existsSync(join(repo, src)), `context has ${src}`);
  }
  t.ok(existsSync(join(repo, 'dist/cli.js')), 'dist/cli.js built');
  const bin = readFileSync(join(repo, 'bin/kmm-worker.js'), 'utf8');
  t.match(bin, /^#!\/usr\/bin\/env node/, 'the ENTRYPOINT link is executable by node');
  t.match(bin, /'\.\.\/dist\/cli\.js'/, 'bin loads dist/cli.js, which the image copies');
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { bin: Record<string, string>; devDependencies: Record<string, string> };
  t.equal(pkg.bin['kmm-worker'], 'bin/kmm-worker.js');
  t.ok(pkg.devDependencies.typescript, 'tsc comes from devDependencies, present in the build stage');
  t.ok(existsSync(join(repo, 'node_modules/typescript/bin/tsc')), 'the tsc path the build stage runs');
});
