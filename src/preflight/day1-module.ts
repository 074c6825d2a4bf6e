/**
 * `preflight --day1-image REPO --day1-module NAME`: the Day-1 image of the upcoming kernel, checked like a
 * Module. Day-1 nodes name their image `REPO:<kernel release>` (docs/day1.md) and prefetch it for a newly
 * installed kernel before they reboot into it, so the image must be in the registry before the upgrade rolls:
 * when it is not, the reason says which tag to push and what a node does without it.
 */
import { MODULE_NAME } from '../config/module-config.js';
import { UsageError } from '../errors.js';
import { checkImageRepository } from '../config/day1-image-ref.js';
import { DEFAULT_DIR_NAME } from '../config/defaults.js';
import type { ModuleResource } from './module-cr.js';

export interface Day1Preflight {
  repo: string;
  moduleName: string;
  /** the image directory holding lib/modules/<kver>; `/opt` as for `day1` */
  dirName?: string | undefined;
}

/** A Module-shaped entry for the report: its image is `REPO:<kernel>`, its name the module's. */
export function day1ModuleResource(d: Day1Preflight): ModuleResource {
  checkImageRepository(d.repo, '--day1-image');
  if (!MODULE_NAME.test(d.moduleName)) throw new UsageError(`--day1-module must be a kernel module name, got '${d.moduleName}'`);
  const dirName = d.dirName ?? DEFAULT_DIR_NAME;
  if (!dirName.startsWith('/') || dirName.split('/').includes('..')) {
    throw new UsageError(`--day1-dir-name must be an absolute path inside the image, got '${dirName}'`);
  }
  return {
    name: d.moduleName,
    namespace: 'day1',
    origin: '--day1-image',
    deleting: false,
    spec: {
      moduleLoader: {
        container: {
          modprobe: { moduleName: d.moduleName, dirName },
          kernelMappings: [{ regexp: '^.+$', containerImage: `${d.repo}:\${KERNEL_FULL_VERSION}` }],
        },
      },
    },
    imageMissingAdvice: (image, kernel) =>
      `push ${image} before nodes boot kernel ${kernel}: Day-1 nodes prefetch it while still on their current kernel and load it before the network on the first boot; without it they boot ${kernel} without the module and reboot once more when it appears`,
  };
}
