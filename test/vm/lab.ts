// Everything a VM scenario stands on, set up once: the test modules, a kmod image of them in a real registry
// on host 127.0.0.1, and a booted guest with Node 24 + kmm-worker that reaches that registry (and nothing else)
// as 10.0.2.100:5000. Used by vm.test.ts and by `npm run demo`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestKmods, type TestKmods } from '../kmods/kmods.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage } from '../helpers/images.js';
import { buildInitrd } from './initramfs.js';
import { Guest, guestForwardHost } from './guest.js';
import { kmodTreeLayers, writeKmodTree } from './kmod-image.js';

export const GUEST_REGISTRY_PORT = 5000;
export const IMAGE_REPO = 'kmm/kmm-test-kmods';
/** Where the guest finds the init-container style copy of the image (`--shared-dir`). */
export const GUEST_SHARED_DIR = '/srv/shared';
/** The same tree without depmod's output: kmm-worker must generate modules.dep itself. */
export const GUEST_SHARED_DIR_NO_DEPMOD = '/srv/shared-no-depmod';

export interface Lab {
  kmods: TestKmods;
  guest: Guest;
  registry: TestRegistry;
  /** the image as the guest names it: 10.0.2.100:5000/kmm/kmm-test-kmods:<kver> */
  guestImage: string;
  /** the image's repository as the guest names it (Day-1 takes the repo; the tag is the kernel release) */
  guestRepo: string;
  digest: string;
  workDir: string;
  /** seconds spent per setup step */
  timings: Record<string, number>;
  close(): Promise<void>;
}

export async function startLab(log: (line: string) => void = () => {}): Promise<Lab> {
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t0 = Date.now();
    const v = await f();
    timings[name] = (Date.now() - t0) / 1000;
    log(`${name}: ${timings[name].toFixed(1)} s`);
    return v;
  };
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmm-vm-'));
  let registry: TestRegistry | undefined;
  let guest: Guest | undefined;
  try {
    const kmods = await step('kernel + test modules', () => ensureTestKmods());
    const tree = path.join(workDir, 'image-tree');
    writeKmodTree(tree, kmods);
    const treeNoDepmod = path.join(workDir, 'image-tree-no-depmod');
    writeKmodTree(treeNoDepmod, kmods, { depmod: false });
    registry = await step('registry start', () => startRegistry());
    const reg = registry;
    const digest = await step('image build + push', async () => {
      const img = await buildLayout({ dir: path.join(workDir, 'layout'), tag: kmods.kver, layers: kmodTreeLayers(tree) });
      return pushImage(img, reg, `${IMAGE_REPO}:${kmods.kver}`);
    });
    const initrd = await step('initramfs', () => buildInitrd(kmods, workDir, {
      trees: { [GUEST_SHARED_DIR]: tree, [GUEST_SHARED_DIR_NO_DEPMOD]: treeNoDepmod },
    }));
    guest = await step('boot', () =>
      Guest.boot({
        vmlinux: kmods.kernel.vmlinux,
        initrd,
        workDir,
        forwards: [{ guestPort: GUEST_REGISTRY_PORT, hostPort: Number(reg.host.split(':')[1]) }],
        log,
      }),
    );
    const g = guest;
    const guestRepo = `${guestForwardHost(GUEST_REGISTRY_PORT)}/${IMAGE_REPO}`;
    return {
      kmods, guest: g, registry: reg, digest, workDir, timings, guestRepo,
      guestImage: `${guestRepo}:${kmods.kver}`,
      async close() {
        await g.poweroff().catch(() => g.kill());
        await reg.stop();
        if (!process.env.KMM_VM_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
        else log(`kept ${workDir}`);
      },
    };
  } catch (e) {
    guest?.kill();
    await registry?.stop();
    log(`setup failed; logs kept in ${workDir}`);
    throw e;
  }
}
