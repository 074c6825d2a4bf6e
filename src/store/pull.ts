/**
 * Pulling into the cache (docs/cache.md): the pull policies, one download per entry across concurrent agents,
 * and entries that are complete or absent whatever happens to the process.
 */
import { execFile } from 'node:child_process';
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { OperationError, UsageError, errorMessage } from '../errors.js';
import type { LayerProgress } from '../extract/extract-image.js';
import { selectionPrefixes, type KernelSelection, type Selection } from '../extract/selection.js';
import { DEFAULT_OPERATION_TIMEOUT_MS, withDeadline } from '../image/deadline.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../image/platform.js';
import { parseReference } from '../image/reference.js';
import type { ResolvedImage } from '../image/types.js';
import type { Logger } from '../log.js';
import { acquireLock, clearIfStale } from './lock.js';
import { entryKey, fsyncDir, StoreDir, type EntryMeta, type StoredEntry } from './store-dir.js';
import { PULL_POLICIES, type ImagePullPolicy } from '../config/module-config.js';
import { DEFAULT_PULL_POLICY } from '../config/defaults.js';


export interface PullOptions {
  imagesDir: string;
  policy: ImagePullPolicy;
  selection: Selection;
  insecure?: boolean;
  platform?: string;
  authFile?: string;
  pullSecretsDir?: string;
  hostRoot?: string;
  log: Logger;
  signal?: AbortSignal;
  onProgress?: (p: LayerProgress) => void;
  /** the whole pull's deadline in ms (`--timeout`); DEFAULT_OPERATION_TIMEOUT_MS when absent */
  timeoutMs?: number;
}

/** A complete cache entry as the commands show it (`image pull --json`, `image ls --json`; docs/cache.md). */
export interface StoredImage {
  /** normalised reference */
  reference: string;
  /** what the reference points at (an index digest for a multi-arch tag) */
  digest: string;
  manifestDigest: string;
  /** absolute directory holding the extracted image files (read-only to consumers) */
  root: string;
  files: number;
  bytes: number;
}

export interface PullResult extends StoredImage {
  /** true when nothing was downloaded by this call */
  fromCache: boolean;
}

export function parsePullPolicy(value: string | undefined, field = '--pull-policy'): ImagePullPolicy {
  if (value === undefined || value === '') return DEFAULT_PULL_POLICY;
  // `--pull-policy always` as people type it; the Kubernetes spelling is the canonical one
  const policy = PULL_POLICIES.find((p) => p.toLowerCase() === value.toLowerCase());
  if (policy) return policy;
  throw new UsageError(`${field} must be one of IfNotPresent, Always, Never; got '${value}'`);
}

/** Checks everything about a request that can be wrong before anything is read or written. */
function normalise(ref: string, selection: Selection, platform?: string): { reference: string; platform: string } {
  const reference = parseReference(ref).name;
  selectionPrefixes(selection);
  return { reference, platform: platform ? formatPlatform(parsePlatform(platform)) : formatPlatform(hostPlatform()) };
}

function result(entry: StoredEntry, reference: string, digest: string, fromCache: boolean): PullResult {
  return {
    reference,
    digest,
    manifestDigest: entry.meta.manifestDigest,
    root: entry.root,
    files: entry.meta.files,
    bytes: entry.meta.bytes,
    fromCache,
  };
}

/**
 * The complete entry the reference named when it was last pulled, without any network request and without
 * reading anything but the images dir. The Day-1 load and `IfNotPresent` use it.
 */
export async function lookupStored(
  ref: string,
  imagesDir: string,
  selection: Selection,
  opts: { platform?: string; /** false: leave the last-used time alone (a dry run writes nothing) */ touch?: boolean } = {},
): Promise<PullResult | undefined> {
  const { reference, platform } = normalise(ref, selection, opts.platform);
  const store = new StoreDir(imagesDir);
  const rec = await store.readRef(reference, platform);
  if (!rec) return undefined;
  const entry = await store.readEntry(entryKey(rec.manifestDigest, selection));
  if (!entry) return undefined;
  if (opts.touch !== false) await store.touch(entry.key);
  return result(entry, reference, rec.digest, true);
}

/**
 * The registry client (undici and friends: ~30 MiB and a noticeable start-up cost) is loaded only when a pull
 * needs the network or a layout, never for a cache hit: a Day-1 load before the network stays lean.
 */
const registryStack = () => import('../image/open.js');

/** Pulls within a deadline (issue 14 F3): a registry that keeps every attempt barely alive cannot hold a pull forever. */
export async function pullImage(ref: string, opts: PullOptions): Promise<PullResult> {
  const { reference } = normalise(ref, opts.selection, opts.platform);
  return withDeadline({ signal: opts.signal, ms: opts.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS, what: `image ${reference}: pull` },
    (signal) => pullUnbounded(ref, { ...opts, signal }));
}

