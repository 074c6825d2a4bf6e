/**
 * `preflight --from-cluster` and `--write-status` against the strict fake API server (no real kube-apiserver
 * can run here): Modules listed across namespaces, imageRepoSecret read per Module, the exact status patch.
 */
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FakeApiServer, type ResourceDef } from '../helpers/fake-apiserver.js';
import { fakeKo, K, moduleCR, publish, runCli, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const KMM_RESOURCES: ResourceDef[] = [
  { group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', resource: 'modules', kind: 'Module', namespaced: true, subresources: ['status'] },
  {
    group: 'kmm.sigs.x-k8s.io', version: 'v1beta2', resource: 'preflightvalidationsocp', kind: 'PreflightValidationOCP',
    namespaced: false, shortNames: ['pfvo'], subresources: ['status'],
  },
];
const MODULES = { group: 'kmm.sigs.x-k8s.io', version: 'v1beta1', resource: 'modules' };
const PVO = { group: 'kmm.sigs.x-k8s.io', version: 'v1beta2', resource: 'preflightvalidationsocp' };
/** what the kmod checks add to a verified module's reason (no --trusted-keys, no --symvers) */
const CHECKS = `; vermagic matches ${K}; signature: unsigned (no --trusted-keys to check it against)`;
const OLD = '2026-01-01T00:00:00Z';

const work = await tmpDir('cluster');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const pub = await testRegistry(t);
const priv = await testRegistry(t, { auth: 'basic', tls: true });
await Promise.all([
  publish(pub, work, [`kmod/good:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]),
  publish(priv, work, [`private/kmod:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]),
]);
const hostRoot = path.join(work, 'host');
await fs.mkdir(path.join(hostRoot, 'etc/containers/certs.d', priv.host), { recursive: true });
await fs.copyFile(priv.caFile!, path.join(hostRoot, 'etc/containers/certs.d', priv.host, 'ca.crt'));

async function cluster(opts: { tls?: boolean } = {}) {
  const api = await FakeApiServer.start({ resources: KMM_RESOURCES, token: 'sa-token', tls: opts.tls });
  const kubeconfig = await api.writeKubeconfig(path.join(work, `kubeconfig-${Date.now()}`));
  const good = (name: string, ns: string, extra: Record<string, unknown> = {}) =>
    moduleCR(name, { kernelMappings: [{ regexp: '^6\\.', containerImage: `${pub.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }, { namespace: ns, ...extra });
  const privateImage = (name: string, secret: string) =>
    moduleCR(name, { kernelMappings: [{ literal: K, containerImage: `${priv.host}/private/kmod:${K}` }] }, { namespace: 'kmm', spec: { imageRepoSecret: { name: secret } } });
  api.seed(MODULES, good('good', 'kmm'));
  api.seed(MODULES, good('late', 'apps'));
  api.seed(MODULES, privateImage('private', 'regcred'));
  api.seed(MODULES, privateImage('private-nosecret', 'missing'));
  api.seed(MODULES, privateImage('private-again', 'regcred'));
  api.seed(MODULES, privateImage('private-legacy', 'legacycred'));
  api.seed(MODULES, privateImage('private-opaque', 'opaque'));
  api.seed(MODULES, moduleCR('old-only', { kernelMappings: [{ literal: '6.1.0-26-amd64', containerImage: `${pub.host}/kmod/good:x` }] }, { namespace: 'apps' }));
  const deleting = good('deleting', 'kmm');
  (deleting.metadata as Record<string, unknown>).deletionTimestamp = '2026-11-21T00:00:00Z';
  (deleting.metadata as Record<string, unknown>).finalizers = ['kmm.node.kubernetes.io/module-finalizer'];
  api.seed(MODULES, deleting);
  api.seed(MODULES, { apiVersion: 'kmm.sigs.x-k8s.io/v1beta1', kind: 'Module', metadata: { name: 'plugin-only', namespace: 'kmm' }, spec: { devicePlugin: { container: { image: 'x' } }, selector: {} } });
  const dockerconfig = { auths: { [priv.host]: { auth: Buffer.from(`${priv.username}:${priv.password}`).toString('base64') } } };
  api.seed({ resource: 'secrets' }, {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'regcred', namespace: 'kmm' }, type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(dockerconfig)).toString('base64') },
  });
  // the legacy ~/.dockercfg form (type kubernetes.io/dockercfg): the auths map without the "auths" key
  api.seed({ resource: 'secrets' }, {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'legacycred', namespace: 'kmm' }, type: 'kubernetes.io/dockercfg',
    data: { '.dockercfg': Buffer.from(JSON.stringify(dockerconfig.auths)).toString('base64') },
  });
  api.seed({ resource: 'secrets' }, {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'opaque', namespace: 'kmm' }, type: 'Opaque', data: { token: 'eA==' },
  });
  api.seed(PVO, {
    apiVersion: 'kmm.sigs.x-k8s.io/v1beta2', kind: 'PreflightValidationOCP', metadata: { name: 'pf' },
    spec: { kernelVersion: K, pushBuiltImage: false },
    status: {
      modules: [
        { name: 'good', namespace: 'kmm', verificationStage: 'Done', verificationStatus: 'Success', statusReason: 'verified image exists', lastTransitionTime: OLD },
        { name: 'gone', namespace: 'zzz', verificationStage: 'Done', verificationStatus: 'Failure', statusReason: 'mapping not found', lastTransitionTime: OLD },
      ],
    },
  });
  return { api, env: { KUBECONFIG: kubeconfig } };
}

t.test('--from-cluster --write-status: every Module, its secret, the exact status patch', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  // no --kernel: the PreflightValidationOCP's spec.kernelVersion is the kernel
  const r = await runCli(['--host-root', hostRoot, 'preflight', '--from-cluster', '--write-status', 'pf', '--json'], env);
  t.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as { kernelVersion: string; modules: Record<string, string>[] };
  t.equal(report.kernelVersion, K);
  t.same(report.modules.map((m) => [`${m.namespace}/${m.name}`, m.verificationStatus]), [
    ['apps/late', 'Success'],
    ['apps/old-only', 'Failure'],
    ['kmm/good', 'Success'],
    ['kmm/private', 'Success'],
    ['kmm/private-again', 'Success'],
    ['kmm/private-legacy', 'Success'],
    ['kmm/private-nosecret', 'Failure'],
    ['kmm/private-opaque', 'Failure'],
  ], 'sorted; the Module being deleted and the device-plugin-only Module are skipped');
  const byName = Object.fromEntries(report.modules.map((m) => [m.name, m]));
  t.equal(byName['private-nosecret']!.statusReason, 'imageRepoSecret kmm/missing not found');
  t.equal(byName['old-only']!.statusReason, `no kernel mapping matches kernel ${K}`);

  const patches = api.requests.filter((q) => q.method === 'PATCH');
  t.equal(patches.length, 1, 'one status write');
  const patch = patches[0]!;
  t.equal(patch.path, '/apis/kmm.sigs.x-k8s.io/v1beta2/preflightvalidationsocp/pf/status');
  t.equal(patch.contentType, 'application/merge-patch+json');
  t.equal(patch.authorization, 'Bearer sa-token');
  const seededRv = api.requests.find((q) => q.method === 'GET' && q.path.endsWith('/preflightvalidationsocp/pf'));
  t.ok(seededRv, 'the object was read first');
  const at = (name: string) => byName[name]!.lastTransitionTime;
  const entry = (ns: string, name: string, status: string, reason: string, time: string) =>
    ({ name, namespace: ns, verificationStage: 'Done', verificationStatus: status, statusReason: reason, lastTransitionTime: time });
  t.same(patch.body, {
    metadata: { resourceVersion: (patch.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion },
    status: {
      modules: [
        entry('apps', 'late', 'Success', byName.late!.statusReason!, at('late')),
        entry('apps', 'old-only', 'Failure', `no kernel mapping matches kernel ${K}`, at('old-only')),
        // unchanged status: the transition time stays; the reason is the new one
        entry('kmm', 'good', 'Success', `image ${pub.host}/kmod/good:${K} has /opt/lib/modules/${K}/kmm_ci_a.ko${CHECKS}`, OLD),
        entry('kmm', 'private', 'Success', `image ${priv.host}/private/kmod:${K} has /opt/lib/modules/${K}/kmm_ci_a.ko${CHECKS}`, at('private')),
        entry('kmm', 'private-again', 'Success', `image ${priv.host}/private/kmod:${K} has /opt/lib/modules/${K}/kmm_ci_a.ko${CHECKS}`, at('private-again')),
        entry('kmm', 'private-legacy', 'Success', `image ${priv.host}/private/kmod:${K} has /opt/lib/modules/${K}/kmm_ci_a.ko${CHECKS}`, at('private-legacy')),
        entry('kmm', 'private-nosecret', 'Failure', 'imageRepoSecret kmm/missing not found', at('private-nosecret')),
        entry('kmm', 'private-opaque', 'Failure', 'imageRepoSecret kmm/opaque has no .dockerconfigjson or .dockercfg key', at('private-opaque')),
        // another module's entry is kept
        entry('zzz', 'gone', 'Failure', 'mapping not found', OLD),
      ],
    },
  });
  t.match((patch.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion, /^\d+$/);
  const stored = api.objects('preflightvalidationsocp', PVO)[0]!;
  t.same(stored.status, (patch.body as { status: unknown }).status, 'the status subresource holds it');
  t.same(stored.spec, { kernelVersion: K, pushBuiltImage: false }, 'the spec is untouched');

  const secretReads = api.requests.filter((q) => q.path.includes('/secrets/'));
  t.same(secretReads.map((q) => q.path).sort(), [
    '/api/v1/namespaces/kmm/secrets/legacycred', '/api/v1/namespaces/kmm/secrets/missing',
    '/api/v1/namespaces/kmm/secrets/opaque', '/api/v1/namespaces/kmm/secrets/regcred',
  ], 'each secret read once, though two Modules use regcred');
  t.notMatch(r.stdout + r.stderr, priv.password!, 'the secret never appears');
});

t.test('kubectl sees the written status (TLS API server, bearer token)', async (t) => {
  const { api, env } = await cluster({ tls: true });
  t.teardown(() => api.close());
  const r = await runCli(['--host-root', hostRoot, 'preflight', '--from-cluster', '--write-status', 'pf'], env);
  t.equal(r.code, 1, r.stderr);
  const { stdout } = await promisify(execFile)('kubectl', ['get', 'preflightvalidationsocp', 'pf', '-o',
    'jsonpath={range .status.modules[*]}{.namespace}/{.name}={.verificationStatus}{"\\n"}{end}'], { env: { ...process.env, ...env } });
  t.same(stdout.trim().split('\n'), [
    'apps/late=Success', 'apps/old-only=Failure', 'kmm/good=Success', 'kmm/private=Success', 'kmm/private-again=Success',
    'kmm/private-legacy=Success', 'kmm/private-nosecret=Failure', 'kmm/private-opaque=Failure', 'zzz/gone=Failure',
  ]);
});

t.test('--dry-run: the status patch is printed, not written', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  const r = await runCli(['--host-root', hostRoot, '--dry-run', 'preflight', '--from-cluster', '--write-status', 'pf', '--json'], env);
  t.equal(r.code, 1);
  t.equal(api.requests.filter((q) => q.method === 'PATCH').length, 0, 'no write');
  const line = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; patch?: { status: { modules: unknown[] } } })
    .find((l) => l.msg === 'dry run: the status patch that would be written to PreflightValidationOCP pf');
  t.ok(line, 'the patch is in the log');
  t.equal(line?.patch?.status.modules.length, 9);
  t.same(api.objects('preflightvalidationsocp', PVO)[0]!.status.modules.length, 2, 'the status is unchanged');
});

t.test('a conflicting concurrent write is retried on a fresh read', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  api.fail({ method: 'PATCH', path: '/apis/kmm.sigs.x-k8s.io/v1beta2/preflightvalidationsocp/pf/status', status: 409, times: 1 });
  const r = await runCli(['--host-root', hostRoot, 'preflight', '--from-cluster', '--write-status', 'pf', '--json'], env);
  t.equal(r.code, 1);
  t.equal(api.requests.filter((q) => q.method === 'PATCH').length, 2);
  t.equal(api.objects('preflightvalidationsocp', PVO)[0]!.status.modules.length, 9);
});

t.test('--module files with --write-status; an empty cluster is a success', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  const file = await writeYaml(path.join(work, 'one.yaml'), [
    moduleCR('from-file', { kernelMappings: [{ regexp: '.', containerImage: `${pub.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }, { namespace: 'dev' }),
  ]);
  const r = await runCli(['preflight', '--module', file, '--write-status', 'pf'], env);
  t.equal(r.code, 0, r.stderr);
  const names = api.objects('preflightvalidationsocp', PVO)[0]!.status.modules.map((m: { namespace: string; name: string }) => `${m.namespace}/${m.name}`);
  t.same(names, ['dev/from-file', 'kmm/good', 'zzz/gone'], 'added to the existing entries');
  t.equal(api.requests.filter((q) => q.path.endsWith('/modules')).length, 0, 'the cluster\'s Modules were not listed');

  const empty = await FakeApiServer.start({ resources: KMM_RESOURCES });
  t.teardown(() => empty.close());
  const kc = await empty.writeKubeconfig(path.join(work, 'kubeconfig-empty'));
  const none = await runCli(['preflight', '--from-cluster', '--kernel', K], { KUBECONFIG: kc });
  t.equal(none.code, 0);
  t.equal(none.stdout, `No Modules to validate for kernel ${K}.\n`);
});

t.test('--write-status with a Day-1 image: its row is printed, never written; a Module in namespace day1 still is', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  const file = await writeYaml(path.join(work, 'day1-ns.yaml'), [
    // the same namespace/name as the Day-1 row: a real Module, which must reach the status
    moduleCR('kmm_ci_a', { kernelMappings: [{ regexp: '.', containerImage: `${pub.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }, { namespace: 'day1' }),
  ]);
  const r = await runCli(['preflight', '--module', file, '--write-status', 'pf', '--json',
    '--day1-image', `${pub.host}/day1/absent`, '--day1-module', 'kmm_ci_a'], env);
  t.equal(r.code, 1, 'the Day-1 image is missing');
  const printed = (JSON.parse(r.stdout) as { modules: { namespace: string; name: string; verificationStatus: string }[] }).modules;
  t.same(printed.map((m) => [m.namespace, m.name, m.verificationStatus]), [['day1', 'kmm_ci_a', 'Success'], ['day1', 'kmm_ci_a', 'Failure']]);
  const written = api.objects('preflightvalidationsocp', PVO)[0]!.status.modules
    .filter((m: { namespace: string }) => m.namespace === 'day1')
    .map((m: { name: string; verificationStatus: string }) => [m.name, m.verificationStatus]);
  t.same(written, [['kmm_ci_a', 'Success']], 'only the Module is written');
});

t.test('command-line and cluster mistakes are exit 2 with one clear line', async (t) => {
  const { api, env } = await cluster();
  t.teardown(() => api.close());
  const fifoDir = await tmpDir('fifo');
  t.teardown(() => fs.rm(fifoDir, { recursive: true, force: true }));
  const fifo = path.join(fifoDir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // a log line (JSON) or, for what commander rejects before any logger exists, `kmm-worker: <message>`
  const lastLine = (s: string) => {
    const line = s.trim().split('\n').pop()!;
    return line.startsWith('{') ? (JSON.parse(line) as { msg: string }).msg : line.replace(/^kmm-worker: /, '');
  };
  const cases: [string[], Record<string, string | undefined>, RegExp][] = [
    [['preflight', '--from-cluster', '--kernel', K], {}, /^--from-cluster needs Kubernetes credentials/],
    [['preflight', '--from-cluster', '--kernel', '6.1.0-28-amd64', '--write-status', 'pf'], env, /^--kernel says kernel 6\.1\.0-28-amd64 but PreflightValidationOCP pf says 6\.1\.0-27-amd64$/],
    [['preflight', '--from-cluster', '--write-status', 'nope'], env, /^--write-status: PreflightValidationOCP nope not found$/],
    [['preflight', '--from-cluster'], env, /^give the kernel to validate for/],
    [['preflight', '--kernel', K], env, /^give the Modules to validate/],
    [['preflight', '--kernel', K, '--from-cluster', '--module', 'x.yaml'], env, /exclusive/],
    [['preflight', '--kernel', '6.1', '--from-cluster'], env, /^kernel version '6\.1' must have at least three components/],
    [['preflight', '--kernel', K, '--module', '/nonexistent.yaml'], {}, /^--module \/nonexistent\.yaml: cannot read: ENOENT$/],
    // files named on the command line never block on a FIFO or read a device
    [['preflight', '--kernel', K, '--module', fifo], {}, /^--module .*fifo: cannot read: is a FIFO, not a regular file$/],
    [['preflight', '--preflight', '/dev/zero', '--module', 'x.yaml'], {}, /^--preflight \/dev\/zero: cannot read: is a character device, not a regular file$/],
    [['preflight', '--kernel', K, '--module', 'x.yaml', '--symvers', fifo], {}, /^--symvers .*fifo: cannot read it \(is a FIFO, not a regular file\)$/],
    [['preflight', '--kernel', K, '--from-cluster', '--platform', 'amd64'], env, /^--platform 'amd64' is not os\/arch/],
    [['preflight', '--kernel', K, '--from-cluster', '--parallel', '0'], env, /--parallel must be a positive whole number/],
  ];
  // independent runs: three at a time keeps the wall time down on a busy machine
  const results: Awaited<ReturnType<typeof runCli>>[] = [];
  for (let i = 0; i < cases.length; i += 3) {
    results.push(...(await Promise.all(cases.slice(i, i + 3).map(([args, e]) => runCli(args, e)))));
  }
  for (const [i, [args, , want]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.code, 2, args.join(' '));
    t.match(lastLine(r.stderr), want, args.join(' '));
    t.equal(r.stdout, '', 'no report');
  }
  t.equal(api.requests.filter((q) => q.method === 'PATCH').length, 0, 'nothing written');
});
