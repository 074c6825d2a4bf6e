/**
 * Runs tasks with at most `limit` at once, each with its own time limit, so one hung registry holds one slot
 * for at most its timeout and never stalls the rest. A task gets a signal that aborts on its timeout or on the
 * outer signal; if it ignores the signal, its result is abandoned at that moment all the same.
 */
export class TaskTimeoutError extends Error {
  override name = 'TaskTimeoutError';
  constructor(readonly seconds: number) {
    super(`timed out after ${seconds}s`);
  }
}

export interface PoolOptions {
  limit: number;
  timeoutSeconds: number;
  signal?: AbortSignal;
}

export async function runBounded<T, R>(
  items: readonly T[],
  opts: PoolOptions,
  task: (item: T, signal: AbortSignal) => Promise<R>,
  onError: (item: T, err: unknown) => R,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      const item = items[index]!;
      results[index] = await runOne(item).catch((err: unknown) => onError(item, err));
    }
  };
  const runOne = async (item: T): Promise<R> => {
    opts.signal?.throwIfAborted();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new TaskTimeoutError(opts.timeoutSeconds)), opts.timeoutSeconds * 1000);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([task(item, signal), aborted]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort!);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(opts.limit, items.length)) }, worker);
  await Promise.all(workers);
  return results;
}
