/** docs/kmod.md, load step 5 and unload step 4 as flow steps: the image's firmware onto the node, firmware_class.path, and back off. */
import { join } from 'node:path';
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { DEFAULT_FIRMWARE_DIR, FIRMWARE_CLASS_PATH } from '../host/host.js';
import { installFirmware, removeFirmware, type FirmwareOwner } from '../host/firmware.js';
import type { WorkerDeps } from './ports.js';
import type { KmodsLocation } from './kmods-source.js';
import { modulesOfConfig } from './modprobe-argv.js';

const owner = (deps: WorkerDeps, config: ModuleConfig): FirmwareOwner => ({
  namespace: deps.identity.namespace,
  name: deps.identity.name,
  modules: modulesOfConfig(config),
});

/** The host firmware dir as the node knows it (also the value of firmware_class.path). */
export const hostFirmwareDir = (firmwarePath: string | undefined) => firmwarePath ?? DEFAULT_FIRMWARE_DIR;

export async function copyImageFirmware(
  deps: WorkerDeps,
  config: ModuleConfig,
  kmods: KmodsLocation,
  firmwarePath: string | undefined,
): Promise<void> {
  const inImage = config.modprobe.firmwarePath;
  if (!inImage) return;
  await installFirmware({
    srcDir: join(kmods.imageRoot, inImage),
    firmwareDir: deps.host.path(hostFirmwareDir(firmwarePath)),
    owner: owner(deps, config),
    changes: deps.changes,
    log: deps.log,
  });
}

/**
 * Points the kernel at the host firmware dir when a value was given (`--firmware-path`) and the config has
 * firmware (as the KMM operator passes the flag only then), and only when the parameter holds another value.
 */
export async function setFirmwareClassPath(deps: WorkerDeps, config: ModuleConfig, firmwarePath: string | undefined): Promise<void> {
  if (!firmwarePath || !config.modprobe.firmwarePath) return;
  const current = await deps.host.firmwareClassPath();
  const file = deps.host.path(FIRMWARE_CLASS_PATH);
  if (current === undefined) {
    throw new OperationError(`cannot set firmware_class.path: ${file} does not exist (is /sys mounted from the host?)`);
  }
  if (current === firmwarePath) {
    deps.log.info({ path: firmwarePath }, 'firmware_class.path already points at the firmware dir');
    return;
  }
  await deps.changes.writeParameter(file, firmwarePath);
  deps.log.info({ from: current, to: firmwarePath }, 'set firmware_class.path');
}

export async function removeModuleFirmware(deps: WorkerDeps, config: ModuleConfig, firmwarePath: string | undefined): Promise<void> {
  await removeFirmware({
    firmwareDir: deps.host.path(hostFirmwareDir(firmwarePath)),
    owner: owner(deps, config),
    changes: deps.changes,
    log: deps.log,
    isLoaded: (m) => deps.host.isLive(m),
  });
}
