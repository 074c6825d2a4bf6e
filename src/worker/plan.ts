/**
 * The dry-run port (docs/kmod.md "--dry-run"). The wiring gives a flow one Plan: under --dry-run it prints the
 * plan's lines to stdout, otherwise it prints nothing. Host writes and modprobe runs are their own ports
 * (HostChanges, ModprobeRunner), swapped for printing ones by the same wiring.
 */
import type { Writable } from 'node:stream';

export interface Plan {
  /** true when the flow describes what it would do instead of doing it */
  readonly dryRun: boolean;
  /** a line of the printed plan: a `# comment`, or a step that is no host change (`verify ...`) */
  print(line: string): void;
}

/** A real run: nothing is printed. */
export const noPlan: Plan = { dryRun: false, print: () => {} };

/** A dry run: the plan goes to `out` (the command's stdout), one line each. */
export function printedPlan(out: Pick<Writable, 'write'>): Plan {
  return { dryRun: true, print: (line) => void out.write(`${line}\n`) };
}
