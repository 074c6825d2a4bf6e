/**
 * listKernelModules on layers crafted with tar-stream: the overlay rules umoci does not produce by itself
 * (opaque directories, a file replacing a directory, './'-prefixed and absolute names, hardlinks).
 */
import t from 'tap';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { listKernelModules } from '../../src/extract/kmod-listing.js';
import { verifiedStream } from '../../src/image/verify.js';
import type { Descriptor, ResolvedImage } from '../../src/image/types.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; body?: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') pack.entry({ name: e.name, type }, e.body ?? 'x');
    else pack.entry({ name: e.name, type, linkname: e.linkname });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function imageOf(layers: Entry[][]): Promise<ResolvedImage> {
  const blobs = new Map<string, Buffer>();
  const descs: Descriptor[] = [];
  for (const l of layers) {
    const b = await tarOf(l);
    const digest = `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
    blobs.set(digest, b);
    descs.push({ digest, size: b.length, mediaType: 'application/vnd.oci.image.layer.v1.tar' });
  }
  return {
    reference: 'test/crafted:1', digest: 'sha256:0', mediaType: 'x', manifestDigest: 'sha256:0', platforms: [],
    config: { digest: 'sha256:0', size: 0, mediaType: 'x' }, layers: descs,
    openBlob: async (d) => verifiedStream(Readable.from([blobs.get(d.digest)!]), d, 'image test: blob'),
    diffIds: async () => descs.map((d) => d.digest), // uncompressed layers: the DiffID is the blob digest
  };
}

const K = 'opt/lib/modules/6.1.0';

t.test('overlay rules across layers', async (t) => {
  const img = await imageOf([
    [
      { name: './opt/', type: 'directory' },
      { name: `./${K}/a.ko`, body: 'a' },
      { name: `/${K}/b.ko.zst`, body: 'b' },
      { name: `${K}/sub/c.ko.gz` },
      { name: `${K}/sub/d.ko` },
      { name: 'usr/lib/modules/5.0.0/e.ko' },
      { name: 'lib/modules/4.0.0/root.ko' },
      { name: `${K}/modules.dep` },
      { name: `${K}/notako.ko.bak` },
      { name: `${K}/hard.ko`, type: 'link', linkname: `${K}/a.ko` },
      { name: `${K}/soft.ko`, type: 'symlink', linkname: 'a.ko' },
    ],
    [
      { name: `${K}/sub/.wh..wh..opq` },
      { name: `${K}/sub/new.ko` },
      { name: `${K}/.wh.a.ko` },
      { name: 'usr/lib/modules', type: 'file', body: 'a file replacing the directory' },
    ],
    [
      { name: `${K}/a.ko`, body: 'back again' },
      { name: 'lib/.wh.modules' },
    ],
  ]);
  const { kernels } = await listKernelModules(img);
  t.same(kernels, {
    '6.1.0': [`${K}/a.ko`, `${K}/b.ko.zst`, `${K}/hard.ko`, `${K}/sub/new.ko`],
  });
});

t.test('a layer that is not a tar names the image and the layer', async (t) => {
  const b = Buffer.from('definitely not gzip');
  const digest = `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
  const d = { digest, size: b.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const img = await imageOf([]);
  img.layers = [d];
  img.openBlob = async () => verifiedStream(Readable.from([b]), d, 'image test: blob');
  await t.rejects(listKernelModules(img), { message: new RegExp(`^image test/crafted:1: layer ${digest}: layer is not a valid tar\\+gzip stream`) });
});
