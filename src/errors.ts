/**
 * The two kinds of failure the contract distinguishes (README.md "Exit codes"):
 * a UsageError means the command line or config is invalid and nothing was touched (exit 2);
 * an OperationError means the operation itself failed (exit 1).
 * Both carry a one-line message that names the cause; `detail` is extra context printed after it.
 */
export class UsageError extends Error {
  readonly exitCode = 2;
  override name = 'UsageError';
}

export class OperationError extends Error {
  readonly exitCode = 1;
  override name = 'OperationError';
  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.detail = options?.detail;
  }
  readonly detail: string | undefined;
}

/** Raised when a SIGINT/SIGTERM interrupted the work; cleanup has already run. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(readonly signal: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signal}`);
  }
  get exitCode(): number {
    return this.signal === 'SIGINT' ? 130 : 143;
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof OperationError || err instanceof InterruptedError) {
    return err.exitCode;
  }
  return 1;
}

/** The first line of an error, for the one-line failure message, with echoed input cut (see cutEchoes). */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return cutEchoes(msg.split('\n', 1)[0] ?? msg);
}

/** Longest stretch of echoed input a failure line repeats; a reference or path this long is already unreadable. */
export const MAX_ECHO = 200;
const MAX_LINE = 5 * MAX_ECHO;

function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  let head = s.slice(0, max);
  // never leave half of a surrogate pair before the ellipsis
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${head}…`;
}

/**
 * Messages quote what the user (or a registry) gave: '<reference>', a path, a tag. Any quoted stretch or run
 * without whitespace longer than MAX_ECHO characters is cut there with an ellipsis, and the whole line at
 * MAX_LINE, so a 100 KB reference gives a line a person (and a Kubernetes Event) can hold. Every failure line
 * goes through oneLine, so this is done once, here.
 */
export function cutEchoes(line: string): string {
  const s = line
    .replace(/'([^'\n]{201,})'/g, (_m, q: string) => `'${cut(q, MAX_ECHO)}'`)
    .replace(/[^\s']{201,}/g, (run) => cut(run, MAX_ECHO));
  return cut(s, MAX_LINE);
}
