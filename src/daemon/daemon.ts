/**
 * `run` (docs/daemon.md): keep the node in the state the config file asks for until told to stop.
 *
 * The state and one reconcile pass live in ModuleReconciler (reconciler.ts); this file decides when passes run
 * (a config change seen by the directory watch, the periodic check, a failed pass's backoff) and serves health. On SIGTERM/SIGINT an in-flight load stops at its next step and the applied config is unloaded with a signal
 * that nothing aborts — a second signal cannot cut the unload short and leave firmware or modules half-removed.
 */
import type { Context } from '../context.js';
import { OperationError, UsageError, oneLine } from '../errors.js';
import { parseModuleConfig, readConfigText } from '../config/module-config.js';
import type { WireWorker } from '../worker/ports.js';
import { ModuleReconciler } from './reconciler.js';
import { startHealthServer, type HealthAddress } from './health.js';
import { watchConfigFile } from './config-watch.js';
import { beginStep } from '../stop-guard.js';

export interface DaemonOptions {
  configPath: string;
  firmwarePath: string | undefined;
  healthAddr: HealthAddress;
  /** how often the config file and the module's liveness are checked */
  checkIntervalMs: number;
  /** longest wait between retries of a failing pass */
  maxBackoffMs?: number;
}

/**
 * `wire` builds a load's or an unload's ports for a config and a stop signal: the command decides how (the
 * daemon's own loads must not report a failure that is only its shutdown).
 */
export async function runModuleDaemon(ctx: Context, o: DaemonOptions, wire: WireWorker): Promise<void> {
  const { log } = ctx;
  const stop = ctx.signal;
  const initialText = await readConfigText(o.configPath);
  const reconciler = new ModuleReconciler({
    configPath: o.configPath,
    firmwarePath: o.firmwarePath,
    checkIntervalMs: o.checkIntervalMs,
    maxBackoffMs: o.maxBackoffMs ?? 300_000,
    log,
    stop,
    wire,
    prefetch: (config) => import('../day1/prefetch.js').then(({ prefetchForModuleConfig }) => prefetchForModuleConfig(ctx, config)),
  }, parseModuleConfig(initialText, o.configPath));

  const health = await startHealthServer(o.healthAddr, {
    live: () => true,
    notReadyReason: () => reconciler.notReadyReason(),
  });
  log.info({ url: health.url, health: `${health.url}/healthz`, ready: `${health.url}/readyz` }, 'health endpoints listening');

  const watcher = watchConfigFile(o.configPath, initialText, (text) => {
    try {
      reconciler.want(parseModuleConfig(text, o.configPath));
      void reconciler.kick();
    } catch (err) {
      log.error(`config ${o.configPath} changed but is invalid, keeping the current module: ${oneLine(err)}`);
    }
  }, { log });

  const tick = setInterval(() => {
    void (async () => {
      await watcher.check();
      if (reconciler.due()) void reconciler.kick();
    })();
  }, o.checkIntervalMs);

  const stopped = new Promise<void>((resolve) => {
    if (stop.aborted) resolve();
    else stop.addEventListener('abort', () => resolve(), { once: true });
  });

  let startError: unknown;
  // From the stop signal to the end the daemon unloads: the CLI's forced exit (src/stop-guard.ts) waits for
  // it, so SIGTERM always leaves the node without the module, however long the load in progress takes.
  let endShutdown: (() => void) | undefined;
  if (stop.aborted) endShutdown = beginStep();
  else stop.addEventListener('abort', () => (endShutdown ??= beginStep()), { once: true });
  try {
    await reconciler.kick();
    if (reconciler.fatal && !stop.aborted) throw reconciler.fatal;
    if (!stop.aborted) log.info({ config: o.configPath }, 'running; SIGTERM or SIGINT unloads the module and exits');
    await stopped;
  } catch (err) {
    startError = err;
  } finally {
    endShutdown ??= beginStep();
    clearInterval(tick);
    watcher.close();
    await reconciler.settle();
  }
  try {
    // an invalid config found by the flow touched nothing (README.md "Exit codes"): nothing to undo then
    if (!(startError instanceof UsageError)) await reconciler.unloadAtShutdown();
  } catch (err) {
    throw err instanceof OperationError || err instanceof UsageError ? err : new OperationError(`unload at shutdown failed: ${oneLine(err)}`, { cause: err });
  } finally {
    await health.close();
    endShutdown?.();
  }
  if (startError) throw startError;
  log.info('stopped');
}
