/**
 * The state of `run` as one object: the WANTED config (last valid content of the file) against the APPLIED one
 * (what this process loaded, or began loading). `pass()` is one reconcile pass: it unloads the applied config
 * when the wanted one differs, and loads the wanted one when nothing is applied or its modules are no longer
 * live in the kernel. `kick()` runs passes one at a time (a kick during a pass asks for one more), records a
 * failed pass for the readiness probe and schedules its backoff. The daemon (daemon.ts) only decides WHEN to
 * kick: a config change, the periodic check, a due retry.
 */
import type { Logger } from '../log.js';
import { UsageError, oneLine } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { identityString } from '../config/identity.js';
import type { WireWorker, WorkerDeps } from '../worker/ports.js';
import { isModuleLive, loadModule } from '../worker/load.js';
import { unloadModule } from '../worker/unload.js';

interface Applied {
  config: ModuleConfig;
  key: string;
  /** for loading and liveness checks: interrupted by the stop signal */
  deps: WorkerDeps;
}

export interface ReconcilerOptions {
  configPath: string;
  firmwarePath: string | undefined;
  checkIntervalMs: number;
  maxBackoffMs: number;
  log: Logger;
  /** SIGTERM/SIGINT: stops a load between steps, and ends the passes */
  stop: AbortSignal;
  wire: WireWorker;
  /** after a config is first loaded: images for the node's other kernels (warnings only) */
  prefetch(config: ModuleConfig): Promise<unknown>;
}

const keyOf = (c: ModuleConfig) => JSON.stringify(c);

export class ModuleReconciler {
  private wanted: ModuleConfig;
  private wantedKey: string;
  private applied: Applied | undefined;
  private live = false;
  private lastError: string | null = null;
  /** a config the flow rejected as invalid: not retried until it changes */
  private blockedKey: string | undefined;
  private failures = 0;
  private nextRetryAt = 0;
  private stopping = false;
  private prefetchedKey: string | undefined;
  private prefetching: Promise<unknown> = Promise.resolve();
  private running: Promise<void> | undefined;
  private again = false;
  /** an invalid config found by the first load: the daemon cannot start */
  fatal: unknown;
  /** the unload at shutdown must run to its end whatever signals arrive */
  private readonly uninterruptible = new AbortController().signal;

  constructor(private readonly o: ReconcilerOptions, initial: ModuleConfig) {
    this.wanted = initial;
    this.wantedKey = keyOf(initial);
  }

  /** A new valid content of the config file: the next pass applies it. */
  want(config: ModuleConfig): void {
    this.wanted = config;
    this.wantedKey = keyOf(config);
    this.blockedKey = undefined;
    this.failures = 0;
  }

  /** One pass of the loop. */
  async pass(): Promise<void> {
    const { log, stop } = this.o;
    if (this.applied && this.applied.key !== this.wantedKey) {
      log.info({ from: identityString(this.applied.deps.identity) }, 'config changed: unloading the previous module');
      await this.unloadApplied();
    }
    if (stop.aborted || this.blockedKey === this.wantedKey) return;
    if (this.applied) {
      this.live = await isModuleLive(this.applied.deps, this.applied.config);
      if (this.live) return;
      log.warn({ module: identityString(this.applied.deps.identity) }, 'module is no longer live in the kernel; loading it again');
    }
    const config = this.wanted;
    const deps = this.applied?.key === this.wantedKey ? this.applied.deps : await this.o.wire(config, { signal: stop });
    // from here the host may be touched: a shutdown unloads this config whatever happens next
    this.applied = { config, key: keyOf(config), deps };
    this.live = false;
    await loadModule(deps, config, { firmwarePath: this.o.firmwarePath });
    this.live = true;
    if (this.prefetchedKey !== this.wantedKey) {
      // images for the node's other installed kernels (docs/day1.md); warnings only, never a failed pass
      this.prefetchedKey = this.wantedKey;
      this.prefetching = this.o.prefetch(config)
        .catch((err: unknown) => log.warn(`prefetch for the other installed kernels failed: ${oneLine(err)}`));
    }
  }

  /** Runs passes until none is asked for; a failed pass is logged and retried later with backoff. */
  kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      const { log, stop } = this.o;
      do {
        this.again = false;
        try {
          await this.pass();
          this.failures = 0;
          this.lastError = null;
        } catch (err) {
          if (stop.aborted) break;
          this.lastError = oneLine(err);
          if (err instanceof UsageError) {
            this.blockedKey = this.wantedKey;
            if (!this.applied || this.applied.key === this.wantedKey) this.fatal ??= err;
            log.error(`config ${this.o.configPath} cannot be applied: ${this.lastError}; waiting for it to change`);
            break;
          }
          this.failures++;
          const wait = Math.min(this.o.checkIntervalMs * 2 ** (this.failures - 1), this.o.maxBackoffMs);
          this.nextRetryAt = Date.now() + wait;
          log.error({ retryInMs: wait, failures: this.failures }, this.lastError);
        }
      } while (this.again && !stop.aborted);
      this.running = undefined;
    })();
    return this.running;
  }

  /** Whether the periodic check should kick: no pass running, not stopping, any backoff over. */
  due(now = Date.now()): boolean {
    return !this.running && !this.o.stop.aborted && now >= this.nextRetryAt;
  }

  /** Why /readyz says no, or null when the wanted module is live. */
  notReadyReason(): string | null {
    if (this.stopping) return 'stopping';
    if (this.lastError) return `last attempt failed: ${this.lastError}`;
    if (!this.applied) return 'loading';
    if (this.applied.key !== this.wantedKey) return 'config changed; reloading';
    return this.live ? null : 'module not live (loading)';
  }

  /** No more passes: waits for the one running and for the prefetch. */
  async settle(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.prefetching;
  }

  /** Unloads what this process applied (if anything), with a signal nothing aborts. */
  async unloadAtShutdown(): Promise<void> {
    if (!this.applied) return;
    this.o.log.info({ module: identityString(this.applied.deps.identity) }, 'stopping: unloading the module');
    await this.unloadApplied();
  }

  private async unloadApplied(): Promise<void> {
    const a = this.applied!;
    const deps = await this.o.wire(a.config, { signal: this.uninterruptible });
    await unloadModule(deps, a.config, { firmwarePath: this.o.firmwarePath });
    this.applied = undefined;
    this.live = false;
  }
}
