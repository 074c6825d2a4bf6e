/**
 * `kmm-worker preflight --module FILE` end to end: real docker-registry instances on 127.0.0.1, images built
 * by umoci and pushed by skopeo, the real CLI. The JSON report of the main scenario is a golden file.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { buildLayout } from '../helpers/images.js';
import path from 'node:path';
import { writeAuthFile } from '../helpers/registry.js';
import { fakeKo, K, moduleCR, normalizeReport, publish, publishScenarioImages, runCli, scenarioModules, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const GOLDEN = path.join(import.meta.dirname, 'golden', 'scenario.json');

const reg = await testRegistry(t);
const work = await tmpDir('images');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
await publishScenarioImages(reg, work);
const scenario = await writeYaml(path.join(work, 'modules.yaml'), scenarioModules(reg.host));

t.test('every case of the scenario, as JSON: matches the golden file', async (t) => {
  const before = Date.now();
  const r = await runCli(['preflight', '--kernel', K, '--module', scenario, '--json']);
  t.equal(r.code, 1, 'some modules fail: exit 1');
  const report = JSON.parse(r.stdout) as { modules: { lastTransitionTime: string }[] };
  for (const m of report.modules) {
    t.match(m.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const at = Date.parse(m.lastTransitionTime);
    t.ok(at >= Math.floor(before / 1000) * 1000 && at <= Date.now(), 'the time of the check');
  }
  const got = normalizeReport(r.stdout, { [reg.host]: 'REGISTRY' });
  if (process.env.KMM_UPDATE_GOLDEN) await fs.writeFile(GOLDEN, JSON.stringify(got, null, 2) + '\n');
  t.same(got, JSON.parse(await fs.readFile(GOLDEN, 'utf8')));
  t.match(r.stderr, /"msg":"5 of 12 Modules failed preflight for kernel 6\.1\.0-27-amd64"/);
});

t.test('six passing Modules on images of six encodings: exit 0, a full table and JSON, no crash', async (t) => {
  // a layer cut into 2 MiB zstd frames by pzstd (each behind a skippable frame), the .ko spanning a boundary
  const big = await buildLayout({ dir: path.join(work, 'layouts', 'pzstd'), tag: 'v', layers: [
    { [`opt/lib/modules/${K}/kmm_ci_a.ko`]: Buffer.concat([fakeKo('kmm_ci_a'), crypto.randomBytes(3 << 20)]) }] });
  const layoutDir = path.join(work, 'layouts', 'pzstd');
  const blob = (d: string) => path.join(layoutDir, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await fs.readFile(blob(big.digest), 'utf8'));
  const tarBytes = zlib.gunzipSync(await fs.readFile(blob(manifest.layers[0].digest)));
  const frames = await new Promise<Buffer>((resolve, reject) => {
    const c = execFile('pzstd', ['-q', '-1', '-p', '2', '-c'], { encoding: 'buffer', maxBuffer: 64 << 20 }, (e, out) => (e ? reject(e) : resolve(out)));
    c.stdin!.end(tarBytes);
  });
  const digest = `sha256:${crypto.createHash('sha256').update(frames).digest('hex')}`;
  await fs.writeFile(blob(digest), frames);
  manifest.layers[0] = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest, size: frames.length };
  const body = Buffer.from(JSON.stringify(manifest));
  const mdigest = `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
  await fs.writeFile(blob(mdigest), body);
  const index = JSON.parse(await fs.readFile(path.join(layoutDir, 'index.json'), 'utf8'));
  index.manifests = [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: mdigest, size: body.length,
    annotations: { 'org.opencontainers.image.ref.name': 'pz' } }];
  await fs.writeFile(path.join(layoutDir, 'index.json'), JSON.stringify(index));
  await promisify(execFile)('skopeo', ['copy', '-q', '--preserve-digests', '--dest-tls-verify=false', `oci:${layoutDir}:pz`, `docker://${reg.host}/kmod/pzstd:${K}`]);

  const img = (r: string) => `${reg.host}/${r}:\${KERNEL_FULL_VERSION}`;
  const file = await writeYaml(path.join(work, 'six.yaml'), [
    moduleCR('gzip-docker', { kernelMappings: [{ regexp: '.', containerImage: img('kmod/good') }] }),
    moduleCR('zstd', { kernelMappings: [{ regexp: '.', containerImage: img('kmod/zstd') }] }),
    moduleCR('pzstd-frames', { kernelMappings: [{ regexp: '.', containerImage: img('kmod/pzstd') }] }),
    moduleCR('uncompressed', { modprobe: { moduleName: 'kmm_ci_a', dirName: '/srv/kmods' },
      kernelMappings: [{ regexp: '.', containerImage: img('kmod/plain') }] }),
    moduleCR('gzip-oci-2-layers', { modprobe: { moduleName: 'kmm-ci-a' }, kernelMappings: [{ regexp: '.', containerImage: img('kmod/xz') }] }),
    moduleCR('vars', { kernelMappings: [{ regexp: '.', containerImage: img('vars/full') + '-${KERNEL_FULL_VERSION}' }] }),
  ]);
  const json = await runCli(['preflight', '--kernel', K, '--module', file, '--json']);
  t.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { modules: { name: string; verificationStatus: string }[] };
  t.same(report.modules.map((m) => [m.name, m.verificationStatus]).sort(), [['gzip-docker', 'Success'],
    ['gzip-oci-2-layers', 'Success'], ['pzstd-frames', 'Success'], ['uncompressed', 'Success'], ['vars', 'Success'], ['zstd', 'Success']]);
  const table = await runCli(['preflight', '--kernel', K, '--module', file]);
  t.equal(table.code, 0, table.stderr);
  t.equal(table.stdout.trimEnd().split('\n').length, 2 + 6, 'a header and one line per Module');
  for (const r of [json, table]) t.notMatch(r.stderr, /Unhandled|uncaughtException|STREAM_DESTROYED/);
});

t.test('the table names every module with its status and reason', async (t) => {
  const r = await runCli(['preflight', '--kernel', K, '--module', scenario]);
  t.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines[0], `Kernel ${K}`);
  t.match(lines[1], /^NAMESPACE\s+NAME\s+STAGE\s+STATUS\s+REASON$/);
  t.equal(lines.length, 2 + 12);
  t.match(r.stdout, /\nkmm\s+good\s+Done\s+Success\s+image \S+\/kmod\/good:6\.1\.0-27-amd64 has \/opt\/lib\/modules\/6\.1\.0-27-amd64\/kmm_ci_a\.ko; vermagic matches 6\.1\.0-27-amd64; signature: unsigned \(no --trusted-keys to check it against\)\n/);
  t.match(r.stdout, /\nkmm\s+whiteout\s+Done\s+Failure\s+kmm_ci_a\.ko not found under \/opt\/lib\/modules\/6\.1\.0-27-amd64\//);
});

t.test('all Modules valid: exit 0; the kernel may come from a PreflightValidationOCP file', async (t) => {
  const file = await writeYaml(path.join(work, 'good.yaml'), [
    moduleCR('a', { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }),
    moduleCR('b', { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/zstd:\${KERNEL_FULL_VERSION}` }] }),
  ]);
  const pvo = await writeYaml(path.join(work, 'pvo.yaml'), [
    { apiVersion: 'kmm.sigs.x-k8s.io/v1beta2', kind: 'PreflightValidationOCP', metadata: { name: 'pf' }, spec: { kernelVersion: K, pushBuiltImage: false } },
  ]);
  const r = await runCli(['preflight', '--preflight', pvo, '--module', file, '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { kernelVersion: string; modules: { verificationStatus: string }[] };
  t.equal(report.kernelVersion, K);
  t.same(report.modules.map((m) => m.verificationStatus), ['Success', 'Success']);
});

t.test('Modules on stdin (--module -), e.g. from kubectl get modules -A -o yaml', async (t) => {
  const list = { apiVersion: 'v1', kind: 'List', items: [
    moduleCR('piped', { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }, { namespace: 'kmm' }),
  ] };
  const r = await runCli(['preflight', '--kernel', K, '--module', '-', '--json'], {}, 60_000, JSON.stringify(list));
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { modules: [{ name: 'piped', namespace: 'kmm', verificationStatus: 'Success' }] });
  const empty = await runCli(['preflight', '--kernel', K, '--module', '-'], {}, 60_000, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
  t.equal(empty.code, 2);
  t.match(empty.stderr, /no kmm\.sigs\.x-k8s\.io\/v1beta1 Module in stdin"/);
});

t.test('a private image: denied without credentials, verified with them; no secret in any output', async (t) => {
  const priv = await testRegistry(t, { auth: 'basic', tls: true });
  await publish(priv, work, [`private/kmod:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]);
  // trust the registry's CA the way a node does: certs.d under the host root
  const hostRoot = path.join(work, 'host');
  await fs.mkdir(path.join(hostRoot, 'etc/containers/certs.d', priv.host), { recursive: true });
  await fs.copyFile(priv.caFile!, path.join(hostRoot, 'etc/containers/certs.d', priv.host, 'ca.crt'));
  const file = await writeYaml(path.join(work, 'private.yaml'), [
    moduleCR('priv', { kernelMappings: [{ regexp: '.', containerImage: `${priv.host}/private/kmod:\${KERNEL_FULL_VERSION}` }] }, {
      namespace: 'kmm',
      spec: { imageRepoSecret: { name: 'regcred' } },
    }),
  ]);

  const denied = await runCli(['--host-root', hostRoot, 'preflight', '--kernel', K, '--module', file, '--json']);
  t.equal(denied.code, 1);
  const reason = (JSON.parse(denied.stdout) as { modules: { statusReason: string }[] }).modules[0]!.statusReason;
  t.match(reason, new RegExp(`^access to image ${priv.host}/private/kmod:6\\.1\\.0-27-amd64 denied: `));
  t.match(reason, /imageRepoSecret regcred is only read with --from-cluster/);

  const authFile = await writeAuthFile(priv, path.join(work, 'auth.json'));
  const ok = await runCli(['--host-root', hostRoot, '--auth-file', authFile, 'preflight', '--kernel', K, '--module', file, '--json', '--log-level', 'debug']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /"verificationStatus": "Success"/);

  const wrong = await writeAuthFile({ ...priv, password: 'not-the-password' }, path.join(work, 'wrong.json'));
  const rejected = await runCli(['--host-root', hostRoot, '--auth-file', wrong, 'preflight', '--kernel', K, '--module', file]);
  t.equal(rejected.code, 1);
  t.match(rejected.stdout, /Failure\s+access to image \S+ denied: .*rejected/);

  for (const out of [denied, ok, rejected]) {
    t.notMatch(out.stdout + out.stderr, priv.password!, 'the password never appears');
    t.notMatch(out.stdout + out.stderr, Buffer.from(`${priv.username}:${priv.password}`).toString('base64'));
  }
});

t.test("TLS: verified by default; a Module's registryTLS (mapping over container) or --insecure relaxes it", async (t) => {
  const tlsReg = await testRegistry(t, { tls: true });
  await publish(tlsReg, work, [`tls/kmod:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]);
  const image = `${tlsReg.host}/tls/kmod:\${KERNEL_FULL_VERSION}`;
  const file = await writeYaml(path.join(work, 'tls.yaml'), [
    moduleCR('strict', { kernelMappings: [{ regexp: '.', containerImage: image }] }),
    moduleCR('mapping-insecure', { registryTLS: { insecure: false }, kernelMappings: [{ regexp: '.', containerImage: image, registryTLS: { insecureSkipTLSVerify: true } }] }),
    moduleCR('mapping-strict', { registryTLS: { insecureSkipTLSVerify: true }, kernelMappings: [{ regexp: '.', containerImage: image, registryTLS: {} }] }),
    moduleCR('container-insecure', { registryTLS: { insecure: true }, kernelMappings: [{ regexp: '.', containerImage: image }] }),
  ]);
  const r = await runCli(['preflight', '--kernel', K, '--module', file, '--json']);
  t.equal(r.code, 1);
  const got = Object.fromEntries((JSON.parse(r.stdout) as { modules: { name: string; verificationStatus: string; statusReason: string }[] }).modules.map((m) => [m.name, m]));
  t.equal(got['strict']!.verificationStatus, 'Failure');
  t.comment(got['strict']!.statusReason);
  t.match(got['strict']!.statusReason, new RegExp(`^image ${tlsReg.host}/tls/kmod:${K.replaceAll('.', '\\.')}: `));
  t.equal(got['mapping-strict']!.verificationStatus, 'Failure', "the mapping's registryTLS replaces the container's");
  t.equal(got['mapping-insecure']!.verificationStatus, 'Success');
  t.equal(got['container-insecure']!.verificationStatus, 'Success');
  const all = await runCli(['preflight', '--kernel', K, '--module', file, '--insecure', '--json']);
  t.equal(all.code, 0, '--insecure relaxes it for every image');
});
