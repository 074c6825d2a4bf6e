/**
 * Every write the flows make on the node goes through HostChanges: the real one writes, the plan one prints
 * what it would do (docs/kmod.md "--dry-run"). Paths here are already resolved under the host root.
 */
import { copyFile, mkdir, rename, rm, rmdir, symlink, writeFile } from 'node:fs/promises';

import type { Writable } from 'node:stream';
import { OperationError } from '../errors.js';

export interface HostChanges {
  /** creates a directory (parents too) */
  mkdir(dir: string): Promise<void>;
  /** copies a regular file, replacing what is there */
  copyFile(src: string, dest: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  /** replaces a file's content atomically (written aside, renamed into place) */
  writeFile(path: string, content: string): Promise<void>;
  /** writes a sysfs parameter in place (no rename: sysfs files cannot be replaced) */
  writeParameter(path: string, value: string): Promise<void>;
  /** removes a file or symlink; a missing one is fine */
  removeFile(path: string): Promise<void>;
  /** removes a directory if it is empty; returns whether it did */
  removeEmptyDir(path: string): Promise<boolean>;
}

function ioError(what: string, path: string, err: unknown): OperationError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return new OperationError(`cannot ${what} ${path}: ${code || (err as Error).message}`, { cause: err });
}

/**
 * Writes `dest` aside and renames it into place: a reader (the kernel loading firmware) never sees half a
 * file, and a symlink at `dest` is replaced rather than followed.
 */
async function replaceAside(dest: string, what: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dest}.kmm-tmp-${process.pid}`;
  try {
    await write(tmp);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(what, dest, e);
  }
}

export class RealHostChanges implements HostChanges {
  async mkdir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true }).catch((e) => {
      throw ioError('create directory', dir, e);
    });
  }
  async copyFile(src: string, dest: string): Promise<void> {
    await replaceAside(dest, 'copy to', (tmp) => copyFile(src, tmp));
  }
  async symlink(target: string, path: string): Promise<void> {
    await rm(path, { force: true }).catch(() => {});
    await symlink(target, path).catch((e) => {
      throw ioError('create symlink', path, e);
    });
  }
  async writeFile(path: string, content: string): Promise<void> {
    await replaceAside(path, 'write', (tmp) => writeFile(tmp, content));
  }
  async writeParameter(path: string, value: string): Promise<void> {
    await writeFile(path, value, { flag: 'r+' }).catch((e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
        throw new OperationError(
          `cannot write ${path}: ${code} (read-only /sys): mount /sys from the host read-write into the worker`,
          { cause: e },
        );
      }
      throw ioError('write', path, e);
    });
  }
  async removeFile(path: string): Promise<void> {
    await rm(path, { force: true }).catch((e) => {
      throw ioError('remove', path, e);
    });
  }
  async removeEmptyDir(path: string): Promise<boolean> {
    try {
      await rmdir(path);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return false;
      throw ioError('remove directory', path, e);
    }
  }
}

/** Prints each change as one line of the dry-run plan and makes none. */
export class PlanHostChanges implements HostChanges {
  constructor(private readonly out: Writable) {}
  private say(line: string) {
    this.out.write(`${line}\n`);
  }
  async mkdir(dir: string) {
    this.say(`mkdir -p ${dir}`);
  }
  async copyFile(src: string, dest: string) {
    this.say(`copy ${src} -> ${dest}`);
  }
  async symlink(target: string, path: string) {
    this.say(`symlink ${path} -> ${target}`);
  }
  async writeFile(path: string, content: string) {
    this.say(`write ${path} (${Buffer.byteLength(content)} bytes)`);
  }
  async writeParameter(path: string, value: string) {
    this.say(`write ${path}: ${value}`);
  }
  async removeFile(path: string) {
    this.say(`remove ${path}`);
  }
  async removeEmptyDir(path: string) {
    this.say(`rmdir ${path} (if empty)`);
    return true;
  }
}

