import t from 'tap';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import tar from 'tar-stream';
import { layerEntries, layerCompression } from '../../src/extract/layer-entries.js';
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
