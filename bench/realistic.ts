/**
 * Rows b) and c) of `npm run bench`: what a node really does. A realistic kmod image, built once with buildah
 * into .cache/bench/ (three layers: a base OS of ~3,000 files and ~250 MiB, a ~40 MiB tools layer, and a small
 * layer with /opt/lib/modules/<kver> and /firmware), pushed as gzip (buildah's own) and by podman as
 * zstd:chunked, and converted by ctr-remote (stargz-snapshotter) to an eStargz twin at each run. Timed,
 * interleaved per round: `image pull --kernel K --firmware-dir /firmware` from each, and
 * `skopeo copy` + `umoci raw unpack` of the gzip image (a full pull, what a container runtime does before KMM's
 * init container copies the modules out). Counted: the bytes the registry sent for the lazy pull.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestRegistry } from '../test/helpers/registry.js';
import { pushImage } from '../test/helpers/images.js';
import { pushEstargz } from '../test/helpers/estargz.js';
import { blobPath, layoutManifest } from '../test/helpers/layout-edit.js';
import { frontServer } from '../test/helpers/fault-proxy.js';
import { writeData } from './data.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
export const REAL_KVER = '6.1.0-real';

/** The two layouts (gzip, zstd:chunked) of the realistic image, built once. */
export async function buildRealistic(cache: string): Promise<{ gzip: string; chunked: string }> {
  const dir = path.join(cache, 'realistic-v1');
  const gzip = path.join(dir, 'gzip');
  const chunked = path.join(dir, 'chunked');
  if (existsSync(path.join(chunked, 'index.json'))) return { gzip, chunked };
  await rm(dir, { recursive: true, force: true });
  const ctx = await mkdtemp(path.join(cache, 'realistic-ctx-'));
  try {
    console.error('building the realistic image (base OS, tools, kmod layer) ...');
    // base OS: 2,400 small files (2-12 KiB) and 600 libraries (~0.4 MiB), ~250 MiB, half of it incompressible
    for (let i = 0; i < 2400; i++) {
      await writeData(path.join(ctx, 'base', `usr/share/doc/pkg${i % 120}/file${i}.txt`), 2048 + (i % 6) * 2048, true);
    }
    for (let i = 0; i < 600; i++) {
      await writeData(path.join(ctx, 'base', `usr/lib/x86_64-linux-gnu/lib${i}.so`), 200 * 1024, i % 2 === 0);
      await writeData(path.join(ctx, 'base', `usr/lib/x86_64-linux-gnu/lib${i}.a`), 200 * 1024, i % 2 === 1);
    }
    // tools: ~40 MiB in 40 files
    for (let i = 0; i < 40; i++) await writeData(path.join(ctx, 'tools', `usr/local/bin/tool${i}`), MiB, i % 2 === 0);
    // the kmod layer: 4 modules (~1 MiB), modules.dep, and firmware (~4 MiB)
    const mods = path.join(ctx, 'kmod', 'opt/lib/modules', REAL_KVER);
    for (let i = 0; i < 4; i++) await writeData(path.join(mods, `kmm_real${i}.ko`), 256 * 1024, true);
    await writeFile(path.join(mods, 'modules.dep'), [0, 1, 2, 3].map((i) => `kmm_real${i}.ko:`).join('\n') + '\n');
    for (let i = 0; i < 4; i++) await writeData(path.join(ctx, 'kmod', `firmware/vendor/fw${i}.bin`), MiB, false);
    await writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY base/ /\nCOPY tools/ /\nCOPY kmod/ /\n');
    const store = ['--root', path.join(ctx, 'storage'), '--runroot', path.join(ctx, 'run'), '--storage-driver', 'vfs'];
    await run('buildah', [...store, 'bud', '-q', '--layers', '--isolation', 'chroot', '--format', 'oci', '-t', 'real',
      '-f', path.join(ctx, 'Containerfile'), ctx], { maxBuffer: 64 * MiB });
    await mkdir(dir, { recursive: true });
    await run('buildah', [...store, 'push', '-q', 'localhost/real', `oci:${gzip}:v1`]);
    await run('podman', [...store, 'push', '-q', '--compression-format', 'zstd:chunked', 'localhost/real', `oci:${chunked}:v1`]);
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
  return { gzip, chunked };
}

/** Pushes real:gzip, real:chunked and real:estargz; returns the eStargz twin's layer bytes. */
export async function pushRealistic(layouts: { gzip: string; chunked: string }, reg: TestRegistry): Promise<number> {
  await pushImage(`oci:${layouts.gzip}:v1`, reg, 'real:gzip');
  // as podman wrote it: the zstd:chunked blobs and their TOC annotations, not recompressed
  await pushImage(`oci:${layouts.chunked}:v1`, reg, 'real:chunked', { compress: 'keep' });
  // the eStargz twin, converted from the gzip image by ctr-remote (Debian's stargz-snapshotter), its defaults
  const esgz = await pushEstargz(layouts.gzip, 'v1', reg, 'real', { destTag: 'estargz' });
  return esgz.layers.reduce((n, l) => n + l.size, 0);
}

/** The layer blobs of a layout's one image: their files and sizes. */
export async function layoutLayers(layout: string): Promise<{ file: string; size: number }[]> {
  return (await layoutManifest(layout)).layers.map((l) => ({ file: blobPath(layout, l.digest), size: l.size }));
}

/** Compressed layer bytes of the layout's image. */
export async function layoutLayerBytes(layout: string): Promise<number> {
  return (await layoutLayers(layout)).reduce((n, l) => n + l.size, 0);
}

/**
 * The bytes the registry sends for one selective pull of `tag` (through a counting front server), and the
 * info lines that say a layer was read whole.
 */
export async function selectiveBytes(cli: string, reg: TestRegistry, tag: string, work: string): Promise<number> {
  const front = await frontServer(reg.url, () => undefined);
  const d = await mkdtemp(path.join(work, 'count-'));
  try {
    await run(process.execPath, [cli, 'image', 'pull', `${front.host}/real:${tag}`, '--kernel', REAL_KVER,
      '--firmware-dir', '/firmware', '--insecure', '--images-dir', d, '--json', '--log-level', 'warn']);
    return front.bodyBytes();
  } finally {
    await front.close();
    await rm(d, { recursive: true, force: true });
  }
}
