/**
 * `modprobe.modprobedDir`: the image's modprobe.d files, visible to every modprobe call of a load or unload
 * (in-tree removal included) beside the node's own configuration, and gone when the command ends.
 *
 * kmod's `-C` replaces modprobe's configuration search path, and may be given several times: files of the
 * same name are taken from the first directory that has one, and a directory that does not exist is skipped.
 * So each call gets `-C <staged copy>` followed by `-C` for every directory modprobe reads by default: the
 * node's /etc/modprobe.d and friends still apply, and an image file replaces a same-named one (as a copy into
 * /etc/modprobe.d would). Nothing is written into any modprobe.d directory.
 *
 * The files are checked and copied into a private temporary directory first, so modprobe reads exactly what
 * was checked: regular files only (no symlink out of the image, no device, FIFO or subdirectory), each at
 * most MAX_FILE_BYTES, at most MAX_FILES of them.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import type { ModprobeRunner } from '../host/runners.js';
import { makeTempDir } from '../host/temp-dir.js';

/** The directories kmod (30 to 34) reads when no -C is given, in its order. */
export const DEFAULT_MODPROBE_DIRS = [
  '/etc/modprobe.d',
  '/run/modprobe.d',
  '/usr/local/lib/modprobe.d',
  '/usr/lib/modprobe.d',
  '/lib/modprobe.d',
] as const;

export const MAX_FILE_BYTES = 1024 * 1024;
export const MAX_FILES = 256;

export interface StagedModprobeConfig {
  /** runs modprobe with the staged directory in front of the default ones (the plain runner without one) */
  modprobe: ModprobeRunner;
  /** the staged copy, if any */
  dir?: string;
  /** removes the staged copy */
  release(): Promise<void>;
}

const FIELD = 'modprobe.modprobedDir';

function kindOf(st: { isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean }): string {
  if (st.isDirectory()) return 'a subdirectory';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device file';
  return 'not a regular file';
}

/** Reads one entry without following a symlink, refusing anything but a small regular file. */
async function readEntry(path: string, shown: string): Promise<Buffer> {
  const st = await lstat(path);
  if (!st.isFile()) throw new OperationError(`${FIELD}: ${shown} is ${kindOf(st)}; only regular modprobe.d files are allowed`);
  if (st.size > MAX_FILE_BYTES) {
    throw new OperationError(`${FIELD}: ${shown} is ${st.size} bytes; a modprobe.d file may have at most ${MAX_FILE_BYTES}`);
  }
  // O_NOFOLLOW | O_NONBLOCK: a file swapped for a symlink or a FIFO after the lstat is refused, not followed
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const again = await fh.stat();
    if (!again.isFile() || again.size > MAX_FILE_BYTES) throw new OperationError(`${FIELD}: ${shown} changed while it was read`);
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_FILE_BYTES) throw new OperationError(`${FIELD}: ${shown} grew past ${MAX_FILE_BYTES} bytes while it was read`);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Checks `<imageRoot>/<modprobedDir>` and returns its files by name; every problem is one OperationError line. */
export async function readModprobedDir(config: ModuleConfig, imageRoot: string): Promise<Map<string, Buffer>> {
  const inImage = config.modprobe.modprobedDir!;
  const dir = join(imageRoot, inImage);
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new OperationError(`${FIELD}: ${inImage} does not exist in the image (${dir})`);
    throw new OperationError(`${FIELD}: cannot read ${dir}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new OperationError(`${FIELD}: ${inImage} is ${st.isFile() ? 'a file' : kindOf(st)}, not a directory (${dir})`);
  const names = (await readdir(dir)).sort();
  if (names.length > MAX_FILES) throw new OperationError(`${FIELD}: ${inImage} has ${names.length} entries; at most ${MAX_FILES} are allowed`);
  if (config.modprobe.modulesLoadingOrder.length > 0 && names.includes('softdep.conf')) {
    throw new OperationError(
      `${FIELD}: ${inImage}/softdep.conf clashes with the softdep.conf that modprobe.modulesLoadingOrder needs; rename the image's file`,
    );
  }
  const files = new Map<string, Buffer>();
  for (const name of names) files.set(name, await readEntry(join(dir, name), `${inImage}/${name}`));
  return files;
}

/** modprobe with `-C <dir> -C <each default dir>` in front of every argv. */
export class ConfiguredModprobe implements ModprobeRunner {
  constructor(
    private readonly inner: ModprobeRunner,
    private readonly configDirs: readonly string[],
  ) {}
  run(args: string[]): Promise<void> {
    return this.inner.run([...this.configDirs.flatMap((d) => ['-C', d]), ...args]);
  }
}

/**
 * Stages the config's modprobedDir (from the image root the kmods came from) for modprobe. Without the field,
 * the plain runner. Called before the first host change: a bad directory fails the load with nothing done.
 */
export async function stageModprobeConfig(
  modprobe: ModprobeRunner,
  config: ModuleConfig,
  imageRoot: string,
): Promise<StagedModprobeConfig> {
  if (!config.modprobe.modprobedDir) return { modprobe, release: async () => {} };
  const files = await readModprobedDir(config, imageRoot);
  const dir = await makeTempDir('kmm-worker-modprobe.d-');
  const release = () => rm(dir, { recursive: true, force: true });
  try {
    for (const [name, content] of files) await writeFile(join(dir, name), content, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    await release();
    throw err;
  }
  return { modprobe: new ConfiguredModprobe(modprobe, [dir, ...DEFAULT_MODPROBE_DIRS]), dir, release };
}
