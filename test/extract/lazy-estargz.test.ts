/**
 * Lazy pulls of eStargz layers (issue 16): an image converted to eStargz by an independent producer (ctr-remote,
 * from Debian's stargz-snapshotter) in a real docker-registry, reached through a front server that counts the
 * body bytes the registry sends. As for zstd:chunked (lazy-pull.test.ts): a selective pull writes exactly the
 * selected part of the full pull's tree while fetching far fewer bytes, files split into several chunks
 * included; a TOC or a chunk whose digest lies fails the pull with nothing in the cache; a registry that ignores
 * `Range` gets a whole-layer pull, with one info line.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ESTARGZ_FOOTER_SIZE, estargzTocOffset, parseEstargzToc } from '../../src/image/lazy/estargz-toc.js';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout } from '../helpers/images.js';
import { pushEstargz } from '../helpers/estargz.js';
import { blobPath, layoutManifest, pushEditedLayout, sha256Of, type LayerDescriptor } from '../helpers/layout-edit.js';
import { estargzTail } from '../helpers/zstd-chunked.js';
import { ignoredRangeReadsWhole, lazyPullSetup, selectivePullIsLazy } from '../helpers/lazy-pull-checks.js';
import { errorLine } from '../image/cli.js';

const run = promisify(execFile);
const KV = '6.1.0-esgz';
const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';
const CHUNK = 256 * 1024;
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-esgz-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());

// Two layers: a "base OS" the selection does not touch, and the kmod layer (modules, firmware, tools).
const base: Record<string, Buffer> = {};
for (let i = 0; i < 40; i++) base[`usr/lib/pkg${i}/lib.so`] = crypto.randomBytes(60_000 + i * 1000);
const mods = `opt/lib/modules/${KV}`;
const img = await buildLayout({
  dir: path.join(work, 'source'),
  tag: 'v1',
  layers: [base, {
    'usr/bin/tool': crypto.randomBytes(2 << 20),
    [`${mods}/kmm_big.ko`]: crypto.randomBytes(700_000), // three chunks of 256 KiB
    [`${mods}/kmm_small.ko`]: Buffer.from('\x7fELF-small\n'),
    [`${mods}/empty.conf`]: Buffer.alloc(0),
    [`${mods}/modules.dep`]: Buffer.from(`/lib/modules/${KV}/kmm_big.ko:\n/lib/modules/${KV}/kmm_small.ko:\n`),
    [`${mods}/host`]: { symlink: `/lib/modules/${KV}` },
    'firmware/vendor/fw.bin': crypto.randomBytes(300_000),
    'firmware/vendor/tables.txt': Buffer.from('abcdefgh'.repeat(50_000)),
    'usr/bin/notes.txt': Buffer.from('not selected\n'),
  }],
});
const pushed = await pushEstargz(img.dir, 'v1', reg, 'esgz', { chunkSize: CHUNK });
// the pushed image as a layout, to make tampered copies of
const layout = path.join(work, 'esgz');
await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/esgz:v1`, `oci:${layout}:v1`]);
const manifest = await layoutManifest(layout);
const kmodLayer = manifest.layers[manifest.layers.length - 1]!;

/** Rewrites the layer's TOC (its member, footer and annotation) after `edit` changed its entries. */
function withToc(edit: (toc: { entries: Record<string, unknown>[] }) => void) {
  return (blob: Buffer, layer: LayerDescriptor): Buffer => {
    const footerStart = blob.length - ESTARGZ_FOOTER_SIZE;
    const offset = estargzTocOffset(blob.subarray(footerStart), blob.length, 'test');
    const toc = parseEstargzToc(blob.subarray(offset, footerStart), layer.annotations![TOC_DIGEST]!, offset, 'test');
    for (const e of toc.entries) delete e.endOffset; // the reader's own, not the producer's
    edit(toc as unknown as { entries: Record<string, unknown>[] });
    const { json, member, footer } = estargzTail({ version: 1, entries: toc.entries }, offset);
    layer.annotations![TOC_DIGEST] = sha256Of(json);
    return Buffer.concat([blob.subarray(0, offset), member, footer]);
  };
}

const setup = await lazyPullSetup(t, { reg, work, repo: 'esgz', kver: KV, layers: manifest.layers, tocAnnotation: TOC_DIGEST });
const { front, pull, selective } = setup;

t.test('ctr-remote wrote eStargz: gzip layers with a toc.digest annotation, the footer, big files in chunks', async (t) => {
  t.equal(manifest.layers.length, 2);
  t.same(manifest.layers.map((l) => l.digest), pushed.layers.map((l) => l.digest), 'skopeo kept the layers as pushed');
  for (const l of manifest.layers) {
    t.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    t.match(l.annotations?.[TOC_DIGEST], /^sha256:[a-f0-9]{64}$/);
  }
  const blob = await readFile(blobPath(layout, kmodLayer.digest));
  const offset = estargzTocOffset(blob.subarray(blob.length - ESTARGZ_FOOTER_SIZE), blob.length, 'test');
  const toc = parseEstargzToc(blob.subarray(offset, blob.length - ESTARGZ_FOOTER_SIZE), kmodLayer.annotations![TOC_DIGEST]!, offset, 'test');
  t.same(toc.entries.filter((e) => e.name === `${mods}/kmm_big.ko`).map((e) => e.type), ['reg', 'chunk', 'chunk'],
    'kmm_big.ko is in three chunks');
});

t.test('a selective pull writes exactly the selected files of the full pull, and fetches far fewer bytes', (t) => selectivePullIsLazy(t, setup));
t.test('a registry that ignores Range: a whole-layer pull, the same files, one info line', (t) => ignoredRangeReadsWhole(t, setup));

t.test('a TOC whose digest lies: exit 1, one line, nothing in the cache', async (t) => {
  await pushEditedLayout(layout, reg, 'esgz', 'toc-lies', (blob, layer) => {
    layer.annotations![TOC_DIGEST] = sha256Of(Buffer.from('another toc'));
    return blob;
  });
  const res = await pull(front.host, 'toc-lies', selective);
  t.equal(res.code, 1);
  t.match(errorLine(res.stderr), /the eStargz table of contents does not match its digest in the manifest/);
  t.same(await readdir(path.join(res.dir, 'entries')), [], 'no cache entry');
});

t.test('a chunk whose bytes differ from its TOC digest: exit 1, one line, nothing in the cache', async (t) => {
  await pushEditedLayout(layout, reg, 'esgz', 'chunk-lies', withToc((toc) => {
    const chunk = toc.entries.filter((x) => x.name === `${mods}/kmm_big.ko`)[1]!;
    chunk.chunkDigest = sha256Of(Buffer.from('something else'));
  }));
  const res = await pull(front.host, 'chunk-lies', selective);
  t.equal(res.code, 1);
  t.match(errorLine(res.stderr), new RegExp(`file "${mods}/kmm_big.ko" does not match the table of contents: chunk 2 of 3`));
  t.same(await readdir(path.join(res.dir, 'entries')), [], 'no cache entry');
});
