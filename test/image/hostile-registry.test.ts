/**
 * A hostile registry or network (issue 14 F1, F3, F10): a redirect target that asks for credentials, stalls
 * before and after the headers and slow-loris bodies, and documents built to exhaust memory or the stack. The
 * registry behind the fault proxy is the real docker-registry; the proxy and the evil host are real sockets.
 */
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { evilServer, frontServer, type Fault } from '../helpers/fault-proxy.js';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { openImage } from '../../src/image/open.js';
import { OCI_MANIFEST } from '../../src/image/media-types.js';
import { netLimitsFromEnv } from '../../src/image/net-limits.js';
import { parseTimeout } from '../../src/image/deadline.js';
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

// tests cannot wait 30 s per stall: 1 s windows, the same code paths
const FAST_LIMITS = { KMM_NET_LIMITS: 'headers=1000,window=1000,rate=1024' };

t.test('F3: stalls fail each attempt, are retried like resets, and end in one line', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const big = await buildLayout({ dir: path.join(work, 'oci'), tag: 'big', layers: [...kmodLayers('6.1.0-big'),
    { 'firmware/big.bin': crypto.randomBytes(256 << 10) }] });
  await pushImage(big, reg, 'kmod:big');
  const opened = await openImage(`${reg.host}/kmod:big`);
  const blob = opened.layers[2]!;
  const onBlob = (fault: Fault, times = Infinity) => {
    let n = 0;
    return (req: http.IncomingMessage): Fault | undefined =>
      req.method === 'GET' && req.url!.endsWith(`/blobs/${blob.digest}`) && n++ < times ? fault : undefined;
  };
  const run = async (front: { host: string }, args: string[] = []) => {
    const start = Date.now();
    const r = await cli(['--images-dir', path.join(work, `images-${crypto.randomUUID()}`), 'image', 'pull',
      `${front.host}/kmod:big`, '--all', ...args], FAST_LIMITS);
    return { ...r, ms: Date.now() - start };
  };

  t.test('slow-loris: a body below the minimum rate', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'slow', bytesPerSecond: 100 }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest} \\(at byte \\d+ of ` +
      `${blob.size}\\) failed after 5 tries: received \\d+ bytes in 1 s from ${front.host} \\(less than 1 KiB/s\\)$`));
    t.equal(front.requests.filter((q) => q.url.endsWith(blob.digest)).length, 5, 'retried (resumed) like a reset');
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a hang after the headers', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-after-headers' }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest} \\(at byte 0 of ` +
      `${blob.size}\\) failed after 5 tries: received 0 bytes in 1 s from ${front.host} \\(less than 1 KiB/s\\)$`));
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a hang before the headers', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-before-headers' }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ` +
      `${blob.digest} failed after 4 tries: no response headers from ${front.host} within 1 s$`));
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a manifest that stalls after its headers', async (t) => {
    const front = await frontServer(reg.url, (req) => req.method === 'GET' && req.url!.includes('/manifests/')
      ? { fault: 'hang-after-headers', afterBytes: 10 } : undefined);
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `registry ${front.host}: manifest of ${front.host}/kmod:big failed after 4 tries: ` +
      `received 10 bytes in 1 s from ${front.host} (less than 1 KiB/s)`);
  });

  t.test('a stall that passes: resumed and complete', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-after-headers', afterBytes: 70_000 }, 1));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 0, errorLine(r.stderr));
    t.match(r.stderr, /blob download interrupted; resuming/);
    t.equal(front.requests.filter((q) => q.url.endsWith(blob.digest)).length, 2);
  });

  t.test('5xx/429 storm, resets and truncation at any byte still end in one line, in bounded time', async (t) => {
    for (const fault of [{ status: 503 }, { status: 429, headers: { 'retry-after': '0' } }, { fault: 'reset', afterBytes: 1 },
      { fault: 'truncate', afterBytes: 5000 }] as const) {
      const front = await frontServer(reg.url, onBlob(fault as Fault));
      const r = await run(front);
      await front.close();
      t.equal(r.code, 1, JSON.stringify(fault));
      t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest}.* failed (with HTTP \\d+ )?after \\d tries`));
      t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
    }
  });

  t.test('--timeout: the whole pull has a deadline', async (t) => {
    // fast enough for the rate guard (4 KiB/s), far too slow for 256 KiB in 3 s
    const front = await frontServer(reg.url, onBlob({ fault: 'slow', bytesPerSecond: 4096 }));
    t.teardown(() => front.close());
    const images = path.join(work, 'images-deadline');
    const start = Date.now();
    const r = await cli(['--images-dir', images, 'image', 'pull', `${front.host}/kmod:big`, '--all', '--timeout', '3s'],
      FAST_LIMITS);
    const ms = Date.now() - start;
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `image ${front.host}/kmod:big: pull did not finish within 3s (--timeout)`);
    t.ok(ms < 9000, `stopped soon after the deadline (${ms} ms)`);
    const entries = await fs.readdir(path.join(images, 'entries')).catch(() => []);
    t.same(entries, [], 'no cache entry, complete or partial, is left');
    const inspect = await cli(['image', 'inspect', `${front.host}/kmod:big`, '--timeout', '2s'], FAST_LIMITS);
    t.equal(inspect.code, 1);
    t.equal(errorLine(inspect.stderr), `image ${front.host}/kmod:big: inspect did not finish within 2s (--timeout)`);
    const bad = await cli(['image', 'pull', `${front.host}/kmod:big`, '--all', '--timeout', '0s']);
    t.equal(bad.code, 2);
    t.equal(errorLine(bad.stderr), `--timeout must be longer than 0s, got '0s'`);
  });

  t.test('the real defaults are wired: 30 s for headers, 1 KiB/s over 30 s, 10 min per pull', async (t) => {
    t.same(netLimitsFromEnv({}), { headersMs: 30_000, windowMs: 30_000, minBytesPerSecond: 1024 });
    t.equal(parseTimeout(undefined), 600_000);
    const r = await cli(['image', 'inspect', `${reg.host}/kmod:big`]);
    t.equal(r.code, 0, errorLine(r.stderr));
    const line = r.stderr.split('\n').find((l) => l.includes('registry client time limits'));
    t.match(JSON.parse(line ?? '{}'), { headersTimeoutMs: 30_000, stallWindowMs: 30_000, minBytesPerSecond: 1024 });
    for (const cmd of ['pull', 'inspect']) {
      const help = await cli(['image', cmd, '--help']);
      t.match(help.stdout, /--timeout <duration>.*\(default: "10m"\)/s, `image ${cmd} --help`);
    }
    const bad = await cli(['image', 'inspect', `${reg.host}/kmod:big`], { KMM_NET_LIMITS: 'window=soon' });
    t.equal(bad.code, 2);
  });
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
