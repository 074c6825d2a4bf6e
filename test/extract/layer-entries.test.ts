import t from 'tap';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import tar from 'tar-stream';
import { createHash, randomBytes } from 'node:crypto';
import { DiffIdMismatchError, layerEntries, layerCompression } from '../../src/extract/layer-entries.js';
import { verifiedStream } from '../../src/image/verify.js';
import { OperationError } from '../../src/errors.js';

const OCI = 'application/vnd.oci.image.layer.v1.tar';

async function tarBytes(entries: { name: string; body?: string; type?: 'file' | 'directory' | 'symlink'; linkname?: string }[]) {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'directory' || e.type === 'symlink') pack.entry({ name: e.name, type: e.type, linkname: e.linkname });
    else pack.entry({ name: e.name }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function collect(blob: Readable, mediaType: string, readBodies = true) {
  const out: { name: string; type: string; body: string }[] = [];
  for await (const { header, stream } of layerEntries(blob, mediaType)) {
    let body = '';
    if (readBodies) for await (const c of stream) body += c.toString();
    out.push({ name: header.name, type: header.type, body });
  }
  return out;
}

const sample = [
  { name: 'opt/', type: 'directory' as const },
  { name: 'opt/lib/modules/6.1.0/kmm.ko', body: 'ELF-ish' },
  { name: 'opt/host', type: 'symlink' as const, linkname: '/lib/modules/6.1.0' },
  { name: 'firmware/fw.bin', body: 'x'.repeat(200_000) },
];

t.test('reads the same entries from plain, gzip and zstd layers', async (t) => {
  const raw = await tarBytes(sample);
  const variants: [string, Buffer][] = [
    [OCI, raw],
    [OCI + '+gzip', zlib.gzipSync(raw)],
    [OCI + '+zstd', zlib.zstdCompressSync(raw)],
    ['application/vnd.docker.image.rootfs.diff.tar.gzip', zlib.gzipSync(raw)],
  ];
  for (const [mt, bytes] of variants) {
    const entries = await collect(Readable.from([bytes]), mt);
    t.same(entries.map((e) => [e.name, e.type]), [
      ['opt/', 'directory'], ['opt/lib/modules/6.1.0/kmm.ko', 'file'], ['opt/host', 'symlink'], ['firmware/fw.bin', 'file'],
    ], mt);
    t.equal(entries[1]!.body, 'ELF-ish', mt);
    t.equal(entries[3]!.body.length, 200_000, mt);
  }
});

t.test('entries the consumer does not read are drained for it', async (t) => {
  const raw = await tarBytes(sample);
  const entries = await collect(Readable.from([zlib.gzipSync(raw)]), OCI + '+gzip', false);
  t.equal(entries.length, 4);
});

t.test('an unknown media type is an OperationError naming it', async (t) => {
  t.equal(layerCompression(OCI + '+zstd'), 'zstd');
  await t.rejects(collect(Readable.from([Buffer.alloc(0)]), 'application/x-rar'), {
    constructor: OperationError, message: /unsupported layer media type "application\/x-rar"/,
  });
});

t.test('a truncated gzip layer rejects instead of ending cleanly', async (t) => {
  const gz = zlib.gzipSync(await tarBytes(sample));
  await t.rejects(collect(Readable.from([gz.subarray(0, gz.length - 5000)]), OCI + '+gzip'), OperationError);
});

t.test('an error of the blob itself surfaces unchanged', async (t) => {
  const gz = zlib.gzipSync(await tarBytes(sample));
  const blob = new Readable({ read() {} });
  blob.push(gz.subarray(0, 1000));
  setTimeout(() => blob.destroy(new Error('sha256 mismatch for blob sha256:abc')), 20);
  await t.rejects(collect(blob, OCI + '+gzip'), { message: 'sha256 mismatch for blob sha256:abc' });
});

t.test('breaking out early releases the blob', async (t) => {
  const raw = await tarBytes(sample);
  const blob = Readable.from([raw]);
  for await (const { header } of layerEntries(blob, OCI)) {
    t.equal(header.name, 'opt/');
    break;
  }
  t.ok(blob.destroyed);
});

/** A skippable frame (RFC 8878 §3.1.2): magic 0x184D2A5?, a 4-byte little-endian size, then that many bytes. */
function skippable(data: Buffer, nibble = 0): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + nibble, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data]);
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

t.test('zstd: every frame is read, a frame boundary may fall inside a tar entry, skippable frames are skipped', async (t) => {
  const raw = await tarBytes(sample);
  // cut inside firmware/fw.bin's body (the last entry, 200,000 bytes)
  const cut = raw.length - 150_000;
  const frames = Buffer.concat([zlib.zstdCompressSync(raw.subarray(0, cut)), zlib.zstdCompressSync(raw.subarray(cut))]);
  const variants: [string, Buffer][] = [
    ['two frames', frames],
    ['skippable frames before, between and after', Buffer.concat([skippable(Buffer.from('zstd:chunked TOC?'), 0),
      zlib.zstdCompressSync(raw.subarray(0, cut)), skippable(Buffer.alloc(3), 7),
      zlib.zstdCompressSync(raw.subarray(cut)), skippable(Buffer.from('trailer'), 15)])],
    ['a skippable frame first, then one frame', Buffer.concat([skippable(Buffer.alloc(16)), zlib.zstdCompressSync(raw)])],
  ];
  for (const [what, blob] of variants) {
    const entries: string[] = [];
    let fw = 0;
    for await (const { header, stream } of layerEntries(Readable.from([blob]), OCI + '+zstd', { diffId: sha(raw) })) {
      entries.push(header.name);
      for await (const c of stream) if (header.name === 'firmware/fw.bin') fw += c.length;
    }
    t.same(entries, sample.map((e) => e.name), what);
    t.equal(fw, 200_000, `${what}: the entry cut by a frame boundary is whole`);
  }
});

