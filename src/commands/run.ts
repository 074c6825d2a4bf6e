/** `kmm-worker run <config>` — the daemon of docs/daemon.md. */
import type { Context } from '../context.js';
import { speakTo } from '../messages.js';
import { UsageError, exitCodeOf, oneLine } from '../errors.js';
import { parseHealthAddr } from '../daemon/health.js';
import { runModuleDaemon } from '../daemon/daemon.js';
import { absoluteHostPath } from '../config/host-path.js';
import { readModuleConfig, type ModuleConfig } from '../config/module-config.js';
import { createWorkerDeps } from '../app/worker-deps.js';
import { loadModule } from '../worker/load.js';
import type { RunFlags } from './run-command.js';

export async function runDaemon(ctx: Context, configPath: string, flags: RunFlags): Promise<number> {
  speakTo('module-config');
  const firmwarePath = absoluteHostPath('--firmware-path', flags.firmwarePath);
  const healthAddr = parseHealthAddr(flags.healthAddr);
  const seconds = Number(flags.checkInterval);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`--check-interval must be a positive number of seconds, got '${flags.checkInterval}'`);
  }
  if (ctx.opts.dryRun) {
    // nothing is loaded in a dry run, so there is nothing to keep running: print the load plan once
    const config = await readModuleConfig(configPath);
    await loadModule(await createWorkerDeps(ctx, config), config, { firmwarePath });
    ctx.log.info('dry run: the daemon would now serve health endpoints and follow the config file');
    return 0;
  }
  try {
    // a load cut short by the shutdown is not a failure worth a Warning on the Node
    const wire = (config: ModuleConfig, choices: { signal?: AbortSignal }) =>
      createWorkerDeps(ctx, config, { ...choices, quietFailuresAfter: ctx.signal });
    await runModuleDaemon(ctx, { configPath, firmwarePath, healthAddr, checkIntervalMs: Math.round(seconds * 1000) }, wire);
  } catch (err) {
    // docs/daemon.md: SIGTERM/SIGINT is how the daemon is meant to stop, so its code is the unload's outcome, not 143/130
    if (!ctx.signal.aborted) throw err;
    ctx.log.error({ exitCode: exitCodeOf(err) }, oneLine(err));
    return exitCodeOf(err);
  }
  return 0;
}
