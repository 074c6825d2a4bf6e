/**
 * The one place that builds what the worker flows need from a command's Context. Each part is one statement,
 * so the image cache (kmods sources) and the reporting (reporter) can each change their own line.
 */
import type { Context } from '../context.js';
import type { Logger } from '../log.js';
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
import type { Reporter } from '../report/reporter.js';
import { checkIdentity, moduleIdentity, type ModuleIdentity } from '../config/identity.js';
import { SharedDirKmodsSource, lazySource, type KmodsSource } from './kmods-source.js';
import { modulesOfConfig } from './modprobe-argv.js';
import { guardedSteps } from '../stop-guard.js';

export interface WorkerDeps {
  log: Logger;
  /** read-only view of the node under --host-root */
  host: Host;
  /** every write on the node; prints the plan instead under --dry-run */
  changes: HostChanges;
  /** runs modprobe; prints the command under --dry-run */
  modprobe: ModprobeRunner;
  /** modinfo and depmod only read the kmods or write a scratch copy, so they run in a dry run too */
  modinfo: ModinfoRunner;
  depmod: DepmodRunner;
  /** asked in order; the first location wins */
  sources: KmodsSource[];
  reporter: Reporter;
  /** `<ns>/<name>` of the Module (docs/reporting.md) */
  identity: ModuleIdentity;
  dryRun: boolean;
  /** where the dry-run plan goes */
  planOut: NodeJS.WritableStream;
  signal?: AbortSignal;
}

/**
 * Pass the config when you have it: the module identity falls back to its moduleName (§8). Without it the
 * identity falls back to `--module-name` or "unknown".
 */
export async function createWorkerDeps(ctx: Context, config?: ModuleConfig): Promise<WorkerDeps> {
  const { opts } = ctx;
  const dryRun = opts.dryRun;
  // in a dry run the flows' log lines describe what would happen; say so on each of them
  const log = dryRun ? ctx.log.child({}, { msgPrefix: '(dry run) ' }) : ctx.log;
  const host = new Host(opts.hostRoot);
  // host writes and modprobe runs are steps a stop signal waits for (src/stop-guard.ts)
  const changes: HostChanges = dryRun ? new PlanHostChanges(ctx.stdout) : guardedSteps(new RealHostChanges());
  const modprobe: ModprobeRunner = dryRun ? new PlanModprobe(ctx.stdout) : guardedSteps(new ExecModprobe(opts.modprobe, log));
  const modinfo: ModinfoRunner = new ExecModinfo(opts.modinfo, log);
  const depmod: DepmodRunner = new ExecDepmod(opts.depmod, log);
  // the image source (and with it the registry stack) is loaded only when the shared dir has no kmods
  const imageSource = lazySource('image', async () => {
    const { ImageKmodsSource } = await import('./image-kmods-source.js');
    const { imagesDir, authFile, pullSecretsDir, hostRoot } = opts;
    return new ImageKmodsSource({ imagesDir, authFile, pullSecretsDir, hostRoot, log, progress: process.stderr });
  });
  const sources: KmodsSource[] = [new SharedDirKmodsSource(opts.sharedDir), imageSource];
  const identity: ModuleIdentity = checkIdentity(await moduleIdentity(opts, (config && modulesOfConfig(config)[0]) || 'unknown'));
  const reporter: Reporter = await (await import('../report/create.js')).createReporter(ctx, identity);
  return { log, host, changes, modprobe, modinfo, depmod, sources, reporter, identity, dryRun, planOut: ctx.stdout, signal: ctx.signal };
}
