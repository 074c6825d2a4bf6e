/**
 * registries.conf (containers-registries.conf(5) v2) under --host-root: mirrors in front of a primary name that
 * cannot resolve (registry.invalid), rewrites, blocked registries, drop-ins, malformed files. Real registries on
 * loopback; a lying front server plays a mirror that serves another manifest for a digest.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { frontServer } from '../helpers/fault-proxy.js';
import { stringify } from 'yaml';
import { cli, errorLine, allStderr } from './cli.js';
import { fakeKo } from '../preflight/fixtures.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-mirrors-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-test', { modules: {
  // real (minimal) ELF modules: preflight reads their vermagic
  'kmm_a.ko': fakeKo('kmm_a', '6.1.0-test'), 'kmm_b.ko': fakeKo('kmm_b', '6.1.0-test') } }) });
const other = await buildLayout({ dir: path.join(work, 'oci-other'), tag: 'v1', layers: kmodLayers('6.9.0-other') });

// an open mirror on plain HTTP, and a mirror behind TLS (CA in certs.d) with Basic auth (its own credentials)
const mirror = await startRegistry();
t.teardown(() => mirror.stop());
const secure = await startRegistry({ auth: 'basic', tls: true });
t.teardown(() => secure.stop());
const digest = await pushImage(img, mirror, 'mirrored/org/kmod:v1');
const secureDigest = await pushImage(img, secure, 'org/kmod:v1');
// a "mirror" that answers every manifest request with another image's manifest
const otherReg = await startRegistry();
t.teardown(() => otherReg.stop());
const otherDigest = await pushImage(other, otherReg, 'org/kmod:v1');
const otherManifest = await (await fetch(`${otherReg.url}/v2/org/kmod/manifests/v1`,
  { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).text();
const liar = await frontServer(otherReg.url, (req) => (req.url?.includes('/manifests/')
  ? { status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: otherManifest }
  : undefined));
t.teardown(() => liar.close());

const KO = ['opt/lib/modules/6.1.0-test/kmm_a.ko', 'opt/lib/modules/6.1.0-test/kmm_b.ko'];
const PRIMARY = 'registry.invalid/org/kmod';

/** A host root with registries.conf (and drop-ins) and certs.d for the TLS mirror. */
async function hostRoot(main: string | undefined, dropIns: Record<string, string> = {}): Promise<string> {
  const root = await fs.mkdtemp(path.join(work, 'root-'));
  const etc = path.join(root, 'etc/containers');
  await fs.mkdir(path.join(etc, 'registries.conf.d'), { recursive: true });
  if (main !== undefined) await fs.writeFile(path.join(etc, 'registries.conf'), main);
  for (const [name, text] of Object.entries(dropIns)) await fs.writeFile(path.join(etc, 'registries.conf.d', name), text);
  const certs = path.join(etc, 'certs.d', secure.host);
  await fs.mkdir(certs, { recursive: true });
  await fs.copyFile(secure.caFile!, path.join(certs, 'ca.crt'));
  return root;
}

const authFile = await writeAuthFile(secure, path.join(work, 'auth.json'));

