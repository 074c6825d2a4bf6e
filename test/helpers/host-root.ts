// A node's own paths in a temp dir (README.md "Global options": --host-root): proc/sys/kernel/osrelease, sys/module/...,
// lib/modules/<kver>, var/lib/firmware and firmware_class.path.
import { mkdir, mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoadedModuleOptions {
  srcversion?: string;
  refcnt?: number;
  holders?: string[];
  initstate?: string;
}

export interface HostRoot {
  root: string;
  kver: string;
  /** `<root>/sys/module/<name>` */
  sysModule(name: string): string;
  /** a module that the (simulated) kernel has loaded, e.g. an in-tree twin */
  addLoadedModule(name: string, opts?: LoadedModuleOptions): Promise<void>;
  /** a module compiled into the kernel: /sys/module/<name> without initstate */
  addBuiltinModule(name: string): Promise<void>;
  /** names in /sys/module that have an initstate */
  loadedModules(): Promise<string[]>;
  /** `<root>/sys/module/firmware_class/parameters/path` */
  firmwareClassPathFile: string;
  firmwareClassPath(): Promise<string>;
  /** a node path resolved under the root */
  path(nodePath: string): string;
  cleanup(): Promise<void>;
}

export async function makeHostRoot(opts: { kver: string; firmwareClassPath?: string }): Promise<HostRoot> {
  const root = await mkdtemp(join(tmpdir(), 'kmm-host-'));
  await mkdir(join(root, 'proc/sys/kernel'), { recursive: true });
  await writeFile(join(root, 'proc/sys/kernel/osrelease'), `${opts.kver}\n`);
  await mkdir(join(root, 'sys/module/firmware_class/parameters'), { recursive: true });
  const fcp = join(root, 'sys/module/firmware_class/parameters/path');
  await writeFile(fcp, `${opts.firmwareClassPath ?? ''}\n`);
  await mkdir(join(root, 'lib/modules', opts.kver), { recursive: true });
  await mkdir(join(root, 'var/lib/firmware'), { recursive: true });
  const sysModule = (name: string) => join(root, 'sys/module', name.replaceAll('-', '_'));
  return {
    root,
    kver: opts.kver,
    sysModule,
    async addLoadedModule(name, o = {}) {
      const dir = sysModule(name);
      await mkdir(join(dir, 'holders'), { recursive: true });
      await mkdir(join(dir, 'parameters'), { recursive: true });
      await writeFile(join(dir, 'initstate'), `${o.initstate ?? 'live'}\n`);
      await writeFile(join(dir, 'refcnt'), `${o.refcnt ?? o.holders?.length ?? 0}\n`);
      if (o.srcversion) await writeFile(join(dir, 'srcversion'), `${o.srcversion}\n`);
      for (const h of o.holders ?? []) await writeFile(join(dir, 'holders', h), '');
    },
    async addBuiltinModule(name) {
      await mkdir(join(sysModule(name), 'parameters'), { recursive: true });
    },
    async loadedModules() {
      const names = await readdir(join(root, 'sys/module'));
      return names.filter((n) => existsSync(join(root, 'sys/module', n, 'initstate'))).sort();
    },
    firmwareClassPathFile: fcp,
    firmwareClassPath: async () => (await readFile(fcp, 'utf8')).replace(/\n$/, ''),
    path: (p: string) => join(root, p),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
