/** `kmm-worker kmod load|unload <config> [--firmware-path DIR]` — the upstream KMM worker's command line. */
import { isAbsolute } from 'node:path';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { readModuleConfig } from '../config/module-config.js';
import { createWorkerDeps } from '../worker/deps.js';
import { loadModule } from '../worker/load.js';
import { unloadModule } from '../worker/unload.js';

export interface KmodFlags {
  firmwarePath?: string;
}

function firmwarePathFlag(flags: KmodFlags): string | undefined {
  const p = flags.firmwarePath;
  if (p === undefined || p === '') return undefined;
  if (!isAbsolute(p)) throw new UsageError(`--firmware-path must be an absolute host path, got '${p}'`);
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

export async function kmodLoad(ctx: Context, configPath: string, flags: KmodFlags): Promise<void> {
  const firmwarePath = firmwarePathFlag(flags);
  const config = await readModuleConfig(configPath);
  const deps = await createWorkerDeps(ctx, config);
  await loadModule(deps, config, { firmwarePath });
}

export async function kmodUnload(ctx: Context, configPath: string, flags: KmodFlags): Promise<void> {
  const firmwarePath = firmwarePathFlag(flags);
  const config = await readModuleConfig(configPath);
  const deps = await createWorkerDeps(ctx, config);
  await unloadModule(deps, config, { firmwarePath });
}