/** The log lines of a run, parsed. */
function logLines(stderr: string): Array<Record<string, unknown>> {
  return stderr.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

function servedBy(stderr: string): unknown {
  return logLines(stderr).find((l) => l.msg === 'image served by a mirror' || l.msg === 'image served by its primary location')
    ?.location;
}

const inspect = (root: string, ref: string, ...more: string[]) =>
  cli(['--host-root', root, '--auth-file', authFile, 'image', 'inspect', ref, '--json', ...more]);

t.test('digest-only mirror: a digest pull is served by the mirror, a tag pull is not', async (t) => {
  t.equal(secureDigest, digest, 'both mirrors hold the same image');
  const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
location = "registry.invalid/org"

[[registry.mirror]]
location = "${mirror.host}/mirrored/org"
pull-from-mirror = "digest-only"
`);
  let r = await inspect(root, `${PRIMARY}@${digest}`);
  t.equal(r.code, 0, errorLine(r.stderr));
  const out = JSON.parse(r.stdout || '{}') as { digest?: string; kernels?: unknown; reference?: string };
  t.equal(out.digest, digest);
  t.same(out.kernels, { '6.1.0-test': KO });
  t.equal(servedBy(r.stderr), `${mirror.host}/mirrored/org/kmod@${digest}`, 'the log names the mirror that served it');

  r = await inspect(root, `${PRIMARY}:v1`);
  t.equal(r.code, 1, 'the tag is asked of the primary only, which does not resolve');
  t.match(errorLine(r.stderr), /registry registry\.invalid/);
});

t.test('tag pulls through mirrors: all and tag-only; mirror-by-digest-only keeps tags off mirrors', async (t) => {
  for (const mode of ['all', 'tag-only']) {
    const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"

[[registry.mirror]]
location = "${secure.host}/org"
pull-from-mirror = "${mode}"
`);
    const r = await inspect(root, `${PRIMARY}:v1`);
    t.equal(r.code, 0, `${mode}: ${errorLine(r.stderr)}`);
    t.equal(JSON.parse(r.stdout || '{}').digest, digest, mode);
    t.equal(servedBy(r.stderr), `${secure.host}/org/kmod:v1`, `${mode}: served by the TLS+auth mirror`);
  }
  const tagOnly = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
[[registry.mirror]]
location = "${secure.host}/org"
pull-from-mirror = "tag-only"
`);
  const r = await inspect(tagOnly, `${PRIMARY}@${digest}`);
  t.equal(r.code, 1, 'tag-only: a digest pull does not use the mirror');

  const byDigest = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
mirror-by-digest-only = true
[[registry.mirror]]
location = "${secure.host}/org"
`);
  t.equal((await inspect(byDigest, `${PRIMARY}:v1`)).code, 1, 'mirror-by-digest-only: no tag pull from the mirror');
  t.equal((await inspect(byDigest, `${PRIMARY}@${digest}`)).code, 0, 'mirror-by-digest-only: digest pull from it');
});

t.test('a mirror that serves another manifest for a digest is skipped with a warning', async (t) => {
  const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
[[registry.mirror]]
location = "${liar.host}/org"
[[registry.mirror]]
location = "${mirror.host}/mirrored/org"
`);
  const r = await inspect(root, `${PRIMARY}@${digest}`);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.equal(JSON.parse(r.stdout || '{}').digest, digest);
  t.not(otherDigest, digest);
  const warn = logLines(r.stderr).find((l) => l.level === 40 && l.location === `${liar.host}/org/kmod@${digest}`);
  t.ok(warn, 'a warning names the lying mirror');
  t.match(String(warn?.reason ?? ''), /does not match its digest/);
  t.equal(servedBy(r.stderr), `${mirror.host}/mirrored/org/kmod@${digest}`);

  // only the liar: the primary's failure is the answer, and it says a mirror failed first
  const only = await hostRoot(`[[registry]]\nprefix = "registry.invalid/org"\n[[registry.mirror]]\nlocation = "${liar.host}/org"\n`);
  const f = await inspect(only, `${PRIMARY}@${digest}`);
  t.equal(f.code, 1);
  t.match(errorLine(f.stderr), /^registry registry\.invalid: .*ENOTFOUND.* \(after 1 mirror failed; see the warnings\)$/);
});

t.test('location rewrites the primary; a blocked registry is exit 2', async (t) => {
  const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/rewritten"
location = "${mirror.host}/mirrored/org"

[[registry]]
prefix = "registry.invalid/forbidden"
blocked = true
`);
  let r = await inspect(root, 'registry.invalid/rewritten/kmod:v1');
  t.equal(r.code, 0, errorLine(r.stderr));
  t.equal(JSON.parse(r.stdout || '{}').digest, digest);
  t.equal(servedBy(r.stderr), `${mirror.host}/mirrored/org/kmod:v1`);

  r = await inspect(root, 'registry.invalid/forbidden/kmod:v1');
  t.equal(r.code, 2);
  t.equal(errorLine(r.stderr), `image registry.invalid/forbidden/kmod:v1: registry.invalid/forbidden is blocked in ` +
    `${path.join(root, 'etc/containers/registries.conf')}`);
});

