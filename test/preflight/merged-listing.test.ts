/**
 * The merged-view search over real tar layers (made with tar-stream here, so whiteout and opaque markers,
 * hardlinks and odd names are exactly controlled), served as an in-memory image.
 */
import t from 'tap';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import type { Descriptor, ResolvedImage } from '../../src/image/types.js';
import { findKmodInImage } from '../../src/preflight/find-kmod.js';
import { listKernelModules } from '../../src/extract/kmod-listing.js';
import { canonicalPath, resolveInImage } from '../../src/extract/merged-view.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string };
type Compression = 'none' | 'gzip' | 'zstd';

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') pack.entry({ name: e.name, type }, 'ELF');
    else pack.entry({ name: e.name, type, linkname: e.linkname });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const MEDIA: Record<Compression, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** An image whose layers are the given entry lists, bottom first; records which layers were opened. */
async function image(layers: Entry[][], compression: Compression = 'gzip') {
  const blobs = new Map<string, Buffer>();
  const descs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const entries of layers) {
    const raw = await tarOf(entries);
    const data = compression === 'gzip' ? zlib.gzipSync(raw) : compression === 'zstd' ? zlib.zstdCompressSync(raw) : raw;
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    blobs.set(digest, data);
    descs.push({ mediaType: MEDIA[compression], digest, size: data.length });
    diffIds.push(`sha256:${createHash('sha256').update(raw).digest('hex')}`);
  }
  const opened: number[] = [];
  const img: ResolvedImage = {
    reference: 'test/image:1',
    digest: 'sha256:0',
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    manifestDigest: 'sha256:0',
    platforms: ['linux/amd64'],
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:1', size: 2 },
    layers: descs,
    async openBlob(desc) {
      opened.push(descs.indexOf(desc));
      return Readable.from([blobs.get(desc.digest)!]);
    },
    diffIds: async () => diffIds,
  };
  return { img, opened };
}

const K = '6.1.0-27-amd64';
const q = { dirName: '/opt', kernelVersion: K, moduleName: 'kmm_ci_a' };

t.test('paths', async (t) => {
  t.equal(canonicalPath('./opt//lib/./modules/'), 'opt/lib/modules');
  t.equal(canonicalPath('/../opt/x/../y'), 'opt/y');
  const links = new Map([['lib', 'usr/lib'], ['opt/m', '/lib/modules']]);
  t.equal(resolveInImage('lib/modules/6.1', links), 'usr/lib/modules/6.1');
  t.equal(resolveInImage('opt/m/6.1', links), 'usr/lib/modules/6.1');
  t.equal(resolveInImage('loop/x', new Map([['loop', 'loop']])), 'loop/x', 'a symlink loop stops');
});

t.test('found in the top layer: lower layers are never opened', async (t) => {
  const { img, opened } = await image([
    [{ name: `opt/lib/modules/${K}/other.ko` }],
    [{ name: `./opt/lib/modules/${K}/kmm_ci_a.ko` }],
  ]);
  t.same(await findKmodInImage(img, q), { found: true, path: `/opt/lib/modules/${K}/kmm_ci_a.ko` });
  t.same(opened, [1]);
});

for (const compression of ['none', 'gzip', 'zstd'] as const) {
  t.test(`any subdirectory, compressed .ko names, '-' for '_' (${compression} layers)`, async (t) => {
    const { img } = await image([[{ name: `opt/lib/modules/${K}/extra/drivers/kmm-ci-a.ko.xz` }], [{ name: 'etc/x' }]], compression);
    t.same(await findKmodInImage(img, q), { found: true, path: `/opt/lib/modules/${K}/extra/drivers/kmm-ci-a.ko.xz` });
  });
}

t.test('a whiteout in an upper layer removes the .ko; the report names what is there', async (t) => {
  const { img, opened } = await image([
    [{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }, { name: `opt/lib/modules/${K}/kmm_ci_b.ko.zst` }, { name: 'opt/lib/modules/6.1.0-26-amd64/kmm_ci_a.ko' }],
    [{ name: `opt/lib/modules/${K}/.wh.kmm_ci_a.ko` }],
  ]);
  t.same(await findKmodInImage(img, q), {
    found: false,
    lookedIn: `/opt/lib/modules/${K}/`,
    modulesRoot: '/opt/lib/modules/',
    kernels: ['6.1.0-26-amd64', K],
    modulesForKernel: ['kmm_ci_b'],
  });
  t.same(opened, [1, 0]);
});

