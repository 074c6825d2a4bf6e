import t from 'tap';
import path from 'node:path';
import { parseReference, isLoopbackHost } from '../../src/image/reference.js';
import { UsageError } from '../../src/errors.js';
import { parseChallenges } from '../../src/image/challenge.js';

const D = 'sha256:' + 'a'.repeat(64);

t.test('registry references are normalised as docker does', async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['busybox', { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest',
      name: 'docker.io/library/busybox:latest' }],
    ['org/kmod:1.0', { registry: 'docker.io', repository: 'org/kmod', tag: '1.0', name: 'docker.io/org/kmod:1.0' }],
    ['index.docker.io/library/alpine:3', { registry: 'docker.io', repository: 'library/alpine', tag: '3' }],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine' }],
    ['quay.io/org/sub/kmod:6.1.0-27-amd64', { registry: 'quay.io', endpoint: 'quay.io', repository: 'org/sub/kmod',
      tag: '6.1.0-27-amd64' }],
    ['localhost/kmod', { registry: 'localhost', repository: 'kmod', tag: 'latest' }],
    ['localhost:5000/kmod:v1', { registry: 'localhost:5000', repository: 'kmod', tag: 'v1' }],
    ['127.0.0.1:5000/a/b:c', { registry: '127.0.0.1:5000', repository: 'a/b', tag: 'c' }],
    ['[::1]:5000/kmod:x', { registry: '[::1]:5000', repository: 'kmod', tag: 'x' }],
    [`reg.example/kmod@${D}`, { repository: 'kmod', digest: D, tag: undefined, name: `reg.example/kmod@${D}` }],
    [`reg.example/kmod:v1@${D}`, { tag: 'v1', digest: D, name: `reg.example/kmod:v1@${D}` }],
  ];
  for (const [ref, want] of cases) t.match(parseReference(ref), { kind: 'registry', ...want }, ref);
  t.equal((parseReference('busybox') as { tag?: string }).tag, 'latest');
  t.notOk('tag' in parseReference(`reg.example/kmod@${D}`), 'a digest reference has no implied tag');
});

t.test('malformed references are usage errors naming the problem', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Kmod', /invalid repository name/],
    ['reg.example/Kmod:v1', /invalid repository name 'Kmod'/],
    ['reg.example/kmod:', /malformed tag ''/],
    ['reg.example/kmod:v@1', /malformed digest/],
    ['reg.example/kmod@sha256:abc', /malformed digest 'sha256:abc'/],
    [`reg.example/kmod@sha512:${'a'.repeat(128)}`, /unsupported digest/],
    ['https://reg.example/kmod', /URL scheme/],
    ['reg.example/', /no repository|invalid repository/],
    ['reg.example/kmod v1', /whitespace/],
    ['reg..example/kmod', /malformed registry host/],
    ['reg.example/kmod:' + 'x'.repeat(129), /malformed tag/],
    ['oci:', /no layout path/],
  ];
  for (const [ref, msg] of bad) {
    t.throws(() => parseReference(ref), msg, ref);
    try {
      parseReference(ref);
    } catch (e) {
      t.type(e, UsageError, `${ref}: UsageError`);
    }
  }
});

t.test('oci: layout references', async (t) => {
  t.match(parseReference('oci:/srv/layout:v1'), { kind: 'oci', path: '/srv/layout', tag: 'v1', name: 'oci:/srv/layout:v1' });
  t.match(parseReference('oci:/srv/layout'), { kind: 'oci', path: '/srv/layout', tag: undefined });
  t.match(parseReference('oci:rel/dir:t'), { path: path.resolve('rel/dir'), tag: 't' });
  t.match(parseReference(`oci:/srv/l@${D}`), { path: '/srv/l', digest: D });
  t.match(parseReference('oci:/srv/a:b/c'), { path: '/srv/a:b/c', tag: undefined }, 'a colon inside the path is not a tag');
});

t.test('loopback hosts', async (t) => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) t.ok(isLoopbackHost(h), h);
  for (const h of ['10.0.0.1:5000', 'registry.local', '[::2]:5000', '127.0.0.1.example']) t.notOk(isLoopbackHost(h), h);
});

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(parseChallenges('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull"'),
    [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull' } }]);
  t.same(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  t.same(parseChallenges('Bearer realm="r",error="insufficient_scope"'),
    [{ scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope' } }]);
  t.same(parseChallenges(undefined), []);
});

t.test('a registry that speaks plain HTTP, not on loopback and not insecure: a hint', async (t) => {
  const { networkError } = await import('../../src/image/transport/errors.js');
  const tlsErr = Object.assign(new Error('C0B7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'),
    { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
  t.equal(networkError('reg.example:5000', 'reg.example:5000', tlsErr, 'ping /v2/', 1).message,
    'registry reg.example:5000 does not speak HTTPS; to use plain HTTP pass --insecure');
  const certErr = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  t.match(networkError('reg.example:5000', 'reg.example:5000', certErr, 'ping /v2/', 1).message,
    /^registry reg.example:5000: TLS certificate not trusted/);
});
