/**
 * The retry policy of registry requests: bounded tries, exponential backoff with jitter, a server's
 * `Retry-After` honoured up to a bound; `withRetries` runs a request under it, and `resumeDelay` decides
 * whether a body that broke mid-way is asked for again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { OperationError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { errorCode, errorText, HttpStatusError, isRetryableError, networkError } from './errors.js';

export interface RetryPolicy {
  /** total tries of one request, the first included */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 4000 };
const MAX_RETRY_AFTER_MS = 10_000;

/** Delay before retry n (0-based), or the server's Retry-After when it says so. */
export function retryDelay(policy: RetryPolicy, n: number, retryAfter?: string): number {
  if (retryAfter) {
    const secs = Number(retryAfter);
    const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - Date.now();
    if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, MAX_RETRY_AFTER_MS);
  }
  const base = Math.min(policy.baseDelayMs * 2 ** n, policy.maxDelayMs);
  return base / 2 + Math.random() * (base / 2);
}

/** Whom the retries are for: the registry's names for messages, the log, the policy. */
export interface RetryScope {
  registry: string;
  endpoint: string;
  log: Logger;
  policy: RetryPolicy;
}

/** Runs `fn` with bounded retries on transient failures (resets, stalls, 5xx, 429). */
export async function withRetries<T>(s: RetryScope, what: string, signal: AbortSignal | undefined,
  fn: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await fn();
    } catch (err) {
      signal?.throwIfAborted();
      const transient = err instanceof HttpStatusError || isRetryableError(err);
      if (!transient || n + 1 >= s.policy.attempts) {
        if (err instanceof HttpStatusError) {
          throw new OperationError(`registry ${s.registry}: ${what} failed with HTTP ${err.statusCode} after ${n + 1} tries`, { located: true });
        }
        throw networkError(s.registry, s.endpoint, err, what, n + 1);
      }
      const delay = retryDelay(s.policy, n, err instanceof HttpStatusError ? err.retryAfter : undefined);
      s.log.warn({ registry: s.registry, what, attempt: n + 1, retryInMs: Math.round(delay),
        reason: err instanceof HttpStatusError ? `HTTP ${err.statusCode}` : errorCode(err) ?? errorText(err) },
        'registry request failed; retrying');
      await sleep(delay, undefined, { signal });
    }
  }
}

/**
 * After `resumes` resumes of a body that broke with `err`: the pause before the next one, or the one-line error
 * when the failure is not transient or the resumes are spent. One more resume than request tries: a resume that
 * made progress is not a failing registry.
 */
export function resumeDelay(s: RetryScope, err: unknown, what: string, resumes: number): number {
  if (!isRetryableError(err) || resumes >= s.policy.attempts) {
    throw networkError(s.registry, s.endpoint, err, what, resumes + 1);
  }
  return Math.min(s.policy.baseDelayMs * 2 ** resumes, s.policy.maxDelayMs);
}
