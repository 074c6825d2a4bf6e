/**
 * The two kinds of failure the contract distinguishes (DESIGN §3):
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

/** The first line of an error, for the one-line failure message. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n', 1)[0] ?? msg;
}
