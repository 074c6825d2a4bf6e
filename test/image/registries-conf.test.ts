/**
 * registries.conf parsing and the locations a reference is pulled from: prefix matching (longest, at component
 * boundaries, wildcards), rewrites, mirror order and pull-from-mirror, drop-in merging, bad files.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadRegistriesConf, parseRegistriesConf, type RegistriesConf } from '../../src/image/registries-conf.js';
import { pullLocations } from '../../src/image/pull-locations.js';
import { parseReference, type RegistryReference } from '../../src/image/reference.js';
import { UsageError } from '../../src/errors.js';

const D = `sha256:${'a'.repeat(64)}`;
const conf = (text: string): RegistriesConf => ({ registries: parseRegistriesConf('/r.conf', text), files: ['/r.conf'] });
const reg = (s: string) => parseReference(s) as RegistryReference;
const names = (ref: string, c: RegistriesConf) => pullLocations(reg(ref), c).map((l) => `${l.mirror ? 'm' : 'p'}${l.insecure ? '!' : ''} ${l.ref.name}`);

t.test('longest prefix at a component boundary; rewrite keeps the rest of the name', async (t) => {
  const c = conf(`
[[registry]]
prefix = "quay.io"
location = "q.mirror"
[[registry]]
prefix = "quay.io/vendor"
location = "v.mirror:5000/v"
insecure = true
[[registry]]
prefix = "quay.io/vendor/kmod:special"
location = "special.example/k"
`);
  t.same(names('quay.io/vendor/kmod:v1', c), ['p! v.mirror:5000/v/kmod:v1']);
  t.same(names('quay.io/vendorx/kmod:v1', c), ['p q.mirror/vendorx/kmod:v1'], 'vendor does not match vendorx');
  t.same(names(`quay.io/vendor/kmod@${D}`, c), [`p! v.mirror:5000/v/kmod@${D}`]);
  t.same(names('quay.io/vendor/kmod:special2', c), ['p! v.mirror:5000/v/kmod:special2'], 'a prefix with a tag matches that tag only');
  t.same(names('quay.io:8443/vendor/kmod:v1', c), ['p quay.io:8443/vendor/kmod:v1'], 'a host prefix does not match another port');
  t.same(names('docker.io/library/busybox', c), ['p docker.io/library/busybox:latest'], 'no entry: the reference itself');
});

t.test('mirrors in order then the primary; pull-from-mirror and mirror-by-digest-only', async (t) => {
  const c = conf(`
[[registry]]
prefix = "example.com/a"
[[registry.mirror]]
location = "m1.example/a"
[[registry.mirror]]
location = "m2.example/a"
pull-from-mirror = "digest-only"
insecure = true
[[registry.mirror]]
location = "m3.example/a"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "example.com/b"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m4.example/b"
pull-from-mirror = "tag-only"
`);
  t.same(names('example.com/a/k:v1', c), ['m m1.example/a/k:v1', 'm m3.example/a/k:v1', 'p example.com/a/k:v1']);
  t.same(names(`example.com/a/k@${D}`, c), [`m m1.example/a/k@${D}`, `m! m2.example/a/k@${D}`, `p example.com/a/k@${D}`]);
  t.same(names('example.com/b/k:v1', c), ['p example.com/b/k:v1'], 'mirror-by-digest-only wins over pull-from-mirror');
  t.same(names(`example.com/b/k@${D}`, c), [`m m4.example/b/k@${D}`, `p example.com/b/k@${D}`]);
});

t.test('wildcard prefixes match subdomains; a literal prefix is preferred', async (t) => {
  const c = conf(`
[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "mirror.corp.example:5000"
[[registry]]
prefix = "build.corp.example"
blocked = true
`);
  t.same(names('reg.corp.example/team/k:v1', c), ['m mirror.corp.example:5000/team/k:v1', 'p reg.corp.example/team/k:v1']);
  t.same(names('corp.example/team/k:v1', c), ['p corp.example/team/k:v1'], 'the apex is not a subdomain');
  t.throws(() => pullLocations(reg('build.corp.example/k:v1'), c), new UsageError(
    'image build.corp.example/k:v1: build.corp.example is blocked in /r.conf'));
});

t.test('bad values: exit-2 errors naming file and line', async (t) => {
  const bad = (text: string) => {
    try {
      parseRegistriesConf('/etc/containers/registries.conf', text);
      return 'no error';
    } catch (e) {
      t.ok(e instanceof UsageError);
      return (e as Error).message;
    }
  };
  t.match(bad('[[registry]]\nprefix = "a.example"\ninsecure = "yes"\n'), /^\/etc\/containers\/registries\.conf:3: insecure must be true or false$/);
  t.match(bad('[[registry]]\nlocation = "https://a.example"\n'), /:2: location "https:\/\/a\.example" is not host\[:port\]\[\/namespace\]$/);
  t.match(bad('[[registry]]\nprefix = "*.a.example"\nlocation = "b.example"\n'), /:2: a wildcard prefix \(\*\.a\.example\) must not have a location$/);
  t.match(bad('[[registry]]\ninsecure = true\n'), /a \[\[registry\]\] has neither prefix nor location/);
  t.match(bad('[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\ninsecure = true\n'), /a \[\[registry\.mirror\]\] has no location/);
  t.match(bad('registry = 3\n'), /registry must be an array of tables/);
  t.match(bad('[[registry]\nprefix = "a"\n'), /^\/etc\/containers\/registries\.conf:1:\d+: invalid TOML: /);
  t.equal(bad('unqualified-search-registries = ["docker.io"]\nshort-name-mode = "enforcing"\n[aliases]\n"x" = "docker.io/library/x"\n'),
    'no error', 'settings kmm-worker does not use are accepted');
});

t.test('drop-ins: alphanumerical order, same prefix replaced whole, only *.conf', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-regconf-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const etc = path.join(root, 'etc/containers');
  await fs.mkdir(path.join(etc, 'registries.conf.d/sub.conf'), { recursive: true });
  await fs.writeFile(path.join(etc, 'registries.conf'),
    '[[registry]]\nprefix = "a.example"\ninsecure = true\n[[registry.mirror]]\nlocation = "m.example"\n[[registry]]\nprefix = "b.example"\n');
  await fs.writeFile(path.join(etc, 'registries.conf.d/20-a.conf'), '[[registry]]\nprefix = "a.example"\nlocation = "a2.example"\n');
  await fs.writeFile(path.join(etc, 'registries.conf.d/10-c.conf'), '[[registry]]\nprefix = "c.example"\nblocked = true\n');
  await fs.writeFile(path.join(etc, 'registries.conf.d/30-bad.txt'), 'not toml [');
  const c = await loadRegistriesConf(root);
  t.same(c.files.map((f) => path.relative(etc, f)), ['registries.conf', 'registries.conf.d/10-c.conf', 'registries.conf.d/20-a.conf']);
  t.same(c.registries.map((r) => [r.prefix, r.location, r.insecure, r.mirrors.length, path.basename(r.file)]), [
    ['a.example', 'a2.example', false, 0, '20-a.conf'],
    ['b.example', 'b.example', false, 0, 'registries.conf'],
    ['c.example', 'c.example', false, 0, '10-c.conf'],
  ]);
  t.same(await loadRegistriesConf(path.join(root, 'nothing')), { registries: [], files: [] }, 'no file: nothing configured');
});
