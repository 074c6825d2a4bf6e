/**
 * The transport against a real registry and a misbehaving network: blobs corrupted in the registry's storage,
 * connections reset mid-blob (resumed with Range, or failing clearly), 5xx/429 with Retry-After, redirects to
 * another host (no Authorization there), and resolveDigest's single manifest request.
 */
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { pino } from 'pino';
import { startRegistry } from '../helpers/registry.js';
import { buildIndex, buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { cli, errorLine, allStderr, spawnCli } from './cli.js';
import { frontServer, resetProxy } from '../helpers/fault-proxy.js';
import { openImage, resolveDigest } from '../../src/image/open.js';
import { DigestMismatchError } from '../../src/image/verify.js';

const FAST = { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 };
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-transport-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());
const layout = path.join(work, 'oci');

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, dest), lines };
}

t.test('a blob corrupted in the registry storage is never used', async (t) => {
  const img = await buildLayout({ dir: layout, tag: 'corrupt', layers: kmodLayers('6.1.0-corrupt') });
  await pushImage(img, reg, 'kmod:corrupt', { compress: 'none' });
  const opened = await openImage(`${reg.host}/kmod:corrupt`, { retry: FAST });
  const layer = opened.layers[0]!;
  // same size, one byte changed inside a file's data: the tar stays valid, only the digest tells
  const file = reg.blobPath(layer.digest);
  const data = await fs.readFile(file);
  const at = data.indexOf('ELF-fake');
  t.ok(at > 0);
  data[at] = 'X'.charCodeAt(0);
  await fs.writeFile(file, data);
  const got = sha(data);

  const stream = await opened.openBlob(layer);
  let received = 0;
  let ended = false;
  stream.on('data', (c: Buffer) => (received += c.length));
  stream.on('end', () => (ended = true));
  const err = await once(stream, 'error').then(([e]) => e as Error);
  t.type(err, DigestMismatchError);
  t.equal(err.message, `image ${reg.host}/kmod:corrupt: blob ${layer.digest}: content does not match its digest (got ${got})`);
  t.notOk(ended, 'the stream never ends cleanly');
  t.ok(received < layer.size, `the consumer did not even get all the bytes (${received} of ${layer.size})`);

  const r = await cli(['image', 'inspect', `${reg.host}/kmod:corrupt`]);
  t.equal(r.code, 1);
  t.equal(errorLine(r.stderr), err.message);
  t.equal(r.stdout, '');

  // a truncated blob: the size check names it
  await fs.writeFile(file, data.subarray(0, data.length - 100));
  const r2 = await cli(['image', 'inspect', `${reg.host}/kmod:corrupt`]);
  t.equal(r2.code, 1);
  t.equal(errorLine(r2.stderr),
    `image ${reg.host}/kmod:corrupt: blob ${layer.digest}: got ${layer.size - 100} bytes, its descriptor says ${layer.size}`);
});

function sha(b: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
}

