// The systemd guest's disk: the cached Debian root filesystem (build-rootfs.sh) plus, on every run, this
// checkout's kmm-worker, the shipped Day-1 units and settings file, written into a raw ext4 image with
// `mkfs.ext4 -d`. The guest boots Debian's kernel with a tiny initramfs that mounts /dev/vda and starts systemd.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, testCacheDir, type TestKmods } from '../../kmods/kmods.js';
import { installKmmWorker, nodeBinary } from '../initramfs.js';

const here = path.join(repoRoot, 'test/vm/systemd');

export interface SystemdRootfs {
  /** the cached tree's directory (rootfs/, initrd-<kver>.cpio) */
  dir: string;
  initrd(kver: string): string;
}

/** Builds the cached root filesystem when its inputs changed (minutes the first time), else returns at once. */
export function ensureSystemdRootfs(kmods: TestKmods, second?: { kver: string; modulesDir: string }): SystemdRootfs {
  const args = [path.join(here, 'build-rootfs.sh'), kmods.kver, kmods.kernel.modulesDir, nodeBinary()];
  if (second) args.push(second.kver, second.modulesDir);
  let out: string;
  try {
    out = execFileSync('bash', args, {
      encoding: 'utf8', env: { ...process.env, KMM_TEST_CACHE: testCacheDir }, stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 16 << 20,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`test/vm/systemd/build-rootfs.sh failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-15).join('\n')}`);
  }
  const dir = out.trim().split('\n').pop()!;
  return { dir, initrd: (kver) => path.join(dir, `initrd-${kver}.cpio`) };
}

export interface DiskOptions {
  /** contents of /etc/kmm-worker/day1.env: the shipped file with these KMM_DAY1_* values set */
  settings: Record<string, string>;
  /** extra files: guest path → contents */
  files?: Record<string, string>;
}

/** The shipped settings file with `values` filled in, every other line (comments, defaults) as shipped. */
export function shippedSettings(values: Record<string, string>): string {
  const shipped = fs.readFileSync(path.join(repoRoot, 'systemd/kmm-day1.env'), 'utf8');
  const left = new Set(Object.keys(values));
  const text = shipped.replace(/^([A-Z0-9_]+)=.*$/gm, (line, name: string) => {
    if (!(name in values)) return line;
    left.delete(name);
    return `${name}=${values[name]}`;
  });
  if (left.size) throw new Error(`the shipped kmm-day1.env has no ${[...left].join(', ')}`);
  return text;
}

/**
 * A fresh raw disk image in `workDir`: the cached tree (hard-linked, never written to), kmm-worker from this
 * checkout as /usr/local/bin/kmm-worker, the shipped units enabled as their [Install] sections say, the settings
 * file, and the drop-ins a test guest needs (`--insecure` for the plain-HTTP registry, as docs/day1.md tells users).
 */
export function buildDisk(rootfs: SystemdRootfs, workDir: string, opts: DiskOptions): string {
  const stage = fs.mkdtempSync(path.join(rootfs.dir, '..', `stage-${process.pid}-`));
  try {
    // hard links: the same filesystem, no copy; only new files are written into the stage
    execFileSync('cp', ['-al', `${path.join(rootfs.dir, 'rootfs')}/.`, stage]); // path.join would drop the '/.'
    installKmmWorker(stage);
    const put = (guestPath: string, body: string) => {
      const f = path.join(stage, guestPath);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.rmSync(f, { force: true }); // never write through a hard link into the cache
      fs.writeFileSync(f, body);
    };
    const units = '/etc/systemd/system';
    for (const unit of ['kmm-day1-load.service', 'kmm-day1-pull.service']) {
      const text = fs.readFileSync(path.join(repoRoot, 'systemd', unit), 'utf8');
      put(`${units}/${unit}`, text);
      const wantedBy = /^WantedBy=(.+)$/m.exec(text)?.[1]?.trim();
      if (!wantedBy) throw new Error(`${unit} has no WantedBy=`);
      fs.mkdirSync(path.join(stage, units, `${wantedBy}.wants`), { recursive: true });
      fs.symlinkSync(`../${unit}`, path.join(stage, units, `${wantedBy}.wants`, unit));
      // V8's code cache: each kmm-worker start after the first costs far less under emulation
      put(`${units}/${unit}.d/node-compile-cache.conf`, '[Service]\nEnvironment=NODE_COMPILE_CACHE=/var/cache/node-compile\n');
    }
    // Under TCG on a busy 2-core machine the load took up to 2 min 12 s of its 3 min; a timeout there would
    // measure the emulator, not the unit
    put(`${units}/kmm-day1-load.service.d/emulated-cpu.conf`, '[Service]\nTimeoutStartSec=15min\n');
    put(`${units}/kmm-day1-pull.service.d/insecure.conf`,
      '[Service]\nExecStart=\nExecStart=/usr/local/bin/kmm-worker day1 pull --insecure\n');
    put('/etc/kmm-worker/day1.env', shippedSettings(opts.settings));
    for (const [guestPath, body] of Object.entries(opts.files ?? {})) put(guestPath, body);

    const disk = path.join(workDir, 'disk.raw');
    fs.rmSync(disk, { force: true });
    execFileSync('truncate', ['-s', '3G', disk]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'kmmroot', '-d', stage, disk], { stdio: ['ignore', 'ignore', 'pipe'] });
    return disk;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
