// The project's own kernel modules for tests, built from test/kmods/src against Debian's current kernel.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../..');
export const testCacheDir = process.env.KMM_TEST_CACHE ?? join(repoRoot, '.cache');

export interface TestKmods {
  /** Kernel ABI the modules were built for, e.g. `6.1.0-56-amd64`. */
  kver: string;
  /** Directory holding the built `.ko` files. */
  dir: string;
  /** Module name → absolute path of its `.ko`: kmm_hello, kmm_standalone, kmm_fw, kmm_lib, kmm_user, dummy. */
  ko: Record<string, string>;
  /** The Debian kernel the modules match (for booting it and for its in-tree modules). */
  kernel: {
    /** Uncompressed kernel QEMU can boot directly. */
    vmlinux: string;
    /** `lib/modules/<kver>` of the extracted linux-image package (in-tree modules, modules.builtin…). */
    modulesDir: string;
  };
}

let pending: Promise<TestKmods> | undefined;

/**
 * Runs test/kmods/build.sh (once per process; build.sh itself flocks, so parallel tap files wait for one
 * another) and returns where the modules are. The first call downloads ~86 MB of kernel packages.
 */
export function ensureTestKmods(): Promise<TestKmods> {
  pending ??= build().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

function build(): Promise<TestKmods> {
  const script = join(here, 'build.sh');
  return new Promise((resolvePromise, reject) => {
    execFile(
      'bash',
      [script],
      { env: { ...process.env, KMM_TEST_CACHE: testCacheDir }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const tail = stderr.trim().split('\n').slice(-15).join('\n');
          reject(new Error(`test/kmods/build.sh failed (${err.message.split('\n')[0]}):\n${tail}`));
          return;
        }
        const kver = stdout.trim().split('\n').pop() ?? '';
        const dir = join(testCacheDir, 'kmods', kver);
        const ko: Record<string, string> = {};
        for (const f of existsSync(dir) ? readdirSync(dir) : []) {
          if (f.endsWith('.ko')) ko[f.slice(0, -3)] = join(dir, f);
        }
        if (!kver || !ko.kmm_hello) {
          reject(new Error(`test/kmods/build.sh reported kernel '${kver}' but ${dir} has no kmm_hello.ko`));
          return;
        }
        const kdir = join(testCacheDir, 'kernel', kver);
        resolvePromise({
          kver,
          dir,
          ko,
          kernel: { vmlinux: join(kdir, 'vmlinux'), modulesDir: join(kdir, 'image/lib/modules', kver) },
        });
      },
    );
  });
}

/**
 * A copy of an unsigned module whose vermagic names `release` instead of the kernel it was built for: for tests
 * that need a module for a kernel no headers exist for here (the machine's running kernel, a "next" kernel).
 * The `.modinfo` string keeps its length (padded with spaces, or trailing flag words dropped), so every ELF
 * offset stays valid; the kernel release is vermagic's first word, which is all kmm-worker's check reads.
 */
export function koBuiltFor(ko: Buffer, release: string): Buffer {
  const start = ko.indexOf('\0vermagic=') + '\0vermagic='.length;
  const end = ko.indexOf('\0', start);
  if (start < '\0vermagic='.length || end < 0) throw new Error('koBuiltFor: the module has no vermagic');
  const old = ko.toString('latin1', start, end);
  const flags = old.trim().split(/\s+/).slice(1);
  while ([release, ...flags].join(' ').length > old.length && flags.length > 0) flags.pop();
  const value = [release, ...flags].join(' ');
  if (value.length > old.length) throw new Error(`koBuiltFor: release ${release} is longer than the module's vermagic (${old.length} bytes)`);
  const copy = Buffer.from(ko);
  copy.write(value.padEnd(old.length, ' '), start, 'latin1');
  return copy;
}
