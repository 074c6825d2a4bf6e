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
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { zstdChunkedToc } from '../helpers/zstd-chunked.js';
import { startRegistry } from '../helpers/registry.js';
import { frontServer } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { cli, fingerprint } from '../store/fixtures.js';
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

interface Layer { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }
const blobPath = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));
const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
async function manifestOf(dir: string): Promise<{ layers: Layer[] } & Record<string, unknown>> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  return JSON.parse(await readFile(blobPath(dir, index.manifests[0]!.digest), 'utf8'));
}
const manifest = await manifestOf(layout);
const layerBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
const POS = 'io.containers.zstd-chunked.manifest-position';
const SUM = 'io.containers.zstd-chunked.manifest-checksum';

/** A copy of the layout with the kmod layer (the last) and its annotations edited, pushed as `tag`. */
async function variant(tag: string, edit: (blob: Buffer, layer: Layer) => Buffer): Promise<string> {
  const dir = path.join(work, `variant-${tag}`);
  await cp(layout, dir, { recursive: true });
  const doc = await manifestOf(dir);
  const layer = doc.layers[doc.layers.length - 1]!;
  const blob = edit(await readFile(blobPath(dir, layer.digest)), layer);
  await writeFile(blobPath(dir, sha(blob)), blob);
  Object.assign(layer, { digest: sha(blob), size: blob.length });
  const top = Buffer.from(JSON.stringify(doc));
  await writeFile(blobPath(dir, sha(top)), top);
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{
    mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(top), size: top.length,
    annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  await pushImage(`oci:${dir}:v1`, reg, `lazy:${tag}`, { compress: 'none' });
  return `${reg.host}/lazy:${tag}`;
}

/** Rewrites the layer's TOC (and its footer and annotations) after `edit` changed its entries. */
function withToc(edit: (toc: { entries: Record<string, unknown>[] }) => void) {
  return (blob: Buffer, layer: Layer): Buffer => {
    const [offset, length] = layer.annotations![POS]!.split(':').map(Number) as [number, number];
    const toc = JSON.parse(zlib.zstdDecompressSync(blob.subarray(offset, offset + length)).toString());
    edit(toc);
    const { json, frame, footer } = zstdChunkedToc(toc, offset);
    layer.annotations![POS] = `${offset}:${frame.length}:${json.length}:1`;
    layer.annotations![SUM] = sha(frame);
    return Buffer.concat([blob.subarray(0, offset), frame, footer]);
  };
}

const front = await frontServer(reg.url, () => undefined);
t.teardown(() => front.close());
const ignoring = await frontServer(reg.url, () => undefined, '127.0.0.1', { ignoreRange: true });
t.teardown(() => ignoring.close());
const selective = ['--kernel', KV, '--firmware-dir', '/firmware/vendor'];

async function pull(host: string, tag: string, args: string[]) {
  const dir = await mkdtemp(path.join(work, 'images-'));
  const res = await cli(['image', 'pull', `${host}/lazy:${tag}`, ...args, '--images-dir', dir, '--json', '--insecure']);
  return { ...res, dir, root: res.code === 0 ? (JSON.parse(res.stdout) as { root: string }).root : '' };
}
const infoLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string });
const selected = (fp: string[]) => fp.filter((l) => /^(opt\/lib\/modules\/6\.1\.0-lazy\/|firmware\/vendor\/)/.test(l));

t.test('the podman image is zstd:chunked, two layers, each with a TOC', async (t) => {
  t.equal(manifest.layers.length, 2);
  for (const l of manifest.layers) t.match(l.annotations?.[SUM], /^sha256:/);
});

t.test('a selective pull writes exactly the selected files of the full pull, and fetches far fewer bytes', async (t) => {
  let before = front.bodyBytes();
  const full = await pull(front.host, 'v1', ['--all']);
  t.equal(full.code, 0, full.stderr);
  const fullBytes = front.bodyBytes() - before;
  t.ok(fullBytes >= layerBytes, `the full pull read every layer (${fullBytes} >= ${layerBytes})`);

  before = front.bodyBytes();
  const lazy = await pull(front.host, 'v1', selective);
  t.equal(lazy.code, 0, lazy.stderr);
  const lazyBytes = front.bodyBytes() - before;
  const want = selected(await fingerprint(full.root));
  t.ok(want.some((l) => l.includes('kmm_big.ko')) && want.some((l) => l.includes('fw.bin')), 'the selection is not empty');
  t.same((await fingerprint(lazy.root)).filter((l) => !l.endsWith('/')), want.filter((l) => !l.endsWith('/')),
    'the same files, byte for byte');
  // selected: ~1.3 MB of 4.5 MB of layers (kmm_big.ko, fw.bin and the texts), plus the TOCs and manifests
  t.comment(`bytes the registry sent: full pull ${fullBytes}, selective lazy pull ${lazyBytes}, layers ${layerBytes}`);
  t.ok(lazyBytes < layerBytes * 0.5, `bytes sent ${lazyBytes} < half of the layers' ${layerBytes}`);
  t.notOk(infoLines(lazy.stderr).some((l) => /reading whole layers/.test(l.msg)), 'no fallback line');
  const meta = JSON.parse(await readFile(path.join(path.dirname(lazy.root), 'meta.json'), 'utf8')) as
    { lazyLayers?: { digest: string; toc: string }[] };
  t.same(meta.lazyLayers?.map((l) => [l.digest, l.toc]), manifest.layers.map((l) => [l.digest, l.annotations![SUM]]),
    'the entry records what proved each layer: its TOC checksum');
});

t.test('a registry that ignores Range: a whole-layer pull, the same files, one info line', async (t) => {
  const before = ignoring.bodyBytes();
  const res = await pull(ignoring.host, 'v1', selective);
  t.equal(res.code, 0, res.stderr);
  t.ok(ignoring.bodyBytes() - before >= layerBytes, 'every layer was read whole');
  const lines = infoLines(res.stderr).filter((l) => /reading whole layers/.test(l.msg));
  t.equal(lines.length, 1, 'one info line');
  t.equal(lines[0]?.level, 30);
  t.equal(lines[0]?.reason, 'the registry ignores Range requests');
  const lazy = await pull(front.host, 'v1', selective);
  t.same(await fingerprint(res.root), await fingerprint(lazy.root));
});

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
