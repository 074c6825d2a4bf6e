/**
 * HTTP to one registry (OCI distribution v1.1) on undici: scheme discovery with the `/v2/` ping, the auth
 * challenge (anonymous, Basic, Bearer tokens cached per scope until they expire), bounded retries with backoff
 * on resets, 5xx and 429 (`Retry-After` honoured), and redirects followed by hand so that a redirect to another
 * host never carries the registry's Authorization header.
 *
 * Secrets (passwords, tokens, Authorization values) never go into a log line or an error message; URLs are
 * logged without their query (a redirect to object storage carries a signature there).
 *
 * The parts that need none of this client's state live in transport/: the retry policy (retry.ts), how
 * failures are read (errors.ts), the Bearer token exchange (token.ts).
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { OperationError } from '../errors.js';
import { messages } from '../messages.js';
import type { Logger } from '../log.js';
import { DEFAULT_RETRY, retryDelay, type RetryPolicy } from './transport/retry.js';
import { fetchToken, type CachedToken, type TokenTransport } from './transport/token.js';
import {
  HttpStatusError, errorCode, errorText, header, isCertificateError, isRetryableError, registryErrorText, stripQuery,
} from './transport/errors.js';
import { parseChallenges, type Challenge } from './challenge.js';
import type { Credential } from './credentials.js';
import { DEFAULT_NET_LIMITS, formatMs, rateGuarded, StallError, type NetLimits } from './net-limits.js';
import { isLoopbackHost } from './reference.js';
import { caBundle, type RegistryTls } from './trust.js';
import { Agent, request, type AgentOptions } from './undici-parts.js';

const MAX_REDIRECTS = 5;
/** What of an error body is read for its `{"errors": [...]}` message; the rest is dropped with the connection. */
const MAX_ERROR_BODY_BYTES = 64 << 10;

export interface RegistryClientOptions {
  /** normalised registry name (docker.io, 127.0.0.1:5000): what messages and auth lookups use */
  registry: string;
  /** host[:port] to connect to */
  endpoint: string;
  insecure?: boolean;
  credential?: Credential;
  /** where credentials were looked for, for the "no credentials" message */
  credentialHint?: string;
  tls: RegistryTls;
  log: Logger;
  retry?: RetryPolicy;
  /** builds the connection pool from the agent options (a proxying one); a plain undici Agent by default */
  makeDispatcher?: (agentOpts: AgentOptions) => Dispatcher;
  /** per-attempt time bounds (headers, minimum rate); DEFAULT_NET_LIMITS when absent */
  limits?: NetLimits;
}

export interface SendOptions {
  /** repository the request is about: decides the token scope */
  repository: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** what is being fetched, for messages: "manifest host/repo:tag", "blob sha256:..." */
  what: string;
  /** statuses the caller handles itself (e.g. 404 → "tag not found"); others become errors */
  accept?: number[];
}

export interface RegistryResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  /** the URL that answered (after redirects), without query */
  url: string;
}


