/**
 * `image ls` and `image prune`: what the cache holds, and removing what is no longer used.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { tryLock } from './lock.js';
import { StoreDir, type StoredEntry } from './store-dir.js';
import type { StoredImage } from './pull.js';

/** An entry of `image ls`; its `reference` is one currently naming the entry, else the one it was pulled as. */
export interface ListedImage extends StoredImage {
  /** ISO time of the last pull or load that used the entry */
  lastUsed: string;
  /** every reference whose latest pull names this entry */
  references: string[];
  platform: string;
  /** the selected paths ("all" or the kernel's modules dir and the firmware dir) */
  selection: string;
  key: string;
}

function describeSelection(e: StoredEntry): string {
  const s = e.meta.selection;
  if (s === 'all') return 'all';
  return [`${s.dirName}/lib/modules/${s.kernelVersion}`.replace(/\/+/g, '/'), s.firmwarePath, s.modprobedDir].filter(Boolean).join(',');
}

export async function listImages(imagesDir: string): Promise<ListedImage[]> {
  const store = new StoreDir(imagesDir);
  const entries = await store.listEntries();
  const refs = await store.listRefs();
  const out: ListedImage[] = [];
  for (const e of entries) {
    const references = refs
      .filter(({ record }) => record.manifestDigest === e.meta.manifestDigest && record.platform === e.meta.platform)
      .map(({ record }) => record.reference)
      .sort();
    const used = (await store.lastUsed(e.key)) ?? new Date(e.meta.created);
    out.push({
      reference: references.includes(e.meta.reference) ? e.meta.reference : (references[0] ?? e.meta.reference),
      digest: e.meta.digest,
      manifestDigest: e.meta.manifestDigest,
      root: e.root,
      files: e.meta.files,
      bytes: e.meta.bytes,
      lastUsed: used.toISOString(),
      references,
      platform: e.meta.platform,
      selection: describeSelection(e),
      key: e.key,
    });
  }
  return out;
}

export interface PrunedImage extends ListedImage {
  reason: 'unused' | 'unreferenced';
}

/**
 * Removes entries not used for `olderThanMs` and entries no reference names any more (their tag moved on),
 * plus references to entries that are gone and leftovers of interrupted pulls. An entry being pulled or
 * removed by another agent right now (its lock is held) is left alone.
 */
export async function pruneImages(
  imagesDir: string,
  opts: { olderThanMs: number; log: Logger; now?: Date; /** only list what would be removed; write nothing */ dryRun?: boolean },
): Promise<PrunedImage[]> {
  const store = new StoreDir(imagesDir);
  const now = (opts.now ?? new Date()).getTime();
  const removed: PrunedImage[] = [];
  for (const img of await listImages(imagesDir)) {
    const reason = img.references.length === 0 ? 'unreferenced' : now - Date.parse(img.lastUsed) >= opts.olderThanMs ? 'unused' : undefined;
    if (!reason) continue;
    if (opts.dryRun) {
      removed.push({ ...img, reason });
      continue;
    }
    const lock = await tryLock(store.lockFile(img.key), { log: opts.log });
    if (!lock) {
      opts.log.info({ image: img.reference, key: img.key }, 'entry is in use by another pull; kept');
      continue;
    }
    try {
      await store.removeEntry(img.key);
    } finally {
      await lock.release();
    }
    opts.log.info({ image: img.reference, digest: img.digest, bytes: img.bytes, reason }, 'removed cache entry');
    removed.push({ ...img, reason });
  }
  if (opts.dryRun) return removed;
  // References whose entries are all gone name nothing: drop them so `IfNotPresent` cannot be misled.
  const left = new Set((await store.listEntries()).map((e) => `${e.meta.manifestDigest}\n${e.meta.platform}`));
  for (const { file, record } of await store.listRefs()) {
    if (!left.has(`${record.manifestDigest}\n${record.platform}`)) await rm(file, { force: true });
  }
  await removeLeftovers(store, now);
  return removed;
}

/** Temp dirs of pulls that died long ago (a live pull's lock is fresh). */
async function removeLeftovers(store: StoreDir, now: number): Promise<void> {
  for (const name of await readdir(store.tmp).catch(() => [] as string[])) {
    const p = path.join(store.tmp, name);
    const st = await stat(p).catch(() => undefined);
    if (st && now - st.mtimeMs > 3_600_000) await rm(p, { recursive: true, force: true });
  }
}

