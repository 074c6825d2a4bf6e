/**
 * Firmware on the host (docs/kmod.md, load step 5 and unload step 4): copy the CONTENTS of the image's firmware directory into the host
 * firmware directory, and keep a record of what each module installed beside it, in
 * `<firmware dir>/.kmm-worker/<namespace>/<name>.json`, so an unload removes only its own files, and not those
 * that another loaded module also installed.
 */
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Logger } from '../log.js';
import { OperationError } from '../errors.js';
import type { HostChanges } from './changes.js';

export const RECORD_DIR = '.kmm-worker';

export interface FirmwareRecord {
  /** `<ns>/<name>` */
  module: string;
  /** the kernel modules whose liveness says this record's owner is loaded */
  modules: string[];
  /** paths relative to the firmware dir: files and symlinks this module installed */
  files: string[];
  /** directories this module created (relative), deepest last */
  dirs: string[];
}

export interface FirmwareOwner {
  namespace: string;
  name: string;
  modules: string[];
}

const recordPath = (firmwareDir: string, owner: { namespace: string; name: string }) =>
  join(firmwareDir, RECORD_DIR, owner.namespace, `${owner.name}.json`);

async function lstatOrUndefined(path: string) {
  return lstat(path).catch(() => undefined);
}

async function readRecord(path: string): Promise<FirmwareRecord | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as FirmwareRecord;
    if (!Array.isArray(r.files) || !Array.isArray(r.dirs) || !Array.isArray(r.modules)) throw new Error('bad shape');
    return r;
  } catch {
    throw new OperationError(`firmware record ${path} is corrupt; remove it by hand after checking the files it lists`);
  }
}

/** Every record in the firmware dir, except the given owner's. */
async function otherRecords(firmwareDir: string, owner: FirmwareOwner): Promise<FirmwareRecord[]> {
  const base = join(firmwareDir, RECORD_DIR);
  const mine = recordPath(firmwareDir, owner);
  const out: FirmwareRecord[] = [];
  for (const ns of await readdir(base).catch(() => [] as string[])) {
    for (const f of await readdir(join(base, ns)).catch(() => [] as string[])) {
      const p = join(base, ns, f);
      if (!f.endsWith('.json') || p === mine) continue;
      const r = await readRecord(p).catch(() => undefined);
      if (r) out.push(r);
    }
  }
  return out;
}

interface SourceEntry {
  rel: string;
  kind: 'file' | 'dir' | 'symlink';
  link?: string;
}

/** The image firmware tree, parents before children; symlinks kept only when they stay inside the tree. */
async function walkSource(srcDir: string, log: Logger): Promise<SourceEntry[]> {
  const entries: SourceEntry[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const rel = relative(srcDir, abs);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        entries.push({ rel, kind: 'dir' });
        await walk(abs);
      } else if (st.isFile()) {
        entries.push({ rel, kind: 'file' });
      } else if (st.isSymbolicLink()) {
        const link = await readlink(abs);
        const target = resolve(dirname(abs), link);
        if (isAbsolute(link) || !(target + sep).startsWith(srcDir + sep)) {
          log.warn({ path: rel, link }, 'skipping firmware symlink that points outside the firmware directory');
          continue;
        }
        entries.push({ rel, kind: 'symlink', link });
      }
    }
  };
  await walk(srcDir);
  return entries;
}

/**
 * Copies the contents of `srcDir` into `firmwareDir` and records what was installed (merged with an earlier
 * record of the same owner, so a re-load does not forget directories it created the first time).
 */
export async function installFirmware(opts: {
  srcDir: string;
  firmwareDir: string;
  owner: FirmwareOwner;
  changes: HostChanges;
  log: Logger;
}): Promise<FirmwareRecord> {
  const { srcDir, firmwareDir, owner, changes, log } = opts;
  const st = await lstatOrUndefined(srcDir);
  if (!st?.isDirectory()) {
    throw new OperationError(`modprobe.firmwarePath: ${srcDir} is not a directory in the kmods image`);
  }
  const rp = recordPath(firmwareDir, owner);
  const previous = await readRecord(rp);
  const files = new Set(previous?.files ?? []);
  const dirs = new Set(previous?.dirs ?? []);
  if (!(await lstatOrUndefined(firmwareDir))) await changes.mkdir(firmwareDir);
  for (const e of await walkSource(srcDir, log)) {
    const dest = join(firmwareDir, e.rel);
    if (e.kind === 'dir') {
      const existing = await lstatOrUndefined(dest);
      if (existing?.isDirectory()) continue;
      if (existing) throw new OperationError(`cannot install firmware directory ${dest}: a file is in the way`);
      await changes.mkdir(dest);
      dirs.add(e.rel);
    } else if (e.kind === 'file') {
      await changes.copyFile(join(srcDir, e.rel), dest);
      files.add(e.rel);
    } else {
      await changes.symlink(e.link!, dest);
      files.add(e.rel);
    }
  }
  const record: FirmwareRecord = {
    module: `${owner.namespace}/${owner.name}`,
    modules: owner.modules,
    files: [...files].sort(),
    dirs: [...dirs].sort(),
  };
  await changes.mkdir(dirname(rp));
  await changes.writeFile(rp, `${JSON.stringify(record, null, 2)}\n`);
  log.info({ firmwareDir, files: record.files.length }, `installed firmware from ${srcDir}`);
  return record;
}

/**
 * Removes what the owner installed, except files that another record whose modules are loaded also lists; then
 * the directories it created that are now empty; then its record. No record: nothing to remove.
 */
export async function removeFirmware(opts: {
  firmwareDir: string;
  owner: FirmwareOwner;
  changes: HostChanges;
  log: Logger;
  isLoaded: (module: string) => Promise<boolean>;
}): Promise<{ removed: string[]; kept: string[] }> {
  const { firmwareDir, owner, changes, log } = opts;
  const rp = recordPath(firmwareDir, owner);
  const record = await readRecord(rp);
  if (!record) {
    log.debug({ firmwareDir }, `no firmware recorded for ${owner.namespace}/${owner.name}; nothing to remove`);
    return { removed: [], kept: [] };
  }
  const shared = new Set<string>();
  for (const other of await otherRecords(firmwareDir, owner)) {
    const loaded = (await Promise.all(other.modules.map((m) => opts.isLoaded(m)))).some(Boolean);
    if (loaded) other.files.forEach((f) => shared.add(f));
  }
  const removed: string[] = [];
  const kept: string[] = [];
  for (const rel of record.files) {
    if (shared.has(rel)) {
      kept.push(rel);
      continue;
    }
    await changes.removeFile(join(firmwareDir, rel));
    removed.push(rel);
  }
  if (kept.length) log.info({ kept }, 'kept firmware files that another loaded module also installed');
  // the directories this left empty: parents of what was removed (below the firmware dir) and those it created;
  // deepest first, so a parent is tried after its children
  const candidates = new Set(record.dirs);
  for (const rel of removed) {
    for (let d = dirname(rel); d !== '.' && d !== '' && d !== sep; d = dirname(d)) candidates.add(d);
  }
  const dirs = [...candidates].sort((a, b) => b.split(sep).length - a.split(sep).length || b.localeCompare(a));
  for (const d of dirs) await changes.removeEmptyDir(join(firmwareDir, d));
  await changes.removeFile(rp);
  await changes.removeEmptyDir(dirname(rp));
  await changes.removeEmptyDir(join(firmwareDir, RECORD_DIR));
  log.info({ firmwareDir, removed: removed.length, kept: kept.length }, 'removed firmware');
  return { removed, kept };
}
