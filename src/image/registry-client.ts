/**
 * HTTP to one registry (OCI distribution v1.1) on undici, composed of the parts in transport/ the way
 * go-containerregistry composes its transport: the connection and its time limits (http.ts), scheme discovery
 * with the `/v2/` ping (ping.ts), the auth challenge and its token cache (auth.ts, token.ts), bounded retries
 * (retry.ts), redirects that never carry credentials to another host (redirect.ts), and one-line failures
 * (errors.ts). What is left here is one request's story: ping once, authorize, send with retries and
 * redirects, ask again once on a new challenge, or fail in one line.
 *
 * Secrets (passwords, tokens, Authorization values) never go into a log line or an error message; URLs are
 * logged without their query (a redirect to object storage carries a signature there).
 */
import type { Dispatcher } from 'undici';
import type { OperationError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Credential } from './credentials.js';
import { DEFAULT_NET_LIMITS, type NetLimits } from './net-limits.js';
import type { RegistryTls } from './trust.js';
import type { AgentOptions } from './undici-parts.js';
import { RegistryAuth } from './transport/auth.js';
import { header, HttpStatusError, registryErrorText, statusError } from './transport/errors.js';
import { MAX_ERROR_BODY_BYTES, RegistryHttp, type RegistryResponse } from './transport/http.js';
import { SchemeDiscovery } from './transport/ping.js';
import { followRedirects, redirectTargetError } from './transport/redirect.js';
import { DEFAULT_RETRY, resumeDelay, withRetries, type RetryPolicy, type RetryScope } from './transport/retry.js';

export type { RegistryResponse } from './transport/http.js';

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

/**
 * What image readers (registry-source.ts, lazy/registry-range.ts) use of a registry: authorized requests,
 * their bodies, and the retry decisions for work that spans a request and its body.
 */
export interface Registry {
  readonly registry: string;
  /**
   * GET/HEAD `path` (below /v2/) with auth, retries and redirects. Returns a 2xx response (or one whose status
   * is in `accept`); anything else becomes a one-line OperationError naming the registry and `what`.
   */
  send(method: 'GET' | 'HEAD', path: string, o: SendOptions): Promise<RegistryResponse>;
  /** The body's chunks, failing with a StallError when they come slower than the limits allow. */
  chunks(res: RegistryResponse): AsyncGenerator<Buffer>;
  /** A whole (small) body, at most `limit` bytes (more: `onTooLarge`'s error, or the rest dropped). */
  readBody(res: RegistryResponse, limit: number, onTooLarge?: () => Error): Promise<Buffer>;
  /** Drops a body that is not wanted. Never throws. */
  discard(res: RegistryResponse): Promise<void>;
  /** Runs `fn` (a request and the reading of its body) with bounded retries on transient failures. */
  withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T>;
  /** After `resumes` resumes of a body broken by `err`: the pause before the next, or the one-line error. */
  resumeDelay(err: unknown, what: string, resumes: number): number;
}

export class RegistryClient implements Registry {
  readonly registry: string;
  private readonly http: RegistryHttp;
  private readonly retry: RetryScope;
  private readonly scheme: SchemeDiscovery;
  private readonly auth: RegistryAuth;
  private readonly credential: Credential | undefined;

  constructor(opts: RegistryClientOptions) {
    const { registry, endpoint, log } = opts;
    const insecure = Boolean(opts.insecure);
    this.registry = registry;
    this.credential = opts.credential;
    this.http = new RegistryHttp({ registry, insecure, tls: opts.tls, log, limits: opts.limits ?? DEFAULT_NET_LIMITS,
      makeDispatcher: opts.makeDispatcher });
    this.retry = { registry, endpoint, log, policy: opts.retry ?? DEFAULT_RETRY };
    const conn = {
      raw: this.http.raw,
      readBody: (res: RegistryResponse, limit: number, onTooLarge?: () => Error) => this.readBody(res, limit, onTooLarge),
      discard: (res: RegistryResponse) => this.discard(res),
      withRetries: <T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>) =>
        this.withRetries(what, signal, fn),
    };
    this.scheme = new SchemeDiscovery({ registry, endpoint, insecure, log, ...conn });
    this.auth = new RegistryAuth({ registry, insecure, credential: opts.credential, credentialHint: opts.credentialHint,
      log, ...conn });
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  chunks(res: RegistryResponse): AsyncGenerator<Buffer> {
    return this.http.chunks(res);
  }

  readBody(res: RegistryResponse, limit: number, onTooLarge?: () => Error): Promise<Buffer> {
    return this.http.readBody(res, limit, onTooLarge);
  }

  discard(res: RegistryResponse): Promise<void> {
    return this.http.discard(res);
  }

  withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return withRetries(this.retry, what, signal, fn);
  }

  resumeDelay(err: unknown, what: string, resumes: number): number {
    return resumeDelay(this.retry, err, what, resumes);
  }

  async send(method: 'GET' | 'HEAD', path: string, o: SendOptions): Promise<RegistryResponse> {
    const found = await this.scheme.discover(o.signal);
    this.auth.begin(found);
    const { base } = found;
    let reauthed = false;
    for (;;) {
      const authz = await this.auth.authorization(o.repository, o.signal, reauthed);
      const res = await this.withRetries(o.what, o.signal, async () => {
        const r = await followRedirects({ registry: this.registry, raw: this.http.raw, discard: (x) => this.discard(x) },
          method, `${base}${path}`, { ...(o.headers ?? {}) }, authz, o.signal);
        if (r.statusCode >= 500 || r.statusCode === 429) {
          await this.discard(r);
          throw new HttpStatusError(r.statusCode, header(r.headers, 'retry-after'));
        }
        return r;
      });
      const ok = (res.statusCode >= 200 && res.statusCode < 300) || o.accept?.includes(res.statusCode);
      if (!ok && !this.auth.fromRegistry(res)) throw await redirectTargetError(this.registry, res, o.what);
      if (res.statusCode === 401 && !reauthed) {
        const ch = this.auth.retryChallenge(res, authz);
        if (ch) {
          await this.discard(res);
          this.auth.adopt(ch);
          reauthed = true;
          continue;
        }
      }
      if (ok) return res;
      throw await this.statusError(res, o, Boolean(authz));
    }
  }

  private async statusError(res: RegistryResponse, o: SendOptions, hadAuth: boolean): Promise<OperationError> {
    const detail = registryErrorText(await this.readBody(res, MAX_ERROR_BODY_BYTES).catch(() => undefined));
    return statusError({ registry: this.registry, repository: o.repository, what: o.what, statusCode: res.statusCode,
      detail, challenge: res.statusCode === 401 ? this.auth.registryChallenge(res) : undefined,
      credential: this.credential, hint: this.auth.hint(), hadAuth });
  }
}
