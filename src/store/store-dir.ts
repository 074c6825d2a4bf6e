/**
 * The on-disk layout of the image cache (`--images-dir`):
 *
 *   entries/<key>/meta.json, entries/<key>/rootfs/   complete entries only (renamed into place, never edited)
 *   refs/<hash of reference + platform>.json          which manifest a reference named when last pulled
 *   used/<key>                                        mtime = last use of the entry
 *   tmp/<key>.<random>/                               entries being written; garbage if their writer died
 *   locks/<key>.lock                                  one puller per entry at a time
 *
 * key = <manifest digest hex>-<hash of the selection> (or -all): the same image selected differently is a
 * different entry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { selectionKey, type Selection } from '../extract/selection.js';

export interface EntryMeta {
  /** the reference the entry was first pulled as */
  reference: string;
  /** digest the reference pointed at then (an index digest for a multi-arch tag) */
  digest: string;
  manifestDigest: string;
  platform: string;
  selection: Selection;
  files: number;
  bytes: number;
  created: string;
  /**
   * layers read lazily (zstd:chunked, selected files only): what was proven for each in place of its DiffID,
   * the TOC's sha256 from the manifest (every file matched the TOC's digest)
   */
  lazyLayers?: { digest: string; toc: string; received: number; requests: number }[];
}

export interface RefRecord {
  reference: string;
  platform: string;
  digest: string;
  manifestDigest: string;
  updated: string;
}

export interface StoredEntry {
  key: string;
  dir: string;
  /** the extracted image files */
  root: string;
  meta: EntryMeta;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function entryKey(manifestDigest: string, selection: Selection): string {
  const hex = manifestDigest.replace(/^sha256:/, '');
  if (!/^[a-f0-9]{64}$/.test(hex)) throw new Error(`not a sha256 digest: ${manifestDigest}`);
  return `${hex}-${selection === 'all' ? 'all' : sha256(selectionKey(selection)).slice(0, 16)}`;
}

export class StoreDir {
  readonly entries: string;
  readonly refs: string;
  readonly used: string;
  readonly tmp: string;
  readonly locks: string;

  constructor(readonly dir: string) {
    this.entries = path.join(dir, 'entries');
    this.refs = path.join(dir, 'refs');
    this.used = path.join(dir, 'used');
    this.tmp = path.join(dir, 'tmp');
    this.locks = path.join(dir, 'locks');
  }

  async ensure(): Promise<void> {
    for (const d of [this.entries, this.refs, this.used, this.tmp, this.locks]) await mkdir(d, { recursive: true, mode: 0o755 });
  }

  entryDir(key: string): string {
    return path.join(this.entries, key);
  }

  lockFile(key: string): string {
    return path.join(this.locks, `${key}.lock`);
  }

  refFile(reference: string, platform: string): string {
    return path.join(this.refs, `${sha256(`${reference}\n${platform}`)}.json`);
  }

  /** A complete entry, or undefined. Only renamed-into-place directories with their metadata count. */
  async readEntry(key: string): Promise<StoredEntry | undefined> {
    const dir = this.entryDir(key);
    try {
      const meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as EntryMeta;
      return { key, dir, root: path.join(dir, 'rootfs'), meta };
    } catch {
      return undefined;
    }
  }

  async listEntries(): Promise<StoredEntry[]> {
    const keys = await readdir(this.entries).catch(() => [] as string[]);
    const out: StoredEntry[] = [];
    for (const key of keys.sort()) {
      const e = await this.readEntry(key);
      if (e) out.push(e);
    }
    return out;
  }

  async readRef(reference: string, platform: string): Promise<RefRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.refFile(reference, platform), 'utf8')) as RefRecord;
      return rec.reference === reference && rec.platform === platform ? rec : undefined;
    } catch {
      return undefined;
    }
  }

  async listRefs(): Promise<{ file: string; record: RefRecord }[]> {
    const names = await readdir(this.refs).catch(() => [] as string[]);
    const out: { file: string; record: RefRecord }[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const file = path.join(this.refs, n);
      try {
        out.push({ file, record: JSON.parse(await readFile(file, 'utf8')) as RefRecord });
      } catch {
        // a torn or foreign file: not a record
      }
    }
    return out;
  }

  async writeRef(rec: RefRecord): Promise<void> {
    await writeFileAtomic(this.refFile(rec.reference, rec.platform), JSON.stringify(rec, null, 2) + '\n', this.tmp);
  }

  async lastUsed(key: string): Promise<Date | undefined> {
    return stat(path.join(this.used, key)).then((s) => s.mtime, () => undefined);
  }

  async touch(key: string): Promise<void> {
    const file = path.join(this.used, key);
    const now = new Date();
    try {
      await utimes(file, now, now);
    } catch {
      await writeFile(file, '').catch(() => undefined);
    }
  }

  /** A fresh private directory for writing the entry `key`. */
  async makeTmp(key: string): Promise<string> {
    const dir = path.join(this.tmp, `${key}.${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { mode: 0o755 });
    return dir;
  }

  /** Leftovers of writers of `key` that died; call only while holding the entry's lock. */
  async removeTmpOf(key: string): Promise<void> {
    const names = await readdir(this.tmp).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(`${key}.`)) await rm(path.join(this.tmp, n), { recursive: true, force: true });
  }

  /** Takes an entry out of `entries/` atomically (it stops being trusted at once), then deletes it. */
  async removeEntry(key: string): Promise<void> {
    const aside = path.join(this.tmp, `removing-${key}.${randomBytes(6).toString('hex')}`);
    try {
      await rename(this.entryDir(key), aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fsyncDir(this.entries);
    await rm(aside, { recursive: true, force: true });
    await rm(path.join(this.used, key), { force: true });
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write aside, fsync, rename over: readers see the old or the new file, never a torn one. */
export async function writeFileAtomic(file: string, data: string, tmpDir: string): Promise<void> {
  const tmp = path.join(tmpDir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}