/** What opening the image's source needs of a pull's options (the same for a pull and its dry-run plan). */
function sourceOptions(opts: PullOptions, platform: string) {
  return {
    insecure: opts.insecure,
    platform,
    authFile: opts.authFile,
    pullSecretsDir: opts.pullSecretsDir,
    hostRoot: opts.hostRoot,
    signal: opts.signal,
    log: opts.log,
  };
}

async function pullUnbounded(ref: string, opts: PullOptions): Promise<PullResult> {
  const { reference, platform } = normalise(ref, opts.selection, opts.platform);
  const { log, selection } = opts;
  const store = new StoreDir(opts.imagesDir);
  const sourceOpts = sourceOptions(opts, platform);

  if (opts.policy !== 'Always') {
    const hit = await lookupStored(reference, opts.imagesDir, selection, { platform });
    if (hit) {
      log.info({ image: reference, digest: hit.digest, root: hit.root }, 'image found in the cache');
      return hit;
    }
    if (opts.policy === 'Never') {
      throw new OperationError(`image ${reference} is not in the cache ${opts.imagesDir} and the pull policy is Never`);
    }
  } else {
    const rec = await store.readRef(reference, platform);
    if (rec) {
      const { resolveDigest } = await registryStack();
      const digest = await resolveDigest(reference, sourceOpts);
      const entry = digest === rec.digest ? await store.readEntry(entryKey(rec.manifestDigest, selection)) : undefined;
      if (entry) {
        await store.touch(entry.key);
        log.info({ image: reference, digest }, 'image unchanged in the registry; using the cached copy');
        return result(entry, reference, digest, true);
      }
      if (digest !== rec.digest) log.info({ image: reference, was: rec.digest, now: digest }, 'image changed in the registry');
    }
  }

  await store.ensure();
  const { openImage } = await registryStack();
  const image = await openImage(reference, sourceOpts);
  const key = entryKey(image.manifestDigest, selection);
  const writeRef = async () => {
    await store.writeRef({ reference, platform, digest: image.digest, manifestDigest: image.manifestDigest, updated: new Date().toISOString() });
    await store.touch(key);
  };
  let fromCache = true;
  let entry = await store.readEntry(key);
  if (!entry) {
    const lock = await acquireLock(store.lockFile(key), { log, signal: opts.signal, what: reference });
    try {
      entry = await store.readEntry(key);
      if (!entry) {
        await store.removeTmpOf(key);
        entry = await writeEntry(store, key, image, { reference, platform, selection, log, signal: opts.signal, onProgress: opts.onProgress });
        fromCache = false;
        // Under the lock: a concurrent prune must never see the new entry without its reference.
        await writeRef();
      }
    } finally {
      await lock.release();
    }
  }
  if (fromCache) {
    await writeRef();
    // its writer may have been killed between renaming the entry into place and releasing the lock
    await clearIfStale(store.lockFile(key), { log });
    log.info({ image: reference, digest: image.digest, root: entry.root }, 'image already in the cache');
  }
  return result(entry, reference, image.digest, fromCache);
}

/** What a pull would do, found without writing anything (`--dry-run`). */
export type PullPlan =
  | { action: 'use-cached'; image: PullResult }
  | { action: 'download'; reference: string; digest: string; manifestDigest: string; layers: number; bytes: number; imagesDir: string };

/**
 * The dry-run twin of pullImage: the same policy decisions, reading the cache and the registry (or layout)
 * only. Nothing is created, locked, touched or downloaded beyond the manifests.
 */
export async function planPull(ref: string, opts: PullOptions): Promise<PullPlan> {
  const { reference, platform } = normalise(ref, opts.selection, opts.platform);
  const store = new StoreDir(opts.imagesDir);
  const sourceOpts = sourceOptions(opts, platform);
  if (opts.policy !== 'Always') {
    const hit = await lookupStored(reference, opts.imagesDir, opts.selection, { platform, touch: false });
    if (hit) return { action: 'use-cached', image: hit };
    if (opts.policy === 'Never') {
      throw new OperationError(`image ${reference} is not in the cache ${opts.imagesDir} and the pull policy is Never`);
    }
  }
  const { openImage } = await registryStack();
  const image = await openImage(reference, sourceOpts);
  const entry = await store.readEntry(entryKey(image.manifestDigest, opts.selection));
  if (entry) return { action: 'use-cached', image: result(entry, reference, image.digest, true) };
  return {
    action: 'download',
    reference,
    digest: image.digest,
    manifestDigest: image.manifestDigest,
    layers: image.layers.length,
    bytes: image.layers.reduce((n, l) => n + l.size, 0),
    imagesDir: opts.imagesDir,
  };
}

