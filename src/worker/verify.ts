/** docs/kmod.md, load step 7: what is live in the kernel must be what the image shipped. */
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { normaliseModuleName } from '../kmod/names.js';
import type { WorkerDeps } from './ports.js';
import type { PreparedKmods } from './kmods.js';
import { modulesOfConfig } from './modprobe-argv.js';

export async function verifyLoaded(deps: WorkerDeps, config: ModuleConfig, kmods: PreparedKmods): Promise<void> {
  // rawArgs may load from anywhere: only liveness can be checked then
  const checkSource = !config.modprobe.rawArgs;
  for (const name of modulesOfConfig(config)) {
    const ko = checkSource ? kmods.koPaths.get(normaliseModuleName(name)) : undefined;
    const expected = ko ? await deps.modinfo.srcversion(ko) : undefined;
    if (deps.plan.dryRun) {
      deps.plan.print(`verify ${deps.host.path(`/sys/module/${normaliseModuleName(name)}`)} is live${expected ? ` with srcversion ${expected}` : ''}`);
      continue;
    }
    const s = await deps.host.moduleState(name);
    if (s.kind === 'absent') throw new OperationError(`module ${name} is not in the kernel after modprobe`);
    if (s.kind === 'builtin') throw new OperationError(`module ${name} is built into the kernel, not loaded from the image`);
    if (s.initstate !== 'live') throw new OperationError(`module ${name} is in state '${s.initstate}', not live, after modprobe`);
    if (expected && s.srcversion !== expected) {
      throw new OperationError(
        `module ${name} is live but is not the image's (srcversion ${s.srcversion ?? 'none'}, the image's ${expected}): ` +
          `the host's own ${name} was already loaded; add it to inTreeModulesToRemove`,
      );
    }
    deps.log.info({ module: name, srcversion: s.srcversion }, `module ${name} is live`);
  }
}

/** Cheap check for the daemon: every module of the config is live in /sys/module. */
export async function isModuleLive(deps: WorkerDeps, config: ModuleConfig): Promise<boolean> {
  const names = modulesOfConfig(config);
  if (names.length === 0) return true;
  for (const n of names) if (!(await deps.host.isLive(n))) return false;
  return true;
}
