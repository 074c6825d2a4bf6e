/**
 * The composition root of the worker flows: builds the ports and the run context of one run from a command's
 * Context and the command's own choices, in one call, with nothing patched afterwards. Each part is one
 * statement, so the image cache (kmods sources) and the reporting (reporter) can each change their own line.
 */
import type { Context } from '../context.js';
import type { ModuleConfig } from '../config/module-config.js';
import { Host } from '../host/host.js';
import { PlanHostChanges, RealHostChanges, type HostChanges } from '../host/changes.js';
import {
  ExecDepmod,
  ExecModinfo,
  ExecModprobe,
  PlanModprobe,
  type DepmodRunner,
  type ModinfoRunner,
  type ModprobeRunner,
} from '../host/runners.js';
import { noReporter, type Reporter } from '../report/reporter.js';
import { checkIdentity, moduleIdentity, type ModuleIdentity } from '../config/identity.js';
import { SharedDirKmodsSource, lazySource, type KmodsSource } from '../worker/kmods-source.js';
import { modulesOfConfig } from '../worker/modprobe-argv.js';
import { noPlan, printedPlan, type Plan } from '../worker/plan.js';
import type { WorkerDeps } from '../worker/ports.js';
import { guardedSteps } from '../stop-guard.js';

/** What a command decides about its run, beyond the global options. */
export interface WorkerChoices {
  /** the kmods sources, in order; default: the shared dir, then the config's image pulled into the cache */
  sources?: KmodsSource[];
  /** false: no Events whatever --report says (Day-1 before the network); default: as --report says */
  report?: boolean;
  /** the node; default: a `Host` under --host-root (Day-1 passes the one it read the running kernel from) */
  host?: Host;
  /** what stops this run between steps; default: the command's SIGINT/SIGTERM signal */
  signal?: AbortSignal;
  /** once this is aborted, a ModuleLoadFailed is not reported (the daemon's load cut short by its shutdown) */
  quietFailuresAfter?: AbortSignal;
}

/**
 * Pass the config when you have it: the module identity falls back to its moduleName (docs/reporting.md).
 * Without it the identity falls back to `--module-name` or "unknown".
 */
export async function createWorkerDeps(ctx: Context, config?: ModuleConfig, choices: WorkerChoices = {}): Promise<WorkerDeps> {
  const { opts } = ctx;
  const dryRun = opts.dryRun;
  // in a dry run the flows' log lines describe what would happen; say so on each of them
  const log = dryRun ? ctx.log.child({}, { msgPrefix: '(dry run) ' }) : ctx.log;
  const plan: Plan = dryRun ? printedPlan(ctx.stdout) : noPlan;
  const host = choices.host ?? new Host(opts.hostRoot);
  // host writes and modprobe runs are steps a stop signal waits for (src/stop-guard.ts)
  const changes: HostChanges = dryRun ? new PlanHostChanges(ctx.stdout) : guardedSteps(new RealHostChanges());
  const modprobe: ModprobeRunner = dryRun ? new PlanModprobe(ctx.stdout) : guardedSteps(new ExecModprobe(opts.modprobe, log));
  const modinfo: ModinfoRunner = new ExecModinfo(opts.modinfo, log);
  const depmod: DepmodRunner = new ExecDepmod(opts.depmod, log);
  // the image source (and with it the registry stack) is loaded only when the shared dir has no kmods
  const imageSource = lazySource('image', async () => {
    const { ImageKmodsSource } = await import('../worker/image-kmods-source.js');
    const { imagesDir, authFile, pullSecretsDir, hostRoot } = opts;
    return new ImageKmodsSource({ imagesDir, authFile, pullSecretsDir, hostRoot, log, progress: process.stderr, dryRun });
  });
  const sources: KmodsSource[] = choices.sources ?? [new SharedDirKmodsSource(opts.sharedDir), imageSource];
  const identity: ModuleIdentity = checkIdentity(await moduleIdentity(opts, (config && modulesOfConfig(config)[0]) || 'unknown'));
  const reporter: Reporter = choices.report === false
    ? noReporter
    : quietAfter(choices.quietFailuresAfter, await (await import('../report/create.js')).createReporter(ctx, identity));
  const signal = choices.signal ?? ctx.signal;
  return { log, host, changes, modprobe, modinfo, depmod, sources, reporter, plan, identity, signal };
}

function quietAfter(stop: AbortSignal | undefined, reporter: Reporter): Reporter {
  if (!stop) return reporter;
  return { report: (ev) => (stop.aborted && ev.reason === 'ModuleLoadFailed' ? Promise.resolve() : reporter.report(ev)) };
}
