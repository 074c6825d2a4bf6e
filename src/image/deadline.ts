/**
 * The whole-operation deadline of commands that talk to registries (issue 14 F3): per-attempt stall limits
 * (net-limits.ts) bound each request, but retries, resumes and many layers could still add up to hours. A
 * deadline aborts the operation's signal; whatever then fails is reported as the deadline, in one line.
 */
import { OperationError, UsageError } from '../errors.js';
import { parseDuration } from '../duration.js';

/** For pulls and inspections: a kmod image is tens of MiB; ten minutes is generous even on a slow link. */
export const DEFAULT_OPERATION_TIMEOUT = '10m';
export const DEFAULT_OPERATION_TIMEOUT_MS = parseDuration(DEFAULT_OPERATION_TIMEOUT);

/** `--timeout` as a duration ("10m", "90s", "1h30m"); 0 or garbage is a usage error. */
export function parseTimeout(value: string | undefined, flag = '--timeout'): number {
  if (value === undefined) return DEFAULT_OPERATION_TIMEOUT_MS;
  const ms = parseDuration(value, flag);
  if (ms <= 0) throw new UsageError(`${flag} must be longer than 0s, got '${value}'`);
  return ms;
}

function human(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, s] of [['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= s) {
      parts.push(`${Math.floor(rest / s)}${unit}`);
      rest %= s;
    }
  }
  return parts.join('') || `${ms}ms`;
}

/**
 * Runs `fn` with a signal that aborts on `signal` (SIGINT/SIGTERM) or after `ms`. A failure after the deadline
 * fired becomes `<what> did not finish within <ms> (--timeout)`; an interruption stays an interruption.
 */
export async function withDeadline<T>(o: { signal?: AbortSignal; ms: number; what: string },
  fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = new AbortController();
  const expired = new OperationError(`${o.what} did not finish within ${human(o.ms)} (--timeout)`);
  let grace: NodeJS.Timeout | undefined;
  // work that ignores the abort (it should not) still ends the operation a little later
  const late = new Promise<never>((_resolve, reject) => {
    deadline.signal.addEventListener('abort', () => {
      grace = setTimeout(() => reject(expired), ABORT_GRACE_MS);
    }, { once: true });
  });
  const timer = setTimeout(() => deadline.abort(expired), o.ms);
  const signal = o.signal ? AbortSignal.any([o.signal, deadline.signal]) : deadline.signal;
  const work = fn(signal);
  work.catch(() => undefined);
  try {
    return await Promise.race([work, late]);
  } catch (err) {
    if (deadline.signal.aborted && !o.signal?.aborted) throw expired;
    throw err;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
  }
}

/** How long work may take to wind down after the deadline aborted it (cleanup of a partial cache entry). */
const ABORT_GRACE_MS = 5_000;
