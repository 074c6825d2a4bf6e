/**
 * `run` (docs/daemon.md): keep the node in the state the config file asks for until told to stop.
 *
 * A reconcile loop, one pass at a time: the WANTED config (last valid content of the file) against the
 * APPLIED one (what this process loaded, or began loading). A pass unloads the applied config when the wanted
 * one differs, and loads the wanted one when nothing is applied or its modules are no longer live in the
 * kernel. Passes are triggered by a config change (directory watch), the periodic check, and a failed pass's
 * backoff. On SIGTERM/SIGINT an in-flight load stops at its next step and the applied config is unloaded with a signal
 * that nothing aborts — a second signal cannot cut the unload short and leave firmware or modules half-removed.
 */
import type { Context } from '../context.js';
import { OperationError, UsageError, oneLine } from '../errors.js';
import { parseModuleConfig, readConfigText, type ModuleConfig } from '../config/module-config.js';
import type { WireWorker, WorkerDeps } from '../worker/ports.js';
import { isModuleLive, loadModule } from '../worker/load.js';
import { unloadModule } from '../worker/unload.js';
import { identityString } from '../config/identity.js';
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

interface Applied {
  config: ModuleConfig;
  key: string;
  /** for loading and liveness checks: interrupted by the stop signal */
  deps: WorkerDeps;
}

const keyOf = (c: ModuleConfig) => JSON.stringify(c);

/**
 * `wire` builds a load's or an unload's ports for a config and a stop signal: the command decides how (the
 * daemon's own loads must not report a failure that is only its shutdown).
 */
export async function runModuleDaemon(ctx: Context, o: DaemonOptions, wire: WireWorker): Promise<void> {
  const { log } = ctx;
  const stop = ctx.signal;
  const maxBackoffMs = o.maxBackoffMs ?? 300_000;
  // the unload at shutdown must run to its end whatever signals arrive
  const uninterruptible = new AbortController().signal;

  const initialText = await readConfigText(o.configPath);
  let wanted = parseModuleConfig(initialText, o.configPath);
  let wantedKey = keyOf(wanted);
  let applied: Applied | undefined;
  let live = false;
  let lastError: string | null = null;
  let blockedKey: string | undefined; // a config the flow rejected as invalid: not retried until it changes
  let failures = 0;
  let nextRetryAt = 0;
  let stopping = false;
  let prefetching: Promise<unknown> = Promise.resolve();
  let prefetchedKey: string | undefined;

  const depsFor = (config: ModuleConfig, signal: AbortSignal): Promise<WorkerDeps> => wire(config, { signal });

  async function unloadApplied(signal: AbortSignal): Promise<void> {
    const a = applied!;
    const deps = await depsFor(a.config, signal);
    await unloadModule(deps, a.config, { firmwarePath: o.firmwarePath });
    applied = undefined;
    live = false;
  }

  /** One pass of the loop. */
  async function reconcile(): Promise<void> {
    if (applied && applied.key !== wantedKey) {
      log.info({ from: identityString(applied.deps.identity) }, 'config changed: unloading the previous module');
      await unloadApplied(uninterruptible);
    }
    if (stop.aborted || blockedKey === wantedKey) return;
    if (applied) {
      live = await isModuleLive(applied.deps, applied.config);
      if (live) return;
      log.warn({ module: identityString(applied.deps.identity) }, 'module is no longer live in the kernel; loading it again');
    }
    const config = wanted;
    const deps = applied?.key === wantedKey ? applied.deps : await depsFor(config, stop);
    // from here the host may be touched: a shutdown unloads this config whatever happens next
    applied = { config, key: keyOf(config), deps };
    live = false;
    await loadModule(deps, config, { firmwarePath: o.firmwarePath });
    live = true;
    if (prefetchedKey !== wantedKey) {
      // images for the node's other installed kernels (docs/day1.md); warnings only, never a failed pass
      prefetchedKey = wantedKey;
      prefetching = import('../day1/prefetch.js')
        .then(({ prefetchForModuleConfig }) => prefetchForModuleConfig(ctx, config))
        .catch((err: unknown) => log.warn(`prefetch for the other installed kernels failed: ${oneLine(err)}`));
    }
  }

  let running: Promise<void> | undefined;
  let again = false;
  let fatal: unknown;
  function kick(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await reconcile();
          failures = 0;
          lastError = null;
        } catch (err) {
          if (stop.aborted) break;
          lastError = oneLine(err);
          if (err instanceof UsageError) {
            blockedKey = wantedKey;
            if (!applied || applied.key === wantedKey) fatal ??= err;
            log.error(`config ${o.configPath} cannot be applied: ${lastError}; waiting for it to change`);
            break;
          }
          failures++;
          const wait = Math.min(o.checkIntervalMs * 2 ** (failures - 1), maxBackoffMs);
          nextRetryAt = Date.now() + wait;
          log.error({ retryInMs: wait, failures }, lastError);
        }
      } while (again && !stop.aborted);
      running = undefined;
    })();
    return running;
  }

  const health = await startHealthServer(o.healthAddr, {
    live: () => true,
    notReadyReason: () => {
      if (stopping) return 'stopping';
      if (lastError) return `last attempt failed: ${lastError}`;
      if (!applied) return 'loading';
      if (applied.key !== wantedKey) return 'config changed; reloading';
      return live ? null : 'module not live (loading)';
    },
  });
  log.info({ url: health.url, health: `${health.url}/healthz`, ready: `${health.url}/readyz` }, 'health endpoints listening');

  const watcher = watchConfigFile(o.configPath, initialText, (text) => {
    try {
      const next = parseModuleConfig(text, o.configPath);
      wanted = next;
      wantedKey = keyOf(next);
      blockedKey = undefined;
      failures = 0;
      void kick();
    } catch (err) {
      log.error(`config ${o.configPath} changed but is invalid, keeping the current module: ${oneLine(err)}`);
    }
  }, { log });

  const tick = setInterval(() => {
    void (async () => {
      await watcher.check();
      if (!running && !stop.aborted && Date.now() >= nextRetryAt) void kick();
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
    await kick();
    if (fatal && !stop.aborted) throw fatal;
    if (!stop.aborted) log.info({ config: o.configPath }, 'running; SIGTERM or SIGINT unloads the module and exits');
    await stopped;
  } catch (err) {
    startError = err;
  } finally {
    endShutdown ??= beginStep();
    stopping = true;
    clearInterval(tick);
    watcher.close();
    await running;
    await prefetching;
  }
  try {
    // an invalid config found by the flow touched nothing (§3): nothing to undo then
    if (applied && !(startError instanceof UsageError)) {
      log.info({ module: identityString(applied.deps.identity) }, 'stopping: unloading the module');
      await unloadApplied(uninterruptible);
    }
  } catch (err) {
    throw err instanceof OperationError || err instanceof UsageError ? err : new OperationError(`unload at shutdown failed: ${oneLine(err)}`, { cause: err });
  } finally {
    await health.close();
    endShutdown?.();
  }
  if (startError) throw startError;
  log.info('stopped');
}
