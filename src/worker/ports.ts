/**
 * What the load and unload flows need, in two parts: the PORTS, through which they read and change the node and
 * tell the cluster (each with a real adapter and a dry-run or test one), and the RUN CONTEXT of one run (its
 * logger, the module identity, the stop signal). The wiring (src/app/worker-deps.ts) builds both for each
 * command; tests pass fakes (test/worker/flows.test.ts).
 */
import type { Logger } from '../log.js';
import type { ModuleConfig } from '../config/module-config.js';
import type { ModuleIdentity } from '../config/identity.js';
import type { Host } from '../host/host.js';
import type { HostChanges } from '../host/changes.js';
import type { DepmodRunner, ModinfoRunner, ModprobeRunner } from '../host/runners.js';
import type { Reporter } from '../report/reporter.js';
import type { KmodsSource } from './kmods-source.js';
import type { Plan } from './plan.js';

export interface WorkerPorts {
  /** read-only view of the node under --host-root */
  host: Host;
  /** every write on the node */
  changes: HostChanges;
  modprobe: ModprobeRunner;
  /** modinfo and depmod only read the kmods or write a scratch copy, so they run in a dry run too */
  modinfo: ModinfoRunner;
  depmod: DepmodRunner;
  /** asked in order; the first location wins */
  sources: KmodsSource[];
  reporter: Reporter;
  /** the dry-run port: what is printed instead of done */
  plan: Plan;
}

export interface RunContext {
  log: Logger;
  /** `<ns>/<name>` of the Module (docs/reporting.md) */
  identity: ModuleIdentity;
  /** stops the flow between steps */
  signal?: AbortSignal;
}

export type WorkerDeps = WorkerPorts & RunContext;

/** How a flow that runs loads of its own (the daemon, Day-1) gets them wired: given by its command. */
export type WireWorker = (config: ModuleConfig, choices: { signal?: AbortSignal; sources?: KmodsSource[] }) => Promise<WorkerDeps>;
