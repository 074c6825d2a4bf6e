/** docs/reporting.md for both flows: how a load or an unload ended is logged and told to the cluster. */
import { UsageError, oneLine } from '../errors.js';
import type { ReportReason } from '../report/reporter.js';
import type { WorkerDeps } from './ports.js';
import { identityString } from '../config/identity.js';

const WORDING = {
  load: { done: 'ModuleLoaded', failed: 'ModuleLoadFailed', past: 'loaded', where: 'loaded into the kernel' },
  unload: { done: 'ModuleUnloaded', failed: 'ModuleUnloadFailed', past: 'unloaded', where: 'unloaded from the kernel' },
} as const satisfies Record<string, { done: ReportReason; failed: ReportReason; past: string; where: string }>;

/**
 * Runs a flow, then reports its success, or its failure with the one-line cause. A dry run reports nothing,
 * and neither does invalid input (exit 2: nothing was done).
 */
export async function withReportedOutcome(deps: WorkerDeps, verb: 'load' | 'unload', flow: () => Promise<void>): Promise<void> {
  const words = WORDING[verb];
  try {
    await flow();
  } catch (err) {
    if (!deps.plan.dryRun && !(err instanceof UsageError)) {
      await deps.reporter.report({ reason: words.failed, type: 'Warning', message: oneLine(err) });
    }
    throw err;
  }
  if (deps.plan.dryRun) return;
  const id = identityString(deps.identity);
  deps.log.info({ module: id }, `module ${id} ${words.past}`);
  await deps.reporter.report({ reason: words.done, type: 'Normal', message: `Module ${id} ${words.where}` });
}