t.test('a connection reset mid-blob', async (t) => {
  const big = await buildLayout({ dir: layout, tag: 'big', layers: [...kmodLayers('6.1.0-big'),
    { 'firmware/big.bin': crypto.randomBytes(3 << 20) }] });
  const pushed = await pushImage(big, reg, 'kmod:big');
  const opened = await openImage(`${reg.host}/kmod:big`);
  t.equal(opened.digest, pushed);
  const bigLayer = opened.layers[2]!;
  t.ok(bigLayer.size > 3 << 20);

  t.test('is resumed with Range and completes', async (t) => {
    const proxy = await resetProxy(reg, bigLayer.digest, 512 << 10, 2);
    t.teardown(() => proxy.close());
    await reg.clearRequests();
    const r = await cli(['image', 'inspect', `${proxy.host}/kmod:big`, '--json']);
    t.equal(r.code, 0, errorLine(r.stderr));
    t.same(JSON.parse(r.stdout).kernels['6.1.0-big'].length, 2);
    t.equal(proxy.cuts, 2, 'two connections were cut');
    t.equal(proxy.blobRequests.length, 3);
    t.notMatch(proxy.blobRequests[0], /\r\nrange:/, 'the first request asks for the whole blob');
    t.match(proxy.blobRequests[1], /\r\nrange: bytes=[1-9]\d*-\r\n/, 'the retry resumes where the data stopped');
    t.match(proxy.blobRequests[2], /\r\nrange: bytes=[1-9]\d*-\r\n/);
    const statuses = (await reg.requests()).filter((q) => q.path.endsWith(bigLayer.digest)).map((q) => q.status);
    t.same(statuses.slice(-2), [206, 206], 'the registry served partial content');
    t.match(r.stderr, /blob download interrupted; resuming/);
  });

  t.test('restarts and skips what it had when the server ignores Range', async (t) => {
    const front = await frontServer(reg.url, () => undefined, '127.0.0.1', { ignoreRange: true });
    t.teardown(() => front.close());
    const proxy = await resetProxy(front, bigLayer.digest, 700 << 10, 1);
    t.teardown(() => proxy.close());
    await reg.clearRequests();
    const r = await cli(['image', 'inspect', `${proxy.host}/kmod:big`, '--json']);
    t.equal(r.code, 0, errorLine(r.stderr));
    t.equal(proxy.cuts, 1);
    t.match(proxy.blobRequests[1], /\r\nrange: bytes=[1-9]\d*-\r\n/, 'asked to resume');
    const statuses = (await reg.requests()).filter((q) => q.path.endsWith(bigLayer.digest)).map((q) => q.status);
    t.same(statuses, [200, 200], 'got the whole blob again, and the digest still matched');
  });

  t.test('fails with one clear line when it never recovers', async (t) => {
    const proxy = await resetProxy(reg, bigLayer.digest, 100, Infinity);
    t.teardown(() => proxy.close());
    const start = Date.now();
    const r = await cli(['image', 'inspect', `${proxy.host}/kmod:big`]);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^registry ${proxy.host}: download of blob ${bigLayer.digest} failed after 4 tries: .+$`));
    t.equal(proxy.blobRequests.length, 4, 'bounded retries');
    t.ok(Date.now() - start < 15_000, 'bounded time');
  });
});

t.test('SIGINT during a download stops it: exit 130, one line', async (t) => {
  const img = await buildLayout({ dir: layout, tag: 'stall', layers: kmodLayers('6.1.0-stall') });
  await pushImage(img, reg, 'kmod:stall');
  let sawBlob!: () => void;
  const blobAsked = new Promise<void>((r) => (sawBlob = r));
  // a registry that starts a layer and then never sends a byte more
  const stall = http.createServer((req, res) => {
    if (/\/blobs\//.test(req.url!)) {
      sawBlob();
      res.writeHead(200, { 'content-length': '1000000' });
      res.write('x');
      return;
    }
    void request(`${reg.url}${req.url}`, { method: req.method as 'GET', headers: { accept: String(req.headers.accept ?? '') } })
      .then(async (up) => {
        res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders);
        for await (const c of up.body) res.write(c);
        res.end();
      });
  });
  stall.listen(0, '127.0.0.1');
  await once(stall, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    stall.closeAllConnections();
    stall.close(() => r());
  }));
  const host = `127.0.0.1:${(stall.address() as import('node:net').AddressInfo).port}`;
  const child = spawnCli(['image', 'inspect', `${host}/kmod:stall`]);
  await blobAsked;
  // the first blob (the config) has started and stalls
  await new Promise((r) => setTimeout(r, 200));
  const start = Date.now();
  child.kill('SIGINT');
  const r = await child;
  t.equal(r.exitCode, 130);
  t.ok(Date.now() - start < 5000, 'stopped promptly');
  t.equal(errorLine(String(r.stderr)), 'interrupted by SIGINT');
});

t.test('5xx and 429 are retried, Retry-After honoured', async (t) => {
  const img = await buildLayout({ dir: layout, tag: 'retry', layers: kmodLayers('6.1.0-retry') });
  await pushImage(img, reg, 'kmod:retry');
  let n = 0;
  const front = await frontServer(reg.url, (req) => {
    if (!req.url!.includes('/manifests/')) return undefined;
    n++;
    if (n === 1) return { status: 503, headers: { 'retry-after': '0' } };
    if (n === 2) return { status: 429, headers: { 'retry-after': '1' } };
    return undefined;
  });
  t.teardown(() => front.close());
  const { log, lines } = capture();
  const start = Date.now();
  const img2 = await openImage(`${front.host}/kmod:retry`, { log, retry: FAST });
  t.ok(Date.now() - start >= 900, 'waited the 1 s the 429 asked for');
  t.equal(img2.layers.length, 2);
  t.same(lines.filter((l) => l.msg === 'registry request failed; retrying').map((l) => l.reason), ['HTTP 503', 'HTTP 429']);

  const always = await frontServer(reg.url, (req) => (req.url!.includes('/manifests/') ? { status: 500 } : undefined));
  t.teardown(() => always.close());
  await t.rejects(openImage(`${always.host}/kmod:retry`, { retry: FAST }),
    { message: `registry ${always.host}: manifest of ${always.host}/kmod:retry failed with HTTP 500 after 4 tries` });
  t.equal(always.requests.filter((q) => q.url.includes('/manifests/')).length, 4);
});

t.test('a redirect to another host does not carry the Authorization header', async (t) => {
  const breg = await startRegistry({ auth: 'basic' });
  t.teardown(() => breg.stop());
  const img = await buildLayout({ dir: layout, tag: 'redir', layers: kmodLayers('6.1.0-redir') });
  await pushImage(img, breg, 'kmod:redir');
  const basic = `Basic ${Buffer.from(`${breg.username}:${breg.password}`).toString('base64')}`;
  // "object storage": another host that serves blobs by itself (it has its own access to the registry)
  const storageSeen: Array<{ url: string; authorization: boolean }> = [];
  const storage = http.createServer(async (req, res) => {
    storageSeen.push({ url: req.url!, authorization: req.headers.authorization !== undefined });
    const digest = req.url!.split('?')[0]!.split('/').pop()!;
    const up = await request(`${breg.url}/v2/kmod/blobs/${digest}`, { headers: { authorization: basic } });
    res.writeHead(up.statusCode, { 'content-length': String(up.headers['content-length']) });
    for await (const c of up.body) res.write(c);
    res.end();
  });
  storage.listen(0, '127.0.0.1');
  await once(storage, 'listening');
  t.teardown(() => new Promise<void>((r) => storage.close(() => r())));
  const sport = (storage.address() as import('node:net').AddressInfo).port;
  const front = await frontServer(breg.url, (req) => {
    const m = /\/blobs\/(sha256:[a-f0-9]+)/.exec(req.url!);
    if (!m || req.method !== 'GET') return undefined;
    return { status: 307, headers: { location: `http://localhost:${sport}/bucket/${m[1]}?X-Amz-Signature=s3cr3t-sig` } };
  });
  t.teardown(() => front.close());
  const authFile = path.join(work, 'redir-auth.json');
  await fs.writeFile(authFile, JSON.stringify({ auths: { [front.host]: {
    auth: Buffer.from(`${breg.username}:${breg.password}`).toString('base64') } } }));
  const r = await cli(['--auth-file', authFile, 'image', 'inspect', `${front.host}/kmod:redir`, '--json']);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.same(Object.keys(JSON.parse(r.stdout).kernels), ['6.1.0-redir']);
  t.equal(storageSeen.length, 3, 'config and both layers came from the other host');
  t.same(storageSeen.filter((s) => s.authorization), [], 'none of them with Authorization');
  t.ok(front.requests.some((q) => q.url.includes('/manifests/') && q.authorization), 'the registry got it');
  t.notMatch(r.stderr, /s3cr3t-sig/, 'the signed query of the redirect is not logged');
});

