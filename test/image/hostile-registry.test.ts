/**
 * A hostile registry (issue 14 F1, F10): a redirect target that asks for credentials, and documents built to
 * exhaust memory or the stack (stalls: stalls.test.ts). The
 * registry behind the fault proxy is the real docker-registry; the proxy and the evil host are real sockets.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { evilServer, frontServer } from '../helpers/fault-proxy.js';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { OCI_MANIFEST } from '../../src/image/media-types.js';
import { allStderr, cli, errorLine } from './cli.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-hostile-registry-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-hostile') });

t.test('F1: a redirect target that answers 401 with its own challenge gets no credentials', async (t) => {
  for (const auth of ['basic', 'token'] as const) {
    const reg = await startRegistry({ auth });
    t.teardown(() => reg.stop());
    await pushImage(img, reg, 'kmod:v1');
    const evil = await evilServer();
    t.teardown(() => evil.close());
    // the registry sends every blob to a "CDN" on another host
    const front = await frontServer(reg.url, (req) => {
      const m = /\/blobs\/(sha256:[a-f0-9]+)/.exec(req.url!);
      return m && req.method === 'GET' ? { fault: 'redirect', location: `http://${evil.host}/cdn/${m[1]}?sig=x` } : undefined;
    });
    t.teardown(() => front.close());
    const authFile = await writeAuthFile({ ...reg, host: front.host }, path.join(work, `${auth}-auth.json`));
    const r = await cli(['--auth-file', authFile, 'image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1, `${auth}: exit 1`);
    t.match(errorLine(r.stderr), new RegExp(`^registry ${front.host}: download of blob sha256:[a-f0-9]{64}: HTTP 401 from ` +
      `${evil.host}, where the registry redirected it; its authentication challenge is not answered \\(credentials ` +
      `go only to the registry and the token realm it announced\\)$`), `${auth}: the line names the host`);
    t.ok(front.requests.some((q) => q.url.includes('/manifests/') && q.authorization), `${auth}: the registry got credentials`);
    t.ok(evil.requests.length >= 1, `${auth}: the redirect was followed`);
    t.same(evil.requests.filter((q) => q.url.startsWith('/token')).map((q) => q.url), [], `${auth}: the evil realm was never asked for a token`);
    t.same(evil.requests.filter((q) => q.headers.authorization !== undefined).map((q) => q.headers.authorization), [],
      `${auth}: no Authorization ever reached the evil host`);
    const basic = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    const everything = JSON.stringify(evil.requests);
    t.notOk(everything.includes(basic) || everything.includes(reg.password!), `${auth}: the password never reached it`);
    for (const tok of reg.tokenServer?.issued ?? []) t.notOk(everything.includes(tok), `${auth}: no registry token reached it`);
  }
});

t.test('credentials never cross the network in clear text from an HTTPS registry to a plain-HTTP realm', async (t) => {
  const reg = await startRegistry({ auth: 'token', tls: true });
  t.teardown(() => reg.stop());
  await pushImage(img, reg, 'kmod:v1');
  const authFile = await writeAuthFile(reg, path.join(work, 'tls-token-auth.json'));
  const ts = reg.tokenServer!;
  const before = ts.requests.length;
  const env = { NODE_EXTRA_CA_CERTS: reg.caFile! };
  const r = await cli(['--auth-file', authFile, 'image', 'inspect', `${reg.host}/kmod:v1`], env);
  t.equal(r.code, 1);
  t.equal(errorLine(r.stderr), `registry ${reg.host} is reached over HTTPS but names a plain-HTTP token realm ` +
    `(${new URL(ts.realm).host}); the credentials from ${authFile} are not sent unencrypted (insecurePull: true or ` +
    `--insecure allows it)`);
  t.equal(ts.requests.length, before, 'the realm received nothing');
  const ok = await cli(['--auth-file', authFile, 'image', 'inspect', `${reg.host}/kmod:v1`, '--insecure', '--json'], env);
  t.equal(ok.code, 0, `--insecure allows it: ${errorLine(ok.stderr)}`);
  t.equal(ts.requests.length, before + 1);
});

t.test('F10: documents from a registry are bounded in size and nesting', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const digest = await pushImage(img, reg, 'kmod:v1');
  const m = await request(`${reg.url}/v2/kmod/manifests/${digest}`, { headers: { accept: OCI_MANIFEST } });
  const manifest = JSON.parse(await m.body.text()) as Record<string, unknown>;
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

  t.test('a manifest nested 100,000 levels deep', async (t) => {
    const body = JSON.stringify({ ...manifest, annotations: { x: 'PLACEHOLDER' } }).replace('"PLACEHOLDER"', deep(100_000));
    const front = await frontServer(reg.url, (req) => req.url!.includes('/manifests/')
      ? { status: 200, headers: { 'content-type': OCI_MANIFEST }, body } : undefined);
    t.teardown(() => front.close());
    const r = await cli(['image', 'inspect', `${front.host}/kmod:v1`, '--json']);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^image ${front.host}/kmod:v1: manifest sha256:[a-f0-9]{64} nests deeper than ` +
      `64 levels; refused$`));
    t.notMatch(r.stderr, /call stack/);
    // 60 levels: deeper than any real manifest, still accepted
    const ok = JSON.stringify({ ...manifest, annotations: { x: 'PLACEHOLDER' } }).replace('"PLACEHOLDER"', deep(60));
    const front2 = await frontServer(reg.url, (req) => req.url!.includes('/manifests/')
      ? { status: 200, headers: { 'content-type': OCI_MANIFEST }, body: ok } : undefined);
    t.teardown(() => front2.close());
    const r2 = await cli(['image', 'inspect', `${front2.host}/kmod:v1`, '--json']);
    t.equal(r2.code, 0, errorLine(r2.stderr));
  });

  t.test('a manifest larger than 4 MiB', async (t) => {
    const body = JSON.stringify({ ...manifest, annotations: { x: 'y'.repeat(5 << 20) } });
    const front = await frontServer(reg.url, (req) => req.url!.includes('/manifests/')
      ? { status: 200, headers: { 'content-type': OCI_MANIFEST }, body } : undefined);
    t.teardown(() => front.close());
    const r = await cli(['image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `image ${front.host}/kmod:v1: manifest larger than ${4 << 20} bytes`);
  });

  t.test("a registry's error message: no control characters, bounded", async (t) => {
    const body = JSON.stringify({ errors: [{ code: 'DENIED', message: `\u001b[31mred\u0007 ${'m'.repeat(10_000)}` }] });
    const front = await frontServer(reg.url, (req) => req.url!.includes('/manifests/')
      ? { status: 403, headers: { 'content-type': 'application/json' }, body } : undefined);
    t.teardown(() => front.close());
    const r = await cli(['image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1);
    const line = errorLine(r.stderr);
    t.match(line, new RegExp(`^registry ${front.host}: access to kmod denied \\(HTTP 403\\) \\(DENIED: \\?\\[31mred\\? m+…$`));
    t.ok(line.length < 300, `${line.length} characters`);
  });

  // a registry whose Bearer realm hands out hostile token responses
  const tokenBodies: string[] = [];
  const realm = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(tokenBodies.shift() ?? '{"token":"t"}');
  });
  realm.listen(0, '127.0.0.1');
  await once(realm, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    realm.closeAllConnections();
    realm.close(() => r());
  }));
  const realmHost = `127.0.0.1:${(realm.address() as AddressInfo).port}`;
  const front = await frontServer(reg.url, (req) => req.headers.authorization ? undefined : {
    status: 401, headers: { 'www-authenticate': `Bearer realm="http://${realmHost}/token",service="s"` } });
  t.teardown(() => front.close());

  t.test('a token response larger than 1 MiB', async (t) => {
    tokenBodies.push(JSON.stringify({ token: 'x'.repeat(2 << 20) }));
    const r = await cli(['image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `registry ${front.host}: the token server ${realmHost} sent a response larger than ` +
      `${1 << 20} bytes`);
  });

  t.test('a token response nested 100,000 levels deep', async (t) => {
    tokenBodies.push(`{"token":"t","x":${deep(100_000)}}`);
    const r = await cli(['image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `registry ${front.host}: the token response of ${realmHost} nests deeper than 64 ` +
      `levels; refused`);
    tokenBodies.length = 0;
    const ok = await cli(['image', 'inspect', `${front.host}/kmod:v1`, '--json']);
    t.equal(ok.code, 0, `a plain token works: ${errorLine(ok.stderr)}`);
  });
});

t.test('no credential in any log line', async (t) => {
  t.notMatch(allStderr.join('\n'), /(Basic|Bearer) [A-Za-z0-9+/=_.-]{8,}/);
});