t.test('gzip with several members (pigz, estargz) is read whole', async (t) => {
  const raw = await tarBytes(sample);
  const cut = raw.length - 150_000;
  const blob = Buffer.concat([zlib.gzipSync(raw.subarray(0, 1000)), zlib.gzipSync(raw.subarray(1000, cut)),
    zlib.gzipSync(raw.subarray(cut))]);
  const entries = await collect(Readable.from([blob]), OCI + '+gzip');
  t.same(entries.map((e) => e.name), sample.map((e) => e.name));
  t.equal(entries[3]!.body.length, 200_000);
});

t.test('the uncompressed stream must match its DiffID', async (t) => {
  const raw = await tarBytes(sample);
  const lie = sha(Buffer.from('something else'));
  for (const [mt, blob] of [[OCI, raw], [OCI + '+gzip', zlib.gzipSync(raw)], [OCI + '+zstd', zlib.zstdCompressSync(raw)]] as const) {
    const entries = layerEntries(Readable.from([blob]), mt, { diffId: lie, what: 'image test/x:1: layer sha256:abc' });
    await t.rejects((async () => { for await (const { stream } of entries) stream.resume(); })(), {
      constructor: DiffIdMismatchError,
      message: `image test/x:1: layer sha256:abc: uncompressed content does not match the DiffID of the image config: expected ${lie}, got ${sha(raw)}`,
    }, mt);
    // the right DiffID passes, and covers the zero blocks after the end-of-archive marker too
    const padded = Buffer.concat([raw, Buffer.alloc(10240)]);
    const ok = layerEntries(Readable.from([padded]), OCI, { diffId: sha(padded) });
    for await (const { stream } of ok) stream.resume();
  }
});

t.test('a corrupt zstd layer fails with the decoder\'s words, naming the layer', async (t) => {
  const raw = await tarBytes(sample);
  const z = zlib.zstdCompressSync(raw);
  const bad = Buffer.from(z);
  bad.fill(0x55, 100, 200);
  await t.rejects(collect(Readable.from([bad]), OCI + '+zstd'), { constructor: OperationError, message: /^layer is not a valid tar\+zstd stream: / });
  const entries = layerEntries(Readable.from([z.subarray(0, z.length - 1000)]), OCI + '+zstd', { what: 'image i: layer sha256:l' });
  await t.rejects((async () => { for await (const { stream } of entries) stream.resume(); })(),
    { message: /^image i: layer sha256:l: layer is not a valid tar\+zstd stream: / });
});

t.test('a blob corrupted at its start reports the digest mismatch, not the garbage it decodes to', async (t) => {
  const gz = zlib.gzipSync(await tarBytes([...sample, { name: 'big.bin', body: randomBytes(1 << 20).toString('base64') }]));
  const desc = { mediaType: OCI + '+gzip', digest: sha(gz), size: gz.length };
  const served = Buffer.from(gz);
  served[0] = 0x00;
  // the bytes arrive over time, as from a registry: the decoder fails long before the digest is known
  async function* slowly() {
    for (let i = 0; i < served.length; i += 16384) {
      await new Promise((r) => setTimeout(r, 1));
      yield served.subarray(i, i + 16384);
    }
  }
  const blob = verifiedStream(slowly(), desc, 'image r/x:1: blob');
  await t.rejects(collect(blob, desc.mediaType), { message: new RegExp(`^image r/x:1: blob ${desc.digest}: content does not match its digest`) });
});

t.test('leaving a layer early with an entry unread closes every stream without an error event', async (t) => {
  const raw = await tarBytes(sample);
  for (const [mt, blob] of [[OCI + '+gzip', zlib.gzipSync(raw)], [OCI + '+zstd', zlib.zstdCompressSync(raw)], [OCI, raw]] as const) {
    const source = Readable.from([blob.subarray(0, 3000), blob.subarray(3000)]);
    for await (const { header, stream } of layerEntries(source, mt)) {
      // what preflight did: resume the entry it found, and return from the loop
      stream.resume();
      if (header.name === 'firmware/fw.bin') break;
    }
    await new Promise((r) => setTimeout(r, 50));
    t.ok(source.destroyed, mt);
  }
});

t.test('an abort ends a layer whose blob stalled, also while a decode failure waits for the blob', async (t) => {
  const raw = await tarBytes(sample);
  const cases: [string, Buffer][] = [
    [OCI + '+zstd', zlib.zstdCompressSync(raw)],
    [OCI + '+gzip', zlib.gzipSync(raw)],
    [OCI + '+gzip', Buffer.from('not gzip at all, and then the registry stalls')],
  ];
  for (const [mt, data] of cases) {
    const blob = new Readable({ read() {} });
    blob.push(data.subarray(0, 100)); // and nothing more, ever
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('interrupted by SIGTERM')), 200);
    await t.rejects((async () => {
      for await (const { stream } of layerEntries(blob, mt, { signal: ac.signal })) stream.resume();
    })(), { message: 'interrupted by SIGTERM' }, mt);
    t.ok(blob.destroyed, `${mt}: the blob is released`);
  }
});