t.test('a whiteout of a parent directory and an opaque directory hide lower content', async (t) => {
  const removedDir = await image([[{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }], [{ name: `opt/lib/modules/.wh.${K}` }]]);
  t.match(await findKmodInImage(removedDir.img, q), { found: false, kernels: [] });

  const opaque = await image([
    [{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }],
    [{ name: `opt/lib/modules/${K}/`, type: 'directory' }, { name: `opt/lib/modules/${K}/.wh..wh..opq` }, { name: `opt/lib/modules/${K}/new.ko` }],
  ]);
  t.match(await findKmodInImage(opaque.img, q), { found: false, kernels: [K], modulesForKernel: ['new'] });

  // the whiteout only hides lower layers: re-added in the same layer as its own whiteout marker, it stays
  const readded = await image([
    [{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }],
    [{ name: `opt/lib/modules/${K}/.wh..wh..opq` }, { name: `opt/lib/modules/${K}/kmm_ci_a.ko` }],
  ]);
  t.match(await findKmodInImage(readded.img, q), { found: true });
});

t.test('an upper non-directory shadows a lower tree; an upper directory shadows a lower file', async (t) => {
  const shadow = await image([[{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }], [{ name: 'opt/lib', type: 'symlink', linkname: '/nowhere' }]]);
  t.match(await findKmodInImage(shadow.img, q), { found: false });
  const dirOverFile = await image([[{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }], [{ name: `opt/lib/modules/${K}/kmm_ci_a.ko`, type: 'directory' }]]);
  t.match(await findKmodInImage(dirOverFile.img, q), { found: false });
});

t.test('a lower tree replaced by a file stays gone under an upper directory; inspect and preflight agree', async (t) => {
  const { img } = await image([
    [{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }],
    [{ name: `opt/lib/modules/${K}` }],
    [{ name: `opt/lib/modules/${K}/`, type: 'directory' }],
  ]);
  t.match(await findKmodInImage(img, q), { found: false });
  t.same((await listKernelModules(img)).kernels, {});
});

t.test("an entry name with '..' is refused by inspect and preflight, as the extraction refuses it", async (t) => {
  const { img } = await image([[{ name: `opt/lib/modules/${K}/kmm_ci_a.ko` }, { name: 'opt/../../etc/x' }]]);
  await t.rejects(findKmodInImage(img, q), /climbs out of the image root/);
  await t.rejects(listKernelModules(img), /climbs out of the image root/);
});

t.test('lib/modules reached through a symlink (usr-merged image with dirName /)', async (t) => {
  const { img } = await image([
    [{ name: 'usr/lib/modules/' + K + '/kmm_ci_a.ko' }],
    [{ name: 'lib', type: 'symlink', linkname: 'usr/lib' }],
  ]);
  t.same(await findKmodInImage(img, { ...q, dirName: '/' }), { found: true, path: `/usr/lib/modules/${K}/kmm_ci_a.ko` });
});

t.test('hardlinks count, symlinked .ko names and directories do not', async (t) => {
  const hard = await image([[{ name: 'a/x.ko' }, { name: `opt/lib/modules/${K}/kmm_ci_a.ko`, type: 'link', linkname: 'a/x.ko' }]]);
  t.match(await findKmodInImage(hard.img, q), { found: true });
  const dir = await image([[{ name: `opt/lib/modules/${K}/kmm_ci_a.ko/`, type: 'directory' }]]);
  t.match(await findKmodInImage(dir.img, q), { found: false });
});

t.test('rawArgs Modules: any .ko of the kernel will do', async (t) => {
  const { img } = await image([[{ name: `opt/lib/modules/${K}/whatever.ko.gz` }]]);
  t.match(await findKmodInImage(img, { ...q, moduleName: undefined }), { found: true });
  const other = await image([[{ name: `opt/lib/modules/6.2.0/whatever.ko` }]]);
  t.match(await findKmodInImage(other.img, { ...q, moduleName: undefined }), { found: false, kernels: ['6.2.0'] });
});

t.test('a corrupt layer is an error, not a missing module', async (t) => {
  const { img } = await image([[{ name: 'x' }]], 'gzip');
  const bad: ResolvedImage = { ...img, openBlob: async () => Readable.from([Buffer.from('not gzip at all')]) };
  await t.rejects(findKmodInImage(bad, q), /not a valid tar\+gzip/);
});