export class RegistryClient {
  private readonly opts: RegistryClientOptions;
  private readonly retry: RetryPolicy;
  readonly limits: NetLimits;
  private readonly dispatcher: Dispatcher;
  private base: string | undefined;
  private pinging: Promise<void> | undefined;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenRequests = new Map<string, Promise<CachedToken>>();
  private warnedInsecure = false;

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.limits = opts.limits ?? DEFAULT_NET_LIMITS;
    const ca = caBundle(opts.tls.extraCAs);
    this.dispatcher = (opts.makeDispatcher ?? ((o: AgentOptions) => new Agent(o)))({
      connect: {
        ...(ca ? { ca } : {}),
        ...(opts.tls.clientCert ?? {}),
        rejectUnauthorized: !opts.insecure,
      },
      headersTimeout: this.limits.headersMs,
      // idle time between two body chunks (not counted while the consumer has paused the body); the rate guard
      // (rateGuarded) also catches bodies that trickle
      bodyTimeout: this.limits.windowMs,
    });
    opts.log.debug({ registry: opts.registry, headersTimeoutMs: this.limits.headersMs, stallWindowMs: this.limits.windowMs,
      minBytesPerSecond: this.limits.minBytesPerSecond }, 'registry client time limits');
  }

  get registry(): string {
    return this.opts.registry;
  }

  get retryPolicy(): RetryPolicy {
    return this.retry;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** One raw HTTP exchange; every error is the caller's to classify. */
  private async raw(method: string, url: string | URL, headers: Record<string, string>, signal?: AbortSignal,
    body?: string): Promise<RegistryResponse> {
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
    this.opts.log.debug({ method, url: u, status: res.statusCode }, 'registry request');
    return { statusCode: res.statusCode, headers: res.headers, body: res.body, url: u };
  }

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

  /** Runs `fn` with bounded retries on transient failures (resets, 5xx, 429). */
  async withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await fn();
      } catch (err) {
        signal?.throwIfAborted();
        const transient = err instanceof HttpStatusError || isRetryableError(err);
        if (!transient || n + 1 >= this.retry.attempts) {
          if (err instanceof HttpStatusError) {
            throw new OperationError(`registry ${this.registry}: ${what} failed with HTTP ${err.statusCode} after ${n + 1} tries`);
          }
          throw this.networkError(err, what, n + 1);
        }
        const delay = retryDelay(this.retry, n, err instanceof HttpStatusError ? err.retryAfter : undefined);
        this.opts.log.warn({ registry: this.registry, what, attempt: n + 1, retryInMs: Math.round(delay),
          reason: err instanceof HttpStatusError ? `HTTP ${err.statusCode}` : errorCode(err) ?? errorText(err) },
          'registry request failed; retrying');
        await sleep(delay, undefined, { signal });
      }
    }
  }

  /** A one-line error for a failure below HTTP (connection, TLS). */
  networkError(err: unknown, what: string, tries: number): Error {
    if (err instanceof OperationError || (err instanceof Error && err.name === 'AbortError')) return err;
    if (isCertificateError(err)) {
      return new OperationError(messages.tlsUntrusted(this.registry, this.opts.endpoint, errorText(err)), { cause: err });
    }
    if (/wrong version number|packet length too long/i.test(errorText(err))) {
      return new OperationError(messages.plainHttp(this.registry), { cause: err });
    }
    const t = tries > 1 ? ` after ${tries} tries` : '';
    return new OperationError(`registry ${this.registry}: ${what} failed${t}: ${errorText(err)}`, { cause: err });
  }

  /** Finds the scheme (https, or http where allowed) and the auth challenge, once. */
  private ensureBase(signal?: AbortSignal): Promise<void> {
    if (this.base) return Promise.resolve();
    this.pinging ??= this.ping(signal).finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  private async ping(signal?: AbortSignal): Promise<void> {
    const { endpoint, insecure } = this.opts;
    const mayUseHttp = insecure || isLoopbackHost(endpoint);
    const probe = async (base: string) => {
      const res = await this.raw('GET', `${base}/v2/`, {}, signal);
      await this.discard(res);
      if (res.statusCode >= 500 || res.statusCode === 429) {
        throw new HttpStatusError(res.statusCode, header(res.headers, 'retry-after'));
      }
      return res;
    };
    const pingAt = (base: string) => this.withRetries('ping /v2/', signal, () => probe(base));
    let res: RegistryResponse;
    if (!mayUseHttp) {
      res = await pingAt(`https://${endpoint}`);
      this.base = `https://${endpoint}`;
    } else {
      try {
        // one try only: a plain-HTTP server answers a TLS hello with garbage or a reset, and retrying that is useless
        res = await probe(`https://${endpoint}`);
        this.base = `https://${endpoint}`;
      } catch (err) {
        signal?.throwIfAborted();
        if (isCertificateError(err)) throw this.networkError(err, 'ping /v2/', 1);
        if (err instanceof HttpStatusError) {
          res = await pingAt(`https://${endpoint}`);
          this.base = `https://${endpoint}`;
        } else {
          this.opts.log.debug({ registry: this.registry, reason: errorCode(err) ?? errorText(err).split('\n')[0] },
            'HTTPS failed; trying plain HTTP');
          res = await pingAt(`http://${endpoint}`);
          this.base = `http://${endpoint}`;
        }
      }
    }
    if (insecure && !this.warnedInsecure) {
      this.warnedInsecure = true;
      this.opts.log.warn({ registry: this.registry, scheme: this.base.split(':')[0] },
        'insecure pull: TLS certificates are not verified and plain HTTP is allowed for this registry');
    }
    if (res.statusCode === 401) this.challenge = this.registryChallenge(res);
  }

  /** Whether a response came from the registry itself, not from a host it redirected to. */
  private fromRegistry(res: RegistryResponse): boolean {
    return this.base !== undefined && new URL(res.url).origin === new URL(this.base).origin;
  }

  /**
   * The auth challenge of a response, only when the registry's own origin sent it. A challenge decides where
   * the user's credentials go (Basic to the registry, or to the token realm it names), so a host the registry
   * redirected to (a CDN, object storage) never gets to choose.
   */
  private registryChallenge(res: RegistryResponse): Challenge | undefined {
    if (!this.fromRegistry(res)) return undefined;
    const cs = parseChallenges(res.headers['www-authenticate']);
    return cs.find((c) => c.scheme === 'bearer') ?? cs.find((c) => c.scheme === 'basic');
  }

  private basicValue(): string | undefined {
    const c = this.opts.credential;
    if (!c?.username || c.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  /** The Authorization value for a repository's pull scope, fetching a token when the registry wants one. */
  private async authorization(repository: string, signal?: AbortSignal, forceNew = false): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') return this.basicValue();
    if (this.opts.credential?.registryToken) return `Bearer ${this.opts.credential.registryToken}`;
    const scope = `repository:${repository}:pull`;
    const cached = this.tokens.get(scope);
    if (!forceNew && cached && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    // concurrent requests (layers downloaded in parallel) share one token request
    let pending = forceNew ? undefined : this.tokenRequests.get(scope);
    if (!pending) {
      pending = fetchToken(this.tokenTransport(), ch, scope, signal).finally(() => this.tokenRequests.delete(scope));
      this.tokenRequests.set(scope, pending);
    }
    const token = await pending;
    this.tokens.set(scope, token);
    return `Bearer ${token.value}`;
  }

  /** What the token exchange (transport/token.ts) may use of this client. */
  private tokenTransport(): TokenTransport {
    return {
      registry: this.registry,
      viaHttps: Boolean(this.base?.startsWith('https:')),
      insecure: Boolean(this.opts.insecure),
      credential: this.opts.credential,
      hint: this.hint(),
      log: this.opts.log,
      basic: this.basicValue(),
      raw: (method, url, headers, signal, body) => this.raw(method, url, headers, signal, body),
      readBody: (res, limit, onTooLarge) => this.readBody(res, limit, onTooLarge),
      discard: (res) => this.discard(res),
      withRetries: (what, signal, fn) => this.withRetries(what, signal, fn),
    };
  }

  private hint(): string {
    return this.opts.credentialHint ? ` (looked in ${this.opts.credentialHint})` : '';
  }

  /**
   * GET/HEAD `path` (below /v2/) with auth, retries and redirects. Returns a 2xx response (or one whose status is
   * in `accept`); anything else becomes a one-line OperationError naming the registry and `what`.
   */
  async send(method: 'GET' | 'HEAD', path: string, o: SendOptions): Promise<RegistryResponse> {
    await this.ensureBase(o.signal);
    let reauthed = false;
    for (;;) {
      const authz = await this.authorization(o.repository, o.signal, reauthed);
      const res = await this.withRetries(o.what, o.signal, async () => {
        const r = await this.follow(method, `${this.base}${path}`, { ...(o.headers ?? {}) }, authz, o.signal);
        if (r.statusCode >= 500 || r.statusCode === 429) {
          await this.discard(r);
          throw new HttpStatusError(r.statusCode, header(r.headers, 'retry-after'));
        }
        return r;
      });
      const ok = (res.statusCode >= 200 && res.statusCode < 300) || o.accept?.includes(res.statusCode);
      if (!ok && !this.fromRegistry(res)) throw await this.redirectTargetError(res, o);
      if (res.statusCode === 401 && !reauthed) {
        // the registry may ask for a different realm/scheme than the ping said, or a token expired early
        const ch = this.registryChallenge(res);
        const insufficient = ch?.params.error === 'insufficient_scope';
        if (ch && !insufficient && (ch.scheme !== this.challenge?.scheme || !authz || ch.scheme === 'bearer')) {
          await this.discard(res);
          this.challenge = ch;
          reauthed = true;
          continue;
        }
      }
      if (ok) return res;
      throw await this.statusError(res, o, Boolean(authz));
    }
  }

  /** A failure answered by a host the registry redirected to: named as such, and its challenge not followed. */
  private async redirectTargetError(res: RegistryResponse, o: SendOptions): Promise<OperationError> {
    await res.body.dump().catch(() => undefined);
    const host = new URL(res.url).host;
    const why = res.statusCode === 401
      ? '; its authentication challenge is not answered (credentials go only to the registry and the token realm it announced)'
      : '';
    return new OperationError(`registry ${this.registry}: ${o.what}: HTTP ${res.statusCode} from ${host}, where the ` +
      `registry redirected it${why}`);
  }

  private async statusError(res: RegistryResponse, o: SendOptions, hadAuth: boolean): Promise<OperationError> {
    const detail = registryErrorText(await this.readBody(res, MAX_ERROR_BODY_BYTES).catch(() => undefined));
    const cred = this.opts.credential;
    const d = detail ? ` (${detail})` : '';
    if (res.statusCode === 401) {
      const ch = this.registryChallenge(res);
      if ((ch?.params.error === 'insufficient_scope' || ch?.scheme === 'bearer') && !cred) {
        return new OperationError(`registry ${this.registry}: anonymous pull of ${o.repository} denied and no ` +
          `credentials were found for it${this.hint()}`);
      }
      if (ch?.params.error === 'insufficient_scope' || (ch?.scheme === 'bearer' && hadAuth)) {
        return new OperationError(`registry ${this.registry}: pull access to ${o.repository} denied: the token ` +
          `does not grant 'pull' on it (insufficient scope)${cred ? ` with the credentials from ${cred.source}` : ''}`);
      }
      if (cred && !hadAuth) {
        return new OperationError(`registry ${this.registry} wants Basic authentication for ${o.repository}, but the ` +
          `credentials from ${cred.source} hold no username and password`);
      }
      if (cred && hadAuth) {
        return new OperationError(`registry ${this.registry}: authentication failed for ${o.repository}: the ` +
          `credentials from ${cred.source} were rejected`);
      }
      return new OperationError(`registry ${this.registry} requires authentication for ${o.repository} and no ` +
        `credentials were found for it${this.hint()}`);
    }
    if (res.statusCode === 403) {
      return new OperationError(`registry ${this.registry}: access to ${o.repository} denied (HTTP 403)${d}`);
    }
    return new OperationError(`registry ${this.registry}: ${o.what}: HTTP ${res.statusCode}${d}`);
  }

  /** One request, following redirects; Authorization only goes to the registry's own origin. */
  private async follow(method: string, url: string, headers: Record<string, string>, authz: string | undefined,
    signal?: AbortSignal): Promise<RegistryResponse> {
    const origin = new URL(url).origin;
    let current = url;
    for (let hops = 0; ; hops++) {
      const h = { ...headers };
      if (authz && new URL(current).origin === origin) h.authorization = authz;
      const res = await this.raw(method, current, h, signal);
      const location = header(res.headers, 'location');
      if (![301, 302, 303, 307, 308].includes(res.statusCode) || !location) return res;
      await this.discard(res);
      if (hops >= MAX_REDIRECTS) {
        throw new OperationError(`registry ${this.registry}: more than ${MAX_REDIRECTS} redirects for ${stripQuery(url)}`);
      }
      current = new URL(location, current).href;
    }
  }
}