t.test('a registries.conf.d drop-in overrides the main file\'s entry of the same prefix', async (t) => {
  const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
blocked = true
`, {
    '50-mirror.conf': `[[registry]]\nprefix = "registry.invalid/org"\n[[registry.mirror]]\nlocation = "${mirror.host}/mirrored/org"\n`,
    // only *.conf files are read
    '60-ignored.conf.bak': 'this is not TOML [',
  });
  const r = await inspect(root, `${PRIMARY}:v1`);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.equal(servedBy(r.stderr), `${mirror.host}/mirrored/org/kmod:v1`);

  // a later drop-in (alphanumerical order) overrides an earlier one
  const root2 = await hostRoot(undefined, {
    '10-mirror.conf': `[[registry]]\nprefix = "registry.invalid/org"\n[[registry.mirror]]\nlocation = "${mirror.host}/mirrored/org"\n`,
    '20-block.conf': '[[registry]]\nprefix = "registry.invalid/org"\nblocked = true\n',
  });
  const b = await inspect(root2, `${PRIMARY}:v1`);
  t.equal(b.code, 2);
  t.match(errorLine(b.stderr), /is blocked in .*20-block\.conf$/);
});

t.test('a malformed registries.conf is exit 2 naming the file and line', async (t) => {
  const root = await hostRoot('[[registry]]\nprefix = "registry.invalid/org"\nlocation = "unterminated\n');
  const file = path.join(root, 'etc/containers/registries.conf');
  let r = await inspect(root, `${PRIMARY}:v1`);
  t.equal(r.code, 2);
  t.match(errorLine(r.stderr), new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:`));

  const bad = await hostRoot('[[registry]]\nprefix = "registry.invalid/org"\n[[registry.mirror]]\nlocation = "x.example"\npull-from-mirror = "sometimes"\n');
  r = await inspect(bad, `${PRIMARY}:v1`);
  t.equal(r.code, 2);
  t.match(errorLine(r.stderr), /registries\.conf:5: pull-from-mirror must be all, digest-only or tag-only/);
});

t.test('an image pulled through a mirror is cached under its original reference', async (t) => {
  const root = await hostRoot(`[[registry]]\nprefix = "registry.invalid/org"\n[[registry.mirror]]\nlocation = "${mirror.host}/mirrored/org"\n`);
  const images = path.join(work, 'images');
  const ref = `${PRIMARY}@${digest}`;
  let r = await cli(['--host-root', root, 'image', 'pull', ref, '--all', '--images-dir', images, '--json']);
  t.equal(r.code, 0, errorLine(r.stderr));
  const first = JSON.parse(r.stdout || '{}') as { reference?: string; fromCache?: boolean };
  t.equal(first.reference, ref);
  t.equal(first.fromCache, false);
  // no registries.conf now: only the cache can answer for registry.invalid
  const bare = await hostRoot(undefined);
  r = await cli(['--host-root', bare, 'image', 'pull', ref, '--all', '--images-dir', images, '--json',
    '--pull-policy', 'IfNotPresent']);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.equal((JSON.parse(r.stdout || '{}') as { fromCache?: boolean }).fromCache, true);
});

t.test('preflight validates a Module whose image only a mirror serves; a blocked one fails with the reason', async (t) => {
  const root = await hostRoot(`
[[registry]]
prefix = "registry.invalid/org"
[[registry.mirror]]
location = "${mirror.host}/mirrored/org"
[[registry]]
prefix = "registry.invalid/forbidden"
blocked = true
`);
  const mod = (name: string, image: string) => ({
    apiVersion: 'kmm.sigs.x-k8s.io/v1beta1', kind: 'Module', metadata: { name, namespace: 'kmm' },
    spec: { selector: {}, moduleLoader: { container: { modprobe: { moduleName: 'kmm_a' },
      kernelMappings: [{ literal: '6.1.0-test', containerImage: image }] } } },
  });
  const file = path.join(work, 'modules.yaml');
  await fs.writeFile(file, [mod('mirrored', `${PRIMARY}@${digest}`), mod('blocked', 'registry.invalid/forbidden/kmod:v1')]
    .map((d) => stringify(d)).join('---\n'));
  const r = await cli(['--host-root', root, 'preflight', '--kernel', '6.1.0-test', '--module', file, '--json']);
  const report = JSON.parse(r.stdout || '{"modules":[]}') as { modules: Array<{ name: string; verificationStatus: string; statusReason: string }> };
  const by = Object.fromEntries(report.modules.map((m) => [m.name, m]));
  t.equal(by.mirrored?.verificationStatus, 'Success', by.mirrored?.statusReason ?? r.stderr);
  t.equal(by.blocked?.verificationStatus, 'Failure');
  t.match(by.blocked?.statusReason ?? '', /registry\.invalid\/forbidden is blocked in /);
});

t.test('no secret in any log line', async (t) => {
  for (const s of allStderr) t.notOk(s.includes(secure.password!), 'the mirror password is never logged');
});
