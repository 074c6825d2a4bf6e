/**
 * Read-only view of the node (README.md "Global options": `--host-root`): the running kernel and /sys/module. Everything that
 * writes goes through HostChanges, so a dry run can swap it for a plan printer.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError } from '../errors.js';
import { normaliseModuleName } from '../kmod/names.js';

export type ModuleState =
  | { kind: 'absent' }
  /** /sys/module/<name> without initstate: compiled into the kernel */
  | { kind: 'builtin' }
  | { kind: 'loaded'; initstate: string; srcversion?: string; refcnt: number; holders: string[] };

export const FIRMWARE_CLASS_PATH = '/sys/module/firmware_class/parameters/path';
export { DEFAULT_FIRMWARE_DIR } from '../config/defaults.js';

const readTrimmed = (path: string) => readFile(path, 'utf8').then((s) => s.trim());
const exists = (path: string) => stat(path).then(() => true, () => false);

export class Host {
  constructor(readonly root: string) {}

  /** A node path (absolute, as on the node) resolved under the host root. */
  path(nodePath: string): string {
    return this.root === '/' ? nodePath : join(this.root, nodePath);
  }

  async runningKernel(): Promise<string> {
    const file = this.path('/proc/sys/kernel/osrelease');
    try {
      return await readTrimmed(file);
    } catch (err) {
      throw new OperationError(`cannot read the running kernel from ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  /** The kernel's view of a module; `-` and `_` are equivalent. */
  async moduleState(name: string): Promise<ModuleState> {
    const dir = this.path(`/sys/module/${normaliseModuleName(name)}`);
    if (!(await exists(dir))) return { kind: 'absent' };
    const initstate = await readTrimmed(join(dir, 'initstate')).catch(() => undefined);
    if (initstate === undefined) return { kind: 'builtin' };
    const srcversion = await readTrimmed(join(dir, 'srcversion')).catch(() => undefined);
    const refcnt = Number(await readTrimmed(join(dir, 'refcnt')).catch(() => '0')) || 0;
    const holders = await readdir(join(dir, 'holders')).catch(() => [] as string[]);
    return { kind: 'loaded', initstate, ...(srcversion ? { srcversion } : {}), refcnt, holders: holders.sort() };
  }

  async isLive(name: string): Promise<boolean> {
    const s = await this.moduleState(name);
    return s.kind === 'loaded' && s.initstate === 'live';
  }

  /** The current firmware_class.path, or undefined when the parameter does not exist. */
  async firmwareClassPath(): Promise<string | undefined> {
    return readTrimmed(this.path(FIRMWARE_CLASS_PATH)).catch(() => undefined);
  }
}

