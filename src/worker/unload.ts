/** docs/kmod.md, "What unload does": unload a module — idempotent; in-tree modules are not reloaded. */
import type { ModuleConfig } from '../config/module-config.js';
import type { WorkerDeps } from './ports.js';
import { identityString } from '../config/identity.js';
import { inUseError } from './in-tree.js';
import { removeModuleFirmware } from './firmware-steps.js';
import { modulesOfConfig, unloadArgv } from './modprobe-argv.js';
import { checkKernel, findKmods, stageModprobeFiles, stopIfInterrupted, type LoadOptions } from './load.js';
import type { StagedModprobeConfig } from './modprobe-conf.js';
import { withReportedOutcome } from './outcome.js';

export type UnloadOptions = LoadOptions;

export async function unloadModule(deps: WorkerDeps, config: ModuleConfig, opts: UnloadOptions = {}): Promise<void> {
  await withReportedOutcome(deps, 'unload', async () => {
    deps.plan.print(`# dry run: unload ${identityString(deps.identity)} for kernel ${config.kernelVersion}`);
    if (await noneLoaded(deps, config)) {
      // nothing in the kernel: no kmods needed (no pull, no kernel check — the node may have rebooted into
      // another kernel); only the firmware this module left behind is cleaned up
      await removeModuleFirmware(deps, config, opts.firmwarePath);
      return;
    }
    const running = await checkKernel(deps, config);
    const kmods = await findKmods(deps, config, running);
    let staged: StagedModprobeConfig | undefined;
    try {
      deps.plan.print(`# kmods from ${kmods.origin}`);
      staged = await stageModprobeFiles(deps, config, kmods);
      stopIfInterrupted(deps);
      await runModprobeUnload({ ...deps, modprobe: staged.modprobe }, config, kmods.modulesRoot);
      await removeModuleFirmware(deps, config, opts.firmwarePath);
    } finally {
      await staged?.release();
      await kmods.release();
    }
  });
}

/** True when none of the config's modules is loaded (logged; noted in a dry-run plan). */
async function noneLoaded(deps: WorkerDeps, config: ModuleConfig): Promise<boolean> {
  const names = modulesOfConfig(config);
  if (names.length === 0) return false;
  const states = await Promise.all(names.map((n) => deps.host.moduleState(n)));
  if (states.some((s) => s.kind === 'loaded')) return false;
  deps.log.info({ modules: names }, `${names.join(', ')} not loaded; nothing to unload`);
  deps.plan.print(`# ${names.join(', ')} not loaded: no modprobe -r`);
  return true;
}

/** In use: a failure naming the holders. */
async function runModprobeUnload(deps: WorkerDeps, config: ModuleConfig, modulesRoot: string): Promise<void> {
  const names = modulesOfConfig(config);
  const first = names[0] && (await inUseError(deps, names[0]));
  if (first) throw first;
  try {
    await deps.modprobe.run(unloadArgv(config, modulesRoot));
  } catch (err) {
    for (const n of names) {
      const inUse = await inUseError(deps, n);
      if (inUse) throw inUse;
    }
    throw err;
  }
}
