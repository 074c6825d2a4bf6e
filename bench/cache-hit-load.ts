/**
 * The cache-hit `kmod load` of the bench (row d): a config whose image is already in the cache, a stub modprobe
 * (bench/stub-modprobe.sh), no network. The image is built as KMM's docs build a kmod image, `depmod -b /opt
 * <kver>` included, so the load finds modules.dep and runs no depmod; `{ modulesDep: false }` builds one without
 * it (then every load copies the kmods to a scratch dir and runs depmod there). `prepareCacheHitLoad` builds it
 * once; run this file alone to time it against `node -e 0` (extra arguments go to node, e.g. --cpu-prof):
 *   node --experimental-transform-types --import ./scripts/ts-resolve.mjs bench/cache-hit-load.ts [node flags]
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile, mkdtemp, rm, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildLayout } from '../test/helpers/images.js';
import { makeHostRoot } from '../test/helpers/host-root.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'bin', 'kmm-worker.js');
const STUB = path.join(ROOT, 'bench', 'stub-modprobe.sh');

export interface CacheHitLoad {
  /** argv (after node) of the load */
  load: string[];
  /** argv of the unload that puts the host back before the next load */
  unload: string[];
  env: NodeJS.ProcessEnv;
  /** what the load hands to its programs (for row d)'s floors): `<config> <modprobe> <dir> <module> <ko>` */
  programArgs: string[];
  cleanup(): Promise<void>;
}

/** The files of `/opt/lib/modules/<kver>` of a kmod image holding `ko`, with depmod's index when `modulesDep`. */
async function kmodImageFiles(ko: string, kver: string, modulesDep: boolean, work: string): Promise<Record<string, Buffer>> {
  const root = await mkdtemp(path.join(work, 'depmod-'));
  const dir = path.join(root, 'lib', 'modules', kver);
  await mkdir(dir, { recursive: true });
  await copyFile(ko, path.join(dir, path.basename(ko)));
  if (modulesDep) await run('depmod', ['-b', root, kver]);
  const files: Record<string, Buffer> = {};
  for (const name of await readdir(dir)) files[`opt/lib/modules/${kver}/${name}`] = await readFile(path.join(dir, name));
  await rm(root, { recursive: true, force: true });
  return files;
}

export async function prepareCacheHitLoad(work: string, opts: { modulesDep?: boolean } = {}): Promise<CacheHitLoad> {
  const { ensureTestKmods } = await import('../test/kmods/kmods.js');
  const k = await ensureTestKmods();
  const mod = Object.keys(k.ko).find((n) => n.includes('hello')) ?? Object.keys(k.ko)[0]!;
  await mkdir(work, { recursive: true });
  const img = await buildLayout({
    dir: path.join(work, 'load-layout'),
    tag: 'v1',
    layers: [await kmodImageFiles(k.ko[mod]!, k.kver, opts.modulesDep ?? true, work)],
  });
  const host = await makeHostRoot({ kver: k.kver });
  const config = path.join(work, 'config.yaml');
  await writeFile(config, `kernelVersion: ${k.kver}\ncontainerImage: ${img.ref}\nmodprobe:\n  moduleName: ${mod}\n  dirName: /opt\n`);
  const env = { STUB_MODPROBE_HOST_ROOT: host.root, KMM_REPORT: 'off' };
  const common = [config, '--host-root', host.root, '--modprobe', STUB, '--images-dir',
    path.join(work, 'load-images'), '--shared-dir', path.join(work, 'no-shared'), '--log-level', 'warn'];
  const load = [CLI, 'kmod', 'load', ...common];
  const unload = [CLI, 'kmod', 'unload', ...common];
  await run(process.execPath, load, { env: { ...process.env, ...env } }); // fills the cache
  await run(process.execPath, unload, { env: { ...process.env, ...env } });
  const entries = path.join(work, 'load-images', 'entries');
  const dir = path.join(entries, (await readdir(entries))[0]!, 'rootfs', 'opt');
  const programArgs = [config, STUB, dir, mod, path.join(dir, 'lib', 'modules', k.kver, path.basename(k.ko[mod]!))];
  return { load, unload, env, programArgs, cleanup: () => host.cleanup() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-cold-'));
  try {
    const h = await prepareCacheHitLoad(work);
    const flags = process.argv.slice(2);
    const time = async (argv: string[]) => {
      const t = performance.now();
      await run(process.execPath, argv, { env: { ...process.env, ...h.env }, cwd: work });
      return performance.now() - t;
    };
    const loads: number[] = [];
    const nodes: number[] = [];
    for (let i = 0; i < 7; i++) {
      loads.push(await time([...flags, ...h.load]));
      await run(process.execPath, h.unload, { env: { ...process.env, ...h.env } });
      nodes.push(await time(['-e', '0']));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[3]!;
    console.log(JSON.stringify({ loadMs: Math.round(med(loads)), nodeMs: Math.round(med(nodes)), ratio: +(med(loads) / med(nodes)).toFixed(2), loads: loads.map(Math.round) }));
    if (flags.length) console.log(`profiles in ${work}`);
    else await h.cleanup();
  } finally {
    if (!process.argv.slice(2).length) await rm(work, { recursive: true, force: true });
  }
}
