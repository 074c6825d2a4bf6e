/**
 * Bounds on time for every exchange with a registry (issue 14 F3). A registry, a CDN or a network in between
 * can answer slowly on purpose: headers that never come, a body that stops after the headers, or one byte a
 * second (slow-loris), which undici's idle timeout never notices. Each attempt must therefore get its headers
 * within `headersMs` and then keep up at least `minBytesPerSecond` over every `windowMs` of waiting; otherwise it
 * fails with a StallError, which is retried like a connection reset (a blob resumes with Range).
 *
 * Only time spent waiting for the network counts: while the consumer holds a chunk (writing it to disk), the
 * clock stops, so a slow disk is never taken for a slow registry.
 */
import { UsageError } from '../errors.js';

export interface NetLimits {
  /** the response headers must arrive within this (ms) */
  headersMs: number;
  /** the window (ms of waiting) over which the body must average at least minBytesPerSecond */
  windowMs: number;
  minBytesPerSecond: number;
}

export const DEFAULT_NET_LIMITS: NetLimits = { headersMs: 30_000, windowMs: 30_000, minBytesPerSecond: 1024 };

/**
 * KMM_NET_LIMITS="headers=500,window=1000,rate=1024" (ms, ms, bytes per second) overrides the defaults: for
 * tests, which cannot wait 30 s per stall. Unset or empty: the defaults.
 */
export function netLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): NetLimits {
  const text = env.KMM_NET_LIMITS;
  const limits = { ...DEFAULT_NET_LIMITS };
  if (!text) return limits;
  const keys: Record<string, keyof NetLimits> = { headers: 'headersMs', window: 'windowMs', rate: 'minBytesPerSecond' };
  for (const part of text.split(',')) {
    const m = /^\s*(headers|window|rate)=(\d+)\s*$/.exec(part);
    if (!m || Number(m[2]) < 1) {
      throw new UsageError(`KMM_NET_LIMITS: '${part}' is not headers=MS, window=MS or rate=BYTES_PER_SECOND (positive)`);
    }
    limits[keys[m[1]!]!] = Number(m[2]);
  }
  return limits;
}

/** A stalled exchange; `code` puts it among the transient network failures (retried like ECONNRESET). */
export class StallError extends Error {
  readonly code = 'KMM_STALLED';
  override name = 'StallError';
}

export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function formatRate(bps: number): string {
  return bps >= 1024 && bps % 1024 === 0 ? `${bps / 1024} KiB/s` : `${bps} B/s`;
}

interface Body extends AsyncIterable<Buffer> {
  destroy(err?: Error): unknown;
}

/**
 * The chunks of `body`, failing with a StallError (and destroying the body) when `windowMs` of waiting bring
 * fewer than minBytesPerSecond × windowMs bytes. `from` names the host for the message.
 */
export async function* rateGuarded(body: Body, limits: NetLimits, from: string): AsyncGenerator<Buffer> {
  const it = body[Symbol.asyncIterator]();
  const need = (limits.minBytesPerSecond * limits.windowMs) / 1000;
  // the current window: network waiting time and bytes received in it
  let waited = 0;
  let got = 0;
  const stall = () => new StallError(`received ${got} bytes in ${formatMs(limits.windowMs)} from ${from} ` +
    `(less than ${formatRate(limits.minBytesPerSecond)})`);
  for (;;) {
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const err = stall();
        body.destroy(err);
        reject(err);
      }, Math.max(0, limits.windowMs - waited));
    });
    let r: IteratorResult<Buffer>;
    try {
      r = await Promise.race([it.next(), stalled]);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'UND_ERR_BODY_TIMEOUT') {
        throw new StallError(`no data from ${from} for ${formatMs(limits.windowMs)}`);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    waited += performance.now() - start;
    if (r.done) return;
    got += r.value.length;
    if (got >= need) {
      waited = 0;
      got = 0;
    } else if (waited >= limits.windowMs) {
      const err = stall();
      body.destroy(err);
      throw err;
    }
    yield r.value;
  }
}
