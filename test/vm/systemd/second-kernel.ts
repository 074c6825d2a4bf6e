// A second real Debian kernel for the prefetch proof: another ABI of the same 6.1 series (a different package,
// linux-image-<SECOND_KVER>), with the test modules built against its own headers by test/kmods/build.sh.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, testCacheDir, type TestKmods } from '../../kmods/kmods.js';

/** `KMM_VM_SECOND_KVER` overrides it; it must differ from the default kernel's ABI. */
export const SECOND_KVER = process.env.KMM_VM_SECOND_KVER ?? '6.1.0-56-amd64';

export function ensureSecondKernel(): Promise<TestKmods> {
  return new Promise((resolve, reject) => {
    execFile('bash', [join(repoRoot, 'test/kmods/build.sh')],
      { env: { ...process.env, KMM_TEST_CACHE: testCacheDir, KMM_KVER: SECOND_KVER }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`test/kmods/build.sh for ${SECOND_KVER} failed: ${stderr.trim().split('\n').slice(-10).join('\n')}`));
          return;
        }
        const kver = stdout.trim().split('\n').pop() ?? '';
        const dir = join(testCacheDir, 'kmods', kver);
        const ko: Record<string, string> = {};
        for (const f of existsSync(dir) ? readdirSync(dir) : []) if (f.endsWith('.ko')) ko[f.slice(0, -3)] = join(dir, f);
        if (kver !== SECOND_KVER || !ko.kmm_hello) {
          reject(new Error(`test/kmods/build.sh built '${kver}', not ${SECOND_KVER} with kmm_hello`));
          return;
        }
        const kdir = join(testCacheDir, 'kernel', kver);
        resolve({ kver, dir, ko, kernel: { vmlinux: join(kdir, 'vmlinux'), modulesDir: join(kdir, 'image/lib/modules', kver) } });
      });
  });
}