t.test('manifests are checked against their digest', async (t) => {
  const img = await buildLayout({ dir: layout, tag: 'tamper', layers: kmodLayers('6.1.0-tamper') });
  const digest = await pushImage(img, reg, 'kmod:tamper');
  const r = await request(`${reg.url}/v2/kmod/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const body = (await r.body.text()).replace('"schemaVersion":2', '"schemaVersion": 2');
  const front = await frontServer(reg.url, (req) => req.url!.includes('/manifests/') ? {
    status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body } : undefined);
  t.teardown(() => front.close());
  await t.rejects(openImage(`${front.host}/kmod@${digest}`), { message: new RegExp(
    `^image ${front.host}/kmod@${digest}: manifest ${digest} does not match its digest \\(got sha256:[a-f0-9]{64}\\)$`) });
  const lying = await frontServer(reg.url, (req) => req.url!.includes('/manifests/') ? {
    status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest }, body } : undefined);
  t.teardown(() => lying.close());
  await t.rejects(openImage(`${lying.host}/kmod:tamper`), { message: new RegExp(
    `^image ${lying.host}/kmod:tamper: the registry says the manifest is ${digest} but its content is sha256:`) });
});

t.test('resolveDigest: one manifest request', async (t) => {
  await buildLayout({ dir: layout, tag: 'arm', arch: 'arm64', layers: kmodLayers('6.1.0-arm') });
  await buildLayout({ dir: layout, tag: 'amd', layers: kmodLayers('6.1.0-amd') });
  const idx = await buildIndex({ dir: layout, tag: 'multi', images: [{ tag: 'amd', platform: 'linux/amd64' },
    { tag: 'arm', platform: 'linux/arm64' }] });
  const pushed = await pushImage(idx, reg, 'kmod:multi');
  // warm: the ping and (here no) auth happen once per client
  await resolveDigest(`${reg.host}/kmod:multi`);
  await reg.clearRequests();
  t.equal(await resolveDigest(`${reg.host}/kmod:multi`), pushed);
  const reqs = await reg.requests();
  t.same(reqs.map((q) => [q.method, q.path]), [['HEAD', '/v2/kmod/manifests/multi']]);
  t.equal((await openImage(`${reg.host}/kmod:multi`)).digest, pushed, 'the same digest openImage reports');
  t.equal(await resolveDigest(`oci:${layout}:multi`), idx.digest);
  await t.rejects(resolveDigest(`${reg.host}/kmod:gone`), { message: new RegExp(`^image ${reg.host}/kmod:gone: tag 'gone' not found on registry ${reg.host}; the repository has: `) });
  await t.rejects(resolveDigest(`${reg.host}/nothere:v1`), { message: `image ${reg.host}/nothere:v1: repository nothere not found on registry ${reg.host}; check the image name` },
    'an unknown repository is not reported as a missing tag');
});

t.test('no credential or signed URL in any log line', async (t) => {
  const logs = allStderr.join('\n');
  t.notMatch(logs, /s3cr3t-sig|Basic [A-Za-z0-9+/=]{8,}/);
});
