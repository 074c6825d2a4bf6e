/**
 * Fake ports for the worker flows (src/worker/ports.ts), for in-process tests of load, unload and the daemon's
 * reconciler: one journal records every host change, modprobe run and report in order; modprobe plays the
 * kernel under a temp host root; the kmods are a shared-dir style tree holding the project's real kmm_hello.ko.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Host } from '../../src/host/host.js';
import type { HostChanges } from '../../src/host/changes.js';
import { silentLogger } from '../../src/log.js';
import { noPlan } from '../../src/worker/plan.js';
import type { WorkerDeps } from '../../src/worker/ports.js';
import type { HostRoot } from './host-root.js';
import { ensureTestKmods } from '../kmods/kmods.js';

export const SRCVERSION = 'ABCDEF0123456789ABCDEF0';

/** A shared-dir style kmods tree: lib/modules/<kver>/extra/kmm_hello.ko with its modules.dep, and firmware. */
export async function makeKmodsTree(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const { kver, ko } = await ensureTestKmods();
  const dir = await mkdtemp(join(tmpdir(), 'kmm-flows-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kernelDir = join(dir, 'lib/modules', kver);
  await mkdir(join(kernelDir, 'extra'), { recursive: true });
  await copyFile(ko.kmm_hello!, join(kernelDir, 'extra/kmm_hello.ko'));
  await writeFile(join(kernelDir, 'modules.dep'), 'extra/kmm_hello.ko:\n');
  await mkdir(join(dir, 'firmware'), { recursive: true });
  await writeFile(join(dir, 'firmware/kmm_fw.bin'), 'firmware\n');
  return dir;
}

/** Fake ports around one journal; modprobe plays the kernel in the host root. */
export function fakePorts(host: HostRoot, tree: string, journal: string[]): WorkerDeps {
  const record = (what: string) => async (...args: string[]) => {
    journal.push(`${what} ${args.map((a) => a.replace(host.root, '<host>')).join(' ')}`);
  };
  const changes: HostChanges = {
    mkdir: record('mkdir'),
    copyFile: (src, dest) => record('copy')(dest),
    symlink: record('symlink'),
    writeFile: (path) => record('write')(path),
    writeParameter: record('parameter'),
    removeFile: record('remove'),
    removeEmptyDir: async (p) => (await record('rmdir')(p), true),
  };
  return {
    host: new Host(host.root),
    changes,
    modprobe: {
      async run(argv) {
        journal.push(`modprobe ${argv.map((a) => (a === tree ? '<kmods>' : a)).join(' ')}`);
        const names = argv.filter((a) => /^[a-z_]+$/.test(a));
        if (argv.includes('-r')) for (const n of names) await rm(host.sysModule(n), { recursive: true, force: true });
        else for (const n of names) await host.addLoadedModule(n, { srcversion: SRCVERSION });
      },
    },
    modinfo: { srcversion: async () => SRCVERSION },
    depmod: { generate: async () => { throw new Error('modules.dep is there: depmod must not run'); } },
    sources: [{ name: 'fake', locate: async () => ({ modulesRoot: tree, imageRoot: tree, origin: 'fake source' }) }],
    reporter: { report: async (ev) => void journal.push(`report ${ev.reason}`) },
    plan: noPlan,
    log: silentLogger(),
    identity: { namespace: 'ns', name: 'hello' },
  };
}

