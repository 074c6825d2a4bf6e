/**
 * Scheme discovery: the `GET /v2/` ping finds how the registry is reached (https, or plain http only for
 * --insecure or a loopback registry) and the auth challenge it answers an anonymous client with. Done once per
 * client; concurrent first requests share one ping, and a failed ping is tried again by the next request.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../../log.js';
import { parseChallenges, type Challenge } from '../challenge.js';
import { isLoopbackHost } from '../reference.js';
import { errorCode, errorText, header, HttpStatusError, isCertificateError, networkError } from './errors.js';
import type { RawRequest, RegistryResponse } from './http.js';

export interface PingTransport {
  registry: string;
  /** host[:port] to connect to */
  endpoint: string;
  insecure: boolean;
  log: Logger;
  raw: RawRequest;
  discard(res: RegistryResponse): Promise<void>;
  withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T>;
}

export interface PingResult {
  /** `https://host[:port]` or `http://host[:port]` */
  base: string;
  /** the challenge of the ping's 401, when the registry wants credentials */
  challenge: Challenge | undefined;
}

/** The challenge a client answers among those of a `WWW-Authenticate` header: Bearer before Basic. */
export function pickChallenge(headers: IncomingHttpHeaders): Challenge | undefined {
  const cs = parseChallenges(headers['www-authenticate']);
  return cs.find((c) => c.scheme === 'bearer') ?? cs.find((c) => c.scheme === 'basic');
}

/** Pings `https://endpoint/v2/`, falling back to plain HTTP where that is allowed. */
export async function ping(t: PingTransport, signal?: AbortSignal): Promise<PingResult> {
  const { endpoint } = t;
  const mayUseHttp = t.insecure || isLoopbackHost(endpoint);
  const probe = async (base: string) => {
    const res = await t.raw('GET', `${base}/v2/`, {}, signal);
    await t.discard(res);
    if (res.statusCode >= 500 || res.statusCode === 429) {
      throw new HttpStatusError(res.statusCode, header(res.headers, 'retry-after'));
    }
    return res;
  };
  const pingAt = (base: string) => t.withRetries('ping /v2/', signal, () => probe(base));
  const https = `https://${endpoint}`;
  let base = https;
  let res: RegistryResponse;
  if (!mayUseHttp) {
    res = await pingAt(https);
  } else {
    try {
      // one try only: a plain-HTTP server answers a TLS hello with garbage or a reset, and retrying that is useless
      res = await probe(https);
    } catch (err) {
      signal?.throwIfAborted();
      if (isCertificateError(err)) throw networkError(t.registry, endpoint, err, 'ping /v2/', 1);
      if (err instanceof HttpStatusError) {
        res = await pingAt(https);
      } else {
        t.log.debug({ registry: t.registry, reason: errorCode(err) ?? errorText(err).split('\n')[0] },
          'HTTPS failed; trying plain HTTP');
        base = `http://${endpoint}`;
        res = await pingAt(base);
      }
    }
  }
  return { base, challenge: res.statusCode === 401 ? pickChallenge(res.headers) : undefined };
}

/** The ping of one client: run once on success, shared by concurrent callers. */
export class SchemeDiscovery {
  private found: PingResult | undefined;
  private pending: Promise<PingResult> | undefined;

  constructor(private readonly t: PingTransport) {}

  discover(signal?: AbortSignal): Promise<PingResult> {
    if (this.found) return Promise.resolve(this.found);
    this.pending ??= ping(this.t, signal).then((r) => {
      this.found = r;
      if (this.t.insecure) {
        this.t.log.warn({ registry: this.t.registry, scheme: r.base.split(':')[0] },
          'insecure pull: TLS certificates are not verified and plain HTTP is allowed for this registry');
      }
      return r;
    }).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }
}
