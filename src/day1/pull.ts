/**
 * `day1 pull` (docs/day1.md): after the network is up, make sure the store holds `<repo>:<running kernel>` and that
 * it can serve that kernel; reboot (once) only when this run stored something new, so the load service picks it up
 * early in the next boot. A failed pull never reboots.
 */
import type { Context } from '../context.js';
import { OperationError } from '../errors.js';
import type { Host } from '../host/host.js';
import { day1ImageReference } from '../config/day1-image-ref.js';
import { findModuleKo, kernelModulesDir } from '../kmod/find-ko.js';
import { prefetchOtherKernels } from './prefetch.js';
import type { RpmOstreeStatus } from './installed-kernels.js';
import type { Day1Settings } from './settings.js';
import { storeSelection, type Day1Store, type Day1Image } from './store.js';

/** Built by the command's wiring (app/day1-deps.ts). */
export interface Day1PullPorts {
  /** the node: its running kernel names the image */
  host: Pick<Host, 'runningKernel'>;
  store: Day1Store;
  reboot(argv: string[]): Promise<void>;
  /** `rpm-ostree status --json` (default: the host's rpm-ostree, when installed) */
  rpmOstreeStatus?: RpmOstreeStatus;
}

/** The stored image must carry the module for this kernel, or the next boot's load could only fail. */
async function checkServesKernel(image: Day1Image, ref: string, settings: Day1Settings, kernel: string): Promise<string> {
  const dir = kernelModulesDir(image.root, settings.dirName, kernel);
  const ko = await findModuleKo(dir, settings.moduleName);
  if (!ko) {
    throw new OperationError(
      `image ${ref}@${image.digest} has no ${settings.moduleName}.ko under ${settings.dirName}/lib/modules/${kernel}: it cannot be loaded on this kernel`,
    );
  }
  return ko;
}

export async function runDay1Pull(ctx: Context, settings: Day1Settings, ports: Day1PullPorts): Promise<void> {
  const { store, reboot } = ports;
  const kernel = await ports.host.runningKernel();
  const ref = day1ImageReference(settings.repo, kernel);
  const selection = storeSelection(settings, kernel);

  // the next kernels' images, after the running kernel's and before any reboot; never a failure or a reboot
  const prefetch = () => prefetchOtherKernels(ctx, settings, store, { running: kernel, rpmOstreeStatus: ports.rpmOstreeStatus });

  const present = await store.lookup(ref, selection);
  if (present) {
    await checkServesKernel(present, ref, settings, kernel);
    ctx.log.info({ image: ref, digest: present.digest }, `${ref} is already in the store ${store.dir}; no reboot needed`);
    await prefetch();
    return;
  }
  if (ctx.opts.dryRun) {
    ctx.stdout.write(`# dry run: would pull ${ref} into ${store.dir}, then run: ${settings.rebootCommand.join(' ')}\n`);
    await prefetch();
    return;
  }

  const pulled = await store.pull(ref, selection);
  const ko = await checkServesKernel(pulled, ref, settings, kernel);
  if (pulled.fromCache) {
    // another pull stored it between our lookup and our pull: nothing new from this run
    ctx.log.info({ image: ref, digest: pulled.digest }, `${ref} was stored meanwhile by another pull; no reboot needed`);
    await prefetch();
    return;
  }
  ctx.log.info({ image: ref, digest: pulled.digest, module: ko }, `stored ${ref}@${pulled.digest} for kernel ${kernel}`);
  await prefetch();
  await reboot(settings.rebootCommand);
}
