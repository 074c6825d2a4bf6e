/** `kmm-worker kmod load|unload <config> [--firmware-path DIR]` — the upstream KMM worker's command line. */
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { absoluteHostPath } from '../config/host-path.js';
import { readModuleConfig } from '../config/module-config.js';
import { createWorkerDeps } from '../app/worker-deps.js';
import { loadModule, type LoadOptions } from '../worker/load.js';
import { unloadModule } from '../worker/unload.js';
import { speakTo } from '../messages.js';
import type { KmodFlags } from './kmod-command.js';

/**
 * `--firmware-path DIR` means both the firmware dir and the firmware_class.path value (README.md "Global options"); the
 * upstream worker's `--set-firmware-mount-path` / `--set-firmware-class-path` set each one alone.
 */
function firmwareOptions(flags: KmodFlags): LoadOptions {
  const both = absoluteHostPath('--firmware-path', flags.firmwarePath);
  const mount = absoluteHostPath('--set-firmware-mount-path', flags.setFirmwareMountPath);
  const classPath = absoluteHostPath('--set-firmware-class-path', flags.setFirmwareClassPath);
  if (both && (mount || classPath)) {
    throw new UsageError('--firmware-path cannot be combined with --set-firmware-mount-path or --set-firmware-class-path');
  }
  if (both) return { firmwarePath: both };
  return { firmwarePath: mount, firmwareClassPath: classPath ?? null };
}

export async function kmodLoad(ctx: Context, configPath: string, flags: KmodFlags): Promise<void> {
  speakTo('module-config');
  const firmware = firmwareOptions(flags);
  const config = await readModuleConfig(configPath);
  const deps = await createWorkerDeps(ctx, config);
  await loadModule(deps, config, firmware);
}

export async function kmodUnload(ctx: Context, configPath: string, flags: KmodFlags): Promise<void> {
  speakTo('module-config');
  const firmware = firmwareOptions(flags);
  const config = await readModuleConfig(configPath);
  const deps = await createWorkerDeps(ctx, config);
  await unloadModule(deps, config, firmware);
}
