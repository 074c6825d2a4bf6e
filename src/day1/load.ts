/**
 * `day1 load` (docs/day1.md): before the network, from the local store only. The image is `<repo>:<running kernel>`;
 * absent from the store is not a failure (the pull service fetches it and reboots), while any failure of a real
 * load is (the unit fails, visible in `systemctl`). No step here can reach the network: the only kmods source is the
 * store lookup, the pull policy is Never, and Events are not reported.
 */
import { join } from 'node:path';
import type { Context } from '../context.js';
import { parseModuleConfig, type ModuleConfig } from '../config/module-config.js';
import type { KmodsSource } from '../worker/kmods-source.js';
import type { WireWorker } from '../worker/ports.js';
import { loadModule } from '../worker/load.js';
import type { Host } from '../host/host.js';
import { day1ImageReference } from '../config/day1-image-ref.js';
import { hostFirmwareDir, type Day1Settings } from './settings.js';
import { storeSelection, type Day1Store } from './store.js';
import { PULL_UNIT } from './units.js';

/** The ModuleConfig a Day-1 load stands for, built from the flags (validated by the same parser as a config file). */
export function day1ModuleConfig(settings: Day1Settings, kernelVersion: string): ModuleConfig {
  const doc = {
    kernelVersion,
    containerImage: day1ImageReference(settings.repo, kernelVersion),
    imagePullPolicy: 'Never',
    inTreeModulesToRemove: settings.inTreeModules,
    modprobe: {
      moduleName: settings.moduleName,
      dirName: settings.dirName,
      ...(settings.firmwareDir ? { firmwarePath: settings.firmwareDir } : {}),
    },
  };
  return parseModuleConfig(JSON.stringify(doc), 'day1 flags');
}

/** The store as the one kmods source: a stored entry or nothing, never a pull. */
export function storedKmodsSource(store: Day1Store, settings: Day1Settings): KmodsSource {
  return {
    name: 'day1-store',
    async locate(config) {
      const stored = await store.lookup(config.containerImage, storeSelection(settings, config.kernelVersion));
      if (!stored) return undefined;
      return {
        modulesRoot: join(stored.root, config.modprobe.dirName),
        imageRoot: stored.root,
        origin: `${config.containerImage}@${stored.digest} from the store ${store.dir}`,
      };
    },
  };
}

/** Built by the command's wiring (app/day1-deps.ts). */
export interface Day1LoadPorts {
  /** the node: its running kernel names the image */
  host: Pick<Host, 'runningKernel'>;
  store: Day1Store;
  /** must build a load that reports nothing (before the network an Event could only wait for a timeout) */
  wire: WireWorker;
}

export async function runDay1Load(ctx: Context, settings: Day1Settings, ports: Day1LoadPorts): Promise<void> {
  const { store, wire } = ports;
  const kernel = await ports.host.runningKernel();
  const config = day1ModuleConfig(settings, kernel);
  const ref = config.containerImage;
  const stored = await store.lookup(ref, storeSelection(settings, kernel));
  if (!stored) {
    ctx.log.info(
      { image: ref, store: store.dir },
      `${ref} is not in the store ${store.dir}: nothing to load yet; ${PULL_UNIT} will fetch it once the network is up (and reboot)`,
    );
    return;
  }
  ctx.log.info({ image: ref, digest: stored.digest }, `loading ${settings.moduleName} from the stored image ${ref}@${stored.digest}`);
  // the store is the one kmods source: a stored entry or nothing, never a pull
  const deps = await wire(config, { sources: [storedKmodsSource(store, settings)] });
  await loadModule(deps, config, { firmwarePath: hostFirmwareDir(settings) });
}
