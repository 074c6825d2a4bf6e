/**
 * Prefetch for the kernels installed but not running (docs/day1.md): store `<repo>:<release>` for each, so the
 * first boot of a new kernel finds its image in the store and loads the module before the network, with no
 * extra reboot. Nothing here can fail the running kernel's pull or load, or cause a reboot: every problem is a
 * warning that names the tag to push. Entries of kernels no longer on the node are removed from the store.
 */
import { rm } from 'node:fs/promises';
import type { Context } from '../context.js';
import { oneLine } from '../errors.js';
import type { Logger } from '../log.js';
import { tryLock } from '../store/lock.js';
import { StoreDir } from '../store/store-dir.js';
import { listImages } from '../store/inventory.js';
import { day1ImageReference } from '../config/day1-image-ref.js';
import { findModuleKo, kernelModulesDir } from '../kmod/find-ko.js';
import { scanInstalledKernels, type KernelScan, type RpmOstreeStatus } from './installed-kernels.js';
import type { Day1Settings } from './settings.js';
import { openDay1Store, storeSelection, type Day1Store } from './store.js';
import type { ModuleConfig } from '../config/module-config.js';

export type PrefetchResult =
  | { release: string; ref: string; outcome: 'stored' | 'present'; digest: string }
  | { release: string; ref: string; outcome: 'missing'; reason: string };

export interface PrefetchOptions {
  running: string;
  rpmOstreeStatus?: RpmOstreeStatus;
}

/** Finds the other installed kernels, stores an image for each, and prunes entries of kernels that are gone. */
export async function prefetchOtherKernels(
  ctx: Context,
  settings: Day1Settings,
  store: Day1Store,
  opts: PrefetchOptions,
): Promise<PrefetchResult[]> {
  let scan: KernelScan;
  try {
    scan = await scanInstalledKernels(ctx.opts.hostRoot, { running: opts.running, log: ctx.log, rpmOstreeStatus: opts.rpmOstreeStatus });
  } catch (err) {
    ctx.log.warn(`cannot list the installed kernels, nothing prefetched: ${oneLine(err)}`);
    return [];
  }
  if (scan.defaultNext && scan.defaultNext !== opts.running) {
    ctx.log.info({ kernel: scan.defaultNext }, `the next boot starts kernel ${scan.defaultNext} (default boot entry)`);
  }
  const results: PrefetchResult[] = [];
  for (const k of scan.others) results.push(await prefetchOne(ctx, settings, store, k.release, k.sources));
  if (!ctx.opts.dryRun) {
    await pruneGoneKernels(store.dir, settings.repo, new Set([opts.running, ...scan.others.map((k) => k.release)]), ctx.log)
      .catch((err: unknown) => ctx.log.warn(`cannot prune the store's entries of removed kernels: ${oneLine(err)}`));
  }
  return results;
}

async function prefetchOne(ctx: Context, settings: Day1Settings, store: Day1Store, release: string, sources: string[]): Promise<PrefetchResult> {
  let ref = `${settings.repo}:${release}`;
  const missing = (reason: string): PrefetchResult => {
    ctx.log.warn(
      { image: ref, kernel: release, found: sources },
      `no usable image for the installed kernel ${release}: ${reason}; push ${ref} (with ${settings.moduleName}.ko for ${release}) ` +
        `so its first boot loads ${settings.moduleName} before the network; until then that boot runs without it and the pull reboots once`,
    );
    return { release, ref, outcome: 'missing', reason };
  };
  try {
    ref = day1ImageReference(settings.repo, release);
    const selection = storeSelection(settings, release);
    const present = await store.lookup(ref, selection);
    if (present) {
      ctx.log.info({ image: ref, kernel: release }, `${ref} for the installed kernel ${release} is already in the store`);
      return { release, ref, outcome: 'present', digest: present.digest };
    }
    if (ctx.opts.dryRun) {
      ctx.stdout.write(`# dry run: would prefetch ${ref} for the installed kernel ${release} into ${store.dir}\n`);
      return { release, ref, outcome: 'missing', reason: 'dry run' };
    }
    const pulled = await store.pull(ref, selection);
    const ko = await findModuleKo(kernelModulesDir(pulled.root, settings.dirName, release), settings.moduleName);
    if (!ko) return missing(`the image has no ${settings.moduleName}.ko under ${settings.dirName}/lib/modules/${release}`);
    ctx.log.info({ image: ref, digest: pulled.digest, kernel: release, found: sources },
      `prefetched ${ref}@${pulled.digest} for the installed kernel ${release}: its first boot loads ${settings.moduleName} early`);
    return { release, ref, outcome: 'stored', digest: pulled.digest };
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    return missing(oneLine(err));
  }
}

/** Removes `<repo>:<release>` entries (and their references) whose kernel is neither running nor installed. */
export async function pruneGoneKernels(imagesDir: string, repo: string, keep: Set<string>, log: Logger): Promise<string[]> {
  const store = new StoreDir(imagesDir);
  const prefix = `${repo}:`;
  const tagOf = (reference: string) => (reference.startsWith(prefix) ? reference.slice(prefix.length) : undefined);
  const removed: string[] = [];
  for (const img of await listImages(imagesDir)) {
    const tags = [img.reference, ...img.references].map(tagOf).filter((t): t is string => t !== undefined);
    // only Day-1 entries of this repository, kept for one kernel; an entry another reference still names stays
    if (tags.length === 0 || tags.some((t) => keep.has(t))) continue;
    if (img.references.some((r) => tagOf(r) === undefined)) continue;
    const lock = await tryLock(store.lockFile(img.key), { log });
    if (!lock) continue;
    try {
      await store.removeEntry(img.key);
    } finally {
      await lock.release();
    }
    log.info({ image: img.reference, digest: img.digest }, `removed ${img.reference} from the store: kernel ${tagOf(img.reference) ?? tags[0]} is no longer installed`);
    removed.push(img.reference);
  }
  const left = new Set((await store.listEntries()).map((e) => `${e.meta.manifestDigest}\n${e.meta.platform}`));
  for (const { file, record } of await store.listRefs()) {
    if (tagOf(record.reference) !== undefined && !left.has(`${record.manifestDigest}\n${record.platform}`)) await rm(file, { force: true });
  }
  return removed;
}

/**
 * The daemon's (`run`) prefetch: when the config's image is tagged with its kernel release (`<repo>:<kernel>`, the
 * usual KMM kernel mapping), the same repository tagged with each other installed kernel is stored too, so the
 * node's next kernel finds its image in the store. A config tagged otherwise names no image for other kernels.
 */
export async function prefetchForModuleConfig(ctx: Context, config: ModuleConfig): Promise<PrefetchResult[]> {
  const ref = config.containerImage;
  const tagAt = ref.lastIndexOf(':');
  const moduleName = config.modprobe.moduleName;
  if (ref.includes('@') || tagAt <= ref.lastIndexOf('/') || ref.slice(tagAt + 1) !== config.kernelVersion || !moduleName) {
    ctx.log.debug({ image: ref }, 'the image is not tagged with its kernel release: no image to prefetch for other kernels');
    return [];
  }
  const settings: Day1Settings = {
    repo: ref.slice(0, tagAt),
    moduleName,
    inTreeModules: [],
    dirName: config.modprobe.dirName,
    firmwareDir: config.modprobe.firmwarePath,
    hostFirmwarePath: undefined,
    rebootCommand: [],
    insecure: config.insecurePull,
  };
  return prefetchOtherKernels(ctx, settings, openDay1Store(ctx, settings), { running: config.kernelVersion });
}