/** The dry-run line for a download. */
export function describeDownload(plan: Extract<PullPlan, { action: 'download' }>): string {
  return `would pull ${plan.reference} ${plan.digest} (${plan.layers} layer${plan.layers === 1 ? '' : 's'}, ${plan.bytes} bytes) into ${plan.imagesDir}`;
}

async function writeEntry(
  store: StoreDir,
  key: string,
  image: ResolvedImage,
  opts: { reference: string; platform: string; selection: Selection; log: Logger; signal?: AbortSignal; onProgress?: (p: LayerProgress) => void },
): Promise<StoredEntry> {
  const tmp = await store.makeTmp(key);
  try {
    const rootfs = path.join(tmp, 'rootfs');
    await mkdir(rootfs, { mode: 0o755 });
    const started = Date.now();
    // loaded here, not at the top: a cache hit (every Day-1 boot, every daemon re-check) never extracts
    const { extractImage } = await import('../extract/extract-image.js');
    const extracted = await extractImage(image, rootfs, {
      selection: opts.selection,
      log: opts.log,
      signal: opts.signal,
      onProgress: opts.onProgress,
    });
    if (opts.selection !== 'all') await requireKernelDir(rootfs, opts.selection, extracted.kernels, opts.reference);
    const meta: EntryMeta = {
      reference: opts.reference,
      digest: image.digest,
      manifestDigest: image.manifestDigest,
      platform: opts.platform,
      selection: opts.selection,
      files: extracted.files,
      bytes: extracted.bytes,
      created: new Date().toISOString(),
      ...(extracted.lazyLayers ? { lazyLayers: extracted.lazyLayers } : {}),
    };
    await writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    // Every file must be on disk before the entry can be trusted (a Day-1 load runs after a power cut).
    await syncFilesystem(tmp, opts.log);
    opts.signal?.throwIfAborted();
    try {
      await rename(tmp, store.entryDir(key));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Someone else completed the same entry first (a taken-over lock): theirs is as good as ours.
      await rm(tmp, { recursive: true, force: true });
    }
    await fsyncDir(store.entries);
    opts.log.info(
      { image: opts.reference, digest: image.digest, files: extracted.files, bytes: extracted.bytes, downloaded: extracted.downloaded, ms: Date.now() - started },
      'image pulled and extracted',
    );
    const entry = await store.readEntry(key);
    if (!entry) throw new OperationError(`cache entry ${store.entryDir(key)} vanished right after it was written`);
    return entry;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof OperationError || err instanceof UsageError || opts.signal?.aborted) throw err;
    const msg = errorMessage(err);
    throw new OperationError(`cannot store image ${opts.reference} in ${store.dir}: ${msg}`, { cause: err });
  }
}

/**
 * A selection whose kernel directory the image does not hold would be an empty, trusted entry: refused, with
 * what the image does carry and the dirName it seems to use.
 */
async function requireKernelDir(rootfs: string, selection: KernelSelection, kernels: Record<string, string[]>, reference: string)
  : Promise<void> {
  const want = path.posix.join('/', selection.dirName, 'lib/modules', selection.kernelVersion);
  const isDir = await lstat(path.join(rootfs, want)).then((s) => s.isDirectory(), () => false);
  if (isDir) return;
  const carried = Object.keys(kernels).sort();
  if (carried.length === 0) {
    throw new OperationError(`image ${reference} has no ${want}: it carries no kernel modules (no lib/modules/<kernel>/ in any layer)`);
  }
  const under = (k: string) => `${k} (dirName ${kernels[k]!.sort().join(', ')})`;
  const dirName = path.posix.join('/', selection.dirName);
  const elsewhere = kernels[selection.kernelVersion]?.filter((d) => d !== dirName);
  let hint = '';
  if (elsewhere?.length) hint = `; kernel ${selection.kernelVersion} is there under dirName ${elsewhere[0]}: set modprobe.dirName (--dir-name) to ${elsewhere[0]}`;
  else if (!carried.some((k) => kernels[k]!.includes(dirName))) {
    const dirs = [...new Set(carried.flatMap((k) => kernels[k]!))].sort();
    hint = `; the image seems to use dirName: ${dirs.join(' or ')}`;
  }
  throw new OperationError(`image ${reference} has no ${want}; it carries kernels ${carried.map(under).join(', ')}${hint}`);
}

const run = promisify(execFile);

/**
 * syncfs(2) of the filesystem holding `dir`, through coreutils' `sync -f` (Node has no binding for it). An image
 * without `sync` still gets complete-or-absent entries against crashes of the process; only power-loss
 * durability is weaker, so that is a warning, not a failure.
 */
async function syncFilesystem(dir: string, log: Logger): Promise<void> {
  try {
    await run('sync', ['-f', dir]);
  } catch (err) {
    log.warn({ dir, err: errorMessage(err) }, 'could not sync the new cache entry to disk');
  }
}
