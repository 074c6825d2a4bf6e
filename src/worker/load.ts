/** docs/kmod.md, "What load does": load a module — each step one call, in the contract's order. */
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { kernelMatches } from '../kmod/names.js';
import type { WorkerDeps } from './ports.js';
import { identityString } from '../config/identity.js';
import { prepareKmods, type PreparedKmods } from './kmods.js';
import { removeInTreeModules } from './in-tree.js';
import { checkKmodsFitKernel } from './kmod-checks.js';
import { copyImageFirmware, setFirmwareClassPath } from './firmware-steps.js';
import { loadArgvs } from './modprobe-argv.js';
import { verifyLoaded } from './verify.js';
import { withReportedOutcome } from './outcome.js';
import { stageModprobeConfig, type StagedModprobeConfig } from './modprobe-conf.js';

export { isModuleLive } from './verify.js';

export interface LoadOptions {
  /** host firmware dir (`--firmware-path`); also the value for firmware_class.path unless that is given */
  firmwarePath?: string | undefined;
  /** the value for firmware_class.path: undefined → firmwarePath; null → never write it */
  firmwareClassPath?: string | null | undefined;
}

/** What firmware_class.path should hold after the load; undefined leaves it alone. */
function classPathValue(opts: LoadOptions): string | undefined {
  return opts.firmwareClassPath === undefined ? opts.firmwarePath : (opts.firmwareClassPath ?? undefined);
}

/**
 * A SIGINT/SIGTERM stops the flow between steps, never inside one: a modprobe or a firmware copy that has
 * started finishes, so the node is never left with half a step done.
 */
export function stopIfInterrupted(deps: WorkerDeps): void {
  deps.signal?.throwIfAborted();
}

/** Fails before anything is touched when the running kernel is not the config's (a trailing `+` aside). */
export async function checkKernel(deps: WorkerDeps, config: ModuleConfig): Promise<string> {
  const running = await deps.host.runningKernel();
  if (!kernelMatches(running, config.kernelVersion)) {
    throw new OperationError(`kernelVersion ${config.kernelVersion} does not match the running kernel ${running}`);
  }
  return running;
}

/** docs/kmod.md, load step 3: the first kmods source that has them, prepared for modprobe (see prepareKmods). */
export function findKmods(deps: WorkerDeps, config: ModuleConfig, runningKernel: string): Promise<PreparedKmods> {
  return prepareKmods({
    sources: deps.sources,
    config,
    runningKernel,
    depmod: deps.depmod,
    log: deps.log,
    ...(deps.signal ? { signal: deps.signal } : {}),
  }).then((kmods) => {
    if (kmods.scratch) {
      deps.plan.print(`# modprobe uses a scratch copy of the kmods, ${kmods.scratch} (missing modules.dep generated there; removed when done)`);
    }
    return kmods;
  });
}

/** The image's modprobe.d files (modprobe.modprobedDir) staged for every modprobe call; see modprobe-conf.ts. */
export async function stageModprobeFiles(deps: WorkerDeps, config: ModuleConfig, kmods: PreparedKmods): Promise<StagedModprobeConfig> {
  const staged = await stageModprobeConfig(deps.modprobe, config, kmods.imageRoot);
  if (staged.dir) {
    deps.log.info({ modprobedDir: config.modprobe.modprobedDir, staged: staged.dir }, `modprobe also reads the image's ${config.modprobe.modprobedDir}`);
    deps.plan.print(`# modprobe also reads the image's ${config.modprobe.modprobedDir}, staged in ${staged.dir} (removed when done)`);
  }
  return staged;
}

export async function loadModule(deps: WorkerDeps, config: ModuleConfig, opts: LoadOptions = {}): Promise<void> {
  await withReportedOutcome(deps, 'load', async () => {
    deps.plan.print(`# dry run: load ${identityString(deps.identity)} for kernel ${config.kernelVersion}`);
    const running = await checkKernel(deps, config);
    const kmods = await findKmods(deps, config, running);
    let staged: StagedModprobeConfig | undefined;
    try {
      deps.plan.print(`# kmods from ${kmods.origin}`);
      await checkKmodsFitKernel(deps, config, kmods);
      staged = await stageModprobeFiles(deps, config, kmods);
      const withConf: WorkerDeps = { ...deps, modprobe: staged.modprobe };
      stopIfInterrupted(deps);
      await removeInTreeModules(withConf, config.inTreeModulesToRemove, 'inTreeModulesToRemove');
      stopIfInterrupted(deps);
      await copyImageFirmware(deps, config, kmods, opts.firmwarePath);
      await setFirmwareClassPath(deps, config, classPathValue(opts));
      for (const argv of loadArgvs(config, kmods.modulesRoot)) {
        stopIfInterrupted(deps);
        await withConf.modprobe.run(argv);
      }
      await verifyLoaded(deps, config, kmods);
    } finally {
      await staged?.release();
      await kmods.release();
    }
  });
}
