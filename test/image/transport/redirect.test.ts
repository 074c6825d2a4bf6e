/**
 * transport/redirect.ts: redirects are followed by hand, and the registry's Authorization header goes only to
 * the origin the request was made to (security rule F1), never to the host a redirect names.
 */
import t from 'tap';
import { followRedirects, MAX_REDIRECTS, redirectTargetError } from '../../../src/image/transport/redirect.js';
import { loopbackHttp, serve } from './servers.js';

const AUTHZ = 'Bearer s3cr3t-token';
const conn = loopbackHttp();
t.teardown(() => conn.close());
const via = { registry: 'reg.example', raw: conn.raw, discard: (r: Parameters<typeof conn.discard>[0]) => conn.discard(r) };

t.test('Authorization goes to the registry and its own redirects, never to another host', async (t) => {
  const storage = await serve((_req, res) => res.end('blob bytes'));
  t.teardown(() => storage.close());
  const registry = await serve((req, res) => {
    if (req.url === '/v2/r/blobs/a') res.writeHead(302, { location: '/v2/r/blobs/b' }).end();
    else res.writeHead(307, { location: `http://storage.test:${storage.port}/bucket/b?X-Amz-Signature=sig` }).end();
  });
  t.teardown(() => registry.close());

  const res = await followRedirects(via, 'GET', `http://registry.test:${registry.port}/v2/r/blobs/a`, { accept: '*/*' },
    AUTHZ);
  t.equal(res.statusCode, 200);
  t.equal(Buffer.from(await res.body.arrayBuffer()).toString(), 'blob bytes');
  t.same(registry.seen.map((s) => [s.url, s.authorization]), [['/v2/r/blobs/a', AUTHZ], ['/v2/r/blobs/b', AUTHZ]],
    'the registry origin gets it on every hop');
  t.same(storage.seen.map((s) => [s.url, s.authorization]), [['/bucket/b?X-Amz-Signature=sig', undefined]],
    'the other host (another name on the same address) gets none');
  t.equal(res.url, `http://storage.test:${storage.port}/bucket/b`, 'the answering URL is kept without its query');
});

t.test('a redirect back to the registry after another host carries Authorization again only there', async (t) => {
  let registryPort = 0;
  const cdn = await serve((_req, res) => res.writeHead(302, { location: `http://registry.test:${registryPort}/v2/r/blobs/c` }).end());
  t.teardown(() => cdn.close());
  const registry = await serve((req, res) => {
    if (req.url === '/v2/r/blobs/a') res.writeHead(307, { location: `http://storage.test:${cdn.port}/x` }).end();
    else res.end('ok');
  });
  registryPort = registry.port;
  t.teardown(() => registry.close());
  const res = await followRedirects(via, 'GET', `http://registry.test:${registry.port}/v2/r/blobs/a`, {}, AUTHZ);
  await res.body.dump();
  t.same(cdn.seen.map((s) => s.authorization), [undefined]);
  t.same(registry.seen.map((s) => s.authorization), [AUTHZ, AUTHZ]);
});

t.test(`more than ${MAX_REDIRECTS} redirects: one line, without the query`, async (t) => {
  const loop = await serve((req, res) => res.writeHead(302, { location: `${req.url!.split('?')[0]}x?sig=1` }).end());
  t.teardown(() => loop.close());
  await t.rejects(followRedirects(via, 'GET', `http://registry.test:${loop.port}/v2/r/blobs/a?sig=0`, {}, AUTHZ),
    { message: `registry reg.example: more than ${MAX_REDIRECTS} redirects for http://registry.test:${loop.port}/v2/r/blobs/a` });
  t.equal(loop.seen.length, MAX_REDIRECTS + 1);
});

t.test("a redirect target's failure is named as such; its 401 challenge is not answered", async (t) => {
  const cdn = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="cdn"' }).end('no'));
  t.teardown(() => cdn.close());
  const res = await conn.raw('GET', `http://storage.test:${cdn.port}/x?sig=1`, {});
  const err = await redirectTargetError('reg.example', res, 'download of blob sha256:ab');
  t.equal(err.message, `registry reg.example: download of blob sha256:ab: HTTP 401 from storage.test:${cdn.port}, where ` +
    'the registry redirected it; its authentication challenge is not answered (credentials go only to the registry ' +
    'and the token realm it announced)');
});
