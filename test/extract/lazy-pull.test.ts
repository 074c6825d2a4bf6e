/**
 * Lazy pulls of zstd:chunked layers (issue 16): a podman-made zstd:chunked image in a real docker-registry,
 * reached through a front server that counts the body bytes the registry sends. A selective pull
 * (`image pull --kernel K --firmware-dir F`) must write exactly the selected part of the full pull's tree while
 * fetching far fewer bytes; a TOC or a file whose digest lies must fail the pull with nothing in the cache; a
 * registry that ignores `Range` must get a whole-layer pull, with one info line.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { zstdChunkedToc } from '../helpers/zstd-chunked.js';
import { startRegistry } from '../helpers/registry.js';
import { pushImage } from '../helpers/images.js';
import { layoutManifest, pushEditedLayout, sha256Of, type LayerDescriptor } from '../helpers/layout-edit.js';
import { ignoredRangeReadsWhole, lazyPullSetup, selectivePullIsLazy } from '../helpers/lazy-pull-checks.js';
import { errorLine } from '../image/cli.js';

const run = promisify(execFile);
const KV = '6.1.0-lazy';
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-lazy-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());

// Two layers: a "base OS" the selection does not touch, and the kmod layer (modules, firmware, tools).
const base = path.join(work, 'base');
for (let i = 0; i < 40; i++) {
  await mkdir(path.join(base, 'usr/lib', `pkg${i}`), { recursive: true });
  await writeFile(path.join(base, 'usr/lib', `pkg${i}`, 'lib.so'), crypto.randomBytes(60_000 + i * 1000));
}
const kmod = path.join(work, 'kmod');
const mods = path.join(kmod, 'opt/lib/modules', KV);
await mkdir(mods, { recursive: true });
await mkdir(path.join(kmod, 'firmware/vendor'), { recursive: true });
await mkdir(path.join(kmod, 'usr/bin'), { recursive: true });
await writeFile(path.join(kmod, 'usr/bin/tool'), crypto.randomBytes(2 << 20));
await writeFile(path.join(mods, 'kmm_big.ko'), crypto.randomBytes(700_000));
await writeFile(path.join(mods, 'kmm_small.ko'), '\x7fELF-small\n');
await writeFile(path.join(mods, 'empty.conf'), '');
await writeFile(path.join(mods, 'modules.dep'), `/lib/modules/${KV}/kmm_big.ko:\n/lib/modules/${KV}/kmm_small.ko:\n`);
await symlink(`/lib/modules/${KV}`, path.join(mods, 'host'));
await writeFile(path.join(kmod, 'firmware/vendor/fw.bin'), crypto.randomBytes(300_000));
await writeFile(path.join(kmod, 'firmware/vendor/tables.txt'), 'abcdefgh'.repeat(50_000));
await writeFile(path.join(kmod, 'usr/bin/notes.txt'), 'not selected\n');

const store = ['--root', path.join(work, 'storage'), '--runroot', path.join(work, 'run'), '--storage-driver', 'vfs'];
await writeFile(path.join(work, 'Containerfile'), 'FROM scratch\nCOPY base/ /\nCOPY kmod/ /\n');
await run('buildah', [...store, 'bud', '-q', '--layers', '--isolation', 'chroot', '--format', 'oci', '-t', 'lazy', '-f',
  path.join(work, 'Containerfile'), work]);
const layout = path.join(work, 'chunked');
await run('podman', [...store, 'push', '-q', '--compression-format', 'zstd:chunked', 'localhost/lazy', `oci:${layout}:v1`]);
// pushed as is (no recompression), annotations and all
await pushImage(`oci:${layout}:v1`, reg, 'lazy:v1', { compress: 'none' });

const manifest = await layoutManifest(layout);
const POS = 'io.containers.zstd-chunked.manifest-position';
const SUM = 'io.containers.zstd-chunked.manifest-checksum';
const sha = sha256Of;
const variant = (tag: string, edit: (blob: Buffer, layer: LayerDescriptor) => Buffer) => pushEditedLayout(layout, reg, 'lazy', tag, edit);

/** Rewrites the layer's TOC (and its footer and annotations) after `edit` changed its entries. */
function withToc(edit: (toc: { entries: Record<string, unknown>[] }) => void) {
  return (blob: Buffer, layer: LayerDescriptor): Buffer => {
    const [offset, length] = layer.annotations![POS]!.split(':').map(Number) as [number, number];
    const toc = JSON.parse(zlib.zstdDecompressSync(blob.subarray(offset, offset + length)).toString());
    edit(toc);
    const { json, frame, footer } = zstdChunkedToc(toc, offset);
    layer.annotations![POS] = `${offset}:${frame.length}:${json.length}:1`;
    layer.annotations![SUM] = sha(frame);
    return Buffer.concat([blob.subarray(0, offset), frame, footer]);
  };
}

const setup = await lazyPullSetup(t, { reg, work, repo: 'lazy', kver: KV, layers: manifest.layers, tocAnnotation: SUM });
const { front, pull, selective } = setup;

t.test('the podman image is zstd:chunked, two layers, each with a TOC', async (t) => {
  t.equal(manifest.layers.length, 2);
  for (const l of manifest.layers) t.match(l.annotations?.[SUM], /^sha256:/);
});

t.test('a selective pull writes exactly the selected files of the full pull, and fetches far fewer bytes', (t) => selectivePullIsLazy(t, setup));
t.test('a registry that ignores Range: a whole-layer pull, the same files, one info line', (t) => ignoredRangeReadsWhole(t, setup));

t.test('a TOC whose checksum lies: exit 1, one line, nothing in the cache', async (t) => {
  await variant('toc-lies', (blob, layer) => {
    layer.annotations![SUM] = sha(Buffer.from('another toc'));
    return blob;
  });
  const res = await pull(front.host, 'toc-lies', selective);
  t.equal(res.code, 1);
  t.match(errorLine(res.stderr), /zstd:chunked table of contents does not match its checksum in the manifest/);
  t.same(await readdir(path.join(res.dir, 'entries')), [], 'no cache entry');
});

t.test('a file whose bytes differ from its TOC digest: exit 1, one line, nothing in the cache', async (t) => {
  await variant('file-lies', withToc((toc) => {
    const e = toc.entries.find((x) => x.name === `opt/lib/modules/${KV}/kmm_big.ko`)!;
    e.digest = sha(Buffer.from('something else'));
  }));
  const res = await pull(front.host, 'file-lies', selective);
  t.equal(res.code, 1);
  t.match(errorLine(res.stderr), new RegExp(`file "opt/lib/modules/${KV}/kmm_big.ko" does not match the table of contents`));
  t.same(await readdir(path.join(res.dir, 'entries')), [], 'no cache entry');
});
