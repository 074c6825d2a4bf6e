/**
 * The two kinds of failure the contract distinguishes (README.md "Exit codes"):
 * a UsageError means the command line or config is invalid and nothing was touched (exit 2);
 * an OperationError means the operation itself failed (exit 1).
 * Both carry a one-line message that names the cause; `detail` is extra context printed after it. Every error
 * of kmm-worker carries a stable `code` (as undici's do) for code that must tell failures apart: never match
 * on a message's words.
 */

/** The stable codes; a message may change wording, a code does not. */
export const ErrorCodes = {
  usage: 'KMM_USAGE',
  operation: 'KMM_OPERATION',
  interrupted: 'KMM_INTERRUPTED',
  /** the registry has no such image, tag or repository (HTTP 404, MANIFEST_UNKNOWN, NAME_UNKNOWN) */
  imageNotFound: 'KMM_IMAGE_NOT_FOUND',
  /** the registry refused the credentials or their lack (HTTP 401, 403) */
  registryDenied: 'KMM_REGISTRY_DENIED',
} as const;

interface KmmErrorOptions {
  cause?: unknown;
  detail?: string | undefined;
  /** a more specific stable code than the class's own */
  code?: string;
  /** the message already starts by naming the image or registry it concerns: callers add no such context */
  located?: boolean;
}

export class UsageError extends Error {
  readonly exitCode = 2;
  override name = 'UsageError';
  readonly code: string;
  readonly detail: string | undefined;
  readonly located: boolean;
  constructor(message: string, options?: KmmErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code ?? ErrorCodes.usage;
    this.detail = options?.detail;
    this.located = options?.located ?? false;
  }
}

export class OperationError extends Error {
  readonly exitCode = 1;
  override name = 'OperationError';
  readonly code: string;
  readonly detail: string | undefined;
  readonly located: boolean;
  constructor(message: string, options?: KmmErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code ?? ErrorCodes.operation;
    this.detail = options?.detail;
    this.located = options?.located ?? false;
  }
}

/** The message of anything thrown: an Error's message, or the thrown value as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The error again with what it was doing in front: `<context>: <message>`, the same kind (a UsageError stays
 * exit 2), the same code and detail, the original as its cause. A foreign error (a Node or library one)
 * becomes an OperationError. An interruption is never reworded.
 */
export function withContext(err: unknown, context: string, opts: { located?: boolean } = {}): Error {
  if (err instanceof InterruptedError) return err;
  const message = `${context}: ${errorMessage(err)}`;
  const located = opts.located === true || isLocated(err);
  if (err instanceof UsageError) return new UsageError(message, { cause: err, detail: err.detail, code: err.code, located });
  if (err instanceof OperationError) {
    const Kind = err.constructor as typeof OperationError;
    return new Kind(message, { cause: err, detail: err.detail, code: err.code, located });
  }
  return new OperationError(message, { cause: err, located });
}

/** The error's message already names the image or registry it concerns (see KmmErrorOptions.located). */
export function isLocated(err: unknown): boolean {
  return (err instanceof OperationError || err instanceof UsageError) && err.located;
}

/** Raised when a SIGINT/SIGTERM interrupted the work; cleanup has already run. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  readonly code = ErrorCodes.interrupted;
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
  const msg = errorMessage(err);
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
