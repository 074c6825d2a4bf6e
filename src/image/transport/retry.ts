/**
 * The retry policy of registry requests: bounded tries, exponential backoff with jitter, a server's
 * `Retry-After` honoured up to a bound. RegistryClient.withRetries runs requests under it.
 */

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
