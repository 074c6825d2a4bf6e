/**
 * The connection to one registry: the undici pool (TLS trust, client certificate, proxy), one raw HTTP exchange
 * with the per-attempt time limits, and the ways a response body is read (rate-guarded chunks, a bounded whole,
 * or dropped). It knows nothing of auth, retries or redirects: the other files of transport/ build on it.
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../../log.js';
import { formatMs, rateGuarded, StallError, type NetLimits } from '../net-limits.js';
import { caBundle, type RegistryTls } from '../trust.js';
import { Agent, request, type AgentOptions } from '../undici-parts.js';
import { errorCode, stripQuery } from './errors.js';

/** What of an error body is read for its `{"errors": [...]}` message; the rest is dropped with the connection. */
export const MAX_ERROR_BODY_BYTES = 64 << 10;

export interface RegistryResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  /** the URL that answered (after redirects), without query */
  url: string;
}

/** One raw HTTP exchange; every error is the caller's to classify. */
export type RawRequest = (method: string, url: string | URL, headers: Record<string, string>, signal?: AbortSignal,
  body?: string) => Promise<RegistryResponse>;

export interface RegistryHttpOptions {
  registry: string;
  insecure?: boolean;
  tls: RegistryTls;
  log: Logger;
  limits: NetLimits;
  /** builds the connection pool from the agent options (a proxying one); a plain undici Agent by default */
  makeDispatcher?: (agentOpts: AgentOptions) => Dispatcher;
}

export class RegistryHttp {
  readonly limits: NetLimits;
  private readonly log: Logger;
  private readonly dispatcher: Dispatcher;

  constructor(o: RegistryHttpOptions) {
    this.limits = o.limits;
    this.log = o.log;
    const ca = caBundle(o.tls.extraCAs);
    this.dispatcher = (o.makeDispatcher ?? ((a: AgentOptions) => new Agent(a)))({
      connect: {
        ...(ca ? { ca } : {}),
        ...(o.tls.clientCert ?? {}),
        rejectUnauthorized: !o.insecure,
      },
      headersTimeout: this.limits.headersMs,
      // idle time between two body chunks (not counted while the consumer has paused the body); the rate guard
      // (rateGuarded) also catches bodies that trickle
      bodyTimeout: this.limits.windowMs,
    });
    o.log.debug({ registry: o.registry, headersTimeoutMs: this.limits.headersMs, stallWindowMs: this.limits.windowMs,
      minBytesPerSecond: this.limits.minBytesPerSecond }, 'registry client time limits');
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  readonly raw: RawRequest = async (method, url, headers, signal, body) => {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: method as Dispatcher.HttpMethod, headers, signal, dispatcher: this.dispatcher,
        ...(body !== undefined ? { body } : {}) });
    } catch (err) {
      if (errorCode(err) === 'UND_ERR_HEADERS_TIMEOUT') {
        // no cause: undici's "Headers Timeout Error" would only repeat it in the message
        throw new StallError(`no response headers from ${new URL(url).host} within ${formatMs(this.limits.headersMs)}`);
      }
      throw err;
    }
    const u = stripQuery(typeof url === 'string' ? url : url.href);
    this.log.debug({ method, url: u, status: res.statusCode }, 'registry request');
    return { statusCode: res.statusCode, headers: res.headers, body: res.body, url: u };
  };

  /** The body's chunks, failing with a StallError when they come slower than the limits allow. */
  chunks(res: RegistryResponse): AsyncGenerator<Buffer> {
    return rateGuarded(res.body, this.limits, new URL(res.url).host);
  }

  /**
   * A whole (small) body, at most `limit` bytes: more is `onTooLarge`'s error, or, without it, the first `limit`
   * bytes are kept and the rest dropped with the connection.
   */
  async readBody(res: RegistryResponse, limit: number, onTooLarge?: () => Error): Promise<Buffer> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of this.chunks(res)) {
      if (n + c.length > limit) {
        res.body.destroy();
        if (onTooLarge) throw onTooLarge();
        parts.push(c.subarray(0, limit - n));
        break;
      }
      n += c.length;
      parts.push(c);
    }
    return Buffer.concat(parts);
  }

  /** Drops a body that is not wanted; a slow or endless one is cut instead of read. Never throws. */
  async discard(res: RegistryResponse): Promise<void> {
    try {
      await res.body.dump({ limit: MAX_ERROR_BODY_BYTES, signal: AbortSignal.timeout(this.limits.windowMs) });
    } catch {
      res.body.destroy();
    }
  }
}
