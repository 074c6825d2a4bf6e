import type { WorkerDeps } from './deps.js';

/** A comment line of the dry-run plan (nothing outside a dry run). */
export function planNote(deps: Pick<WorkerDeps, 'dryRun' | 'planOut'>, line: string): void {
  if (deps.dryRun) deps.planOut.write(`${line}\n`);
}
