/**
 * Auth of one registry client: the challenge in force (first the ping's, then any the registry sends later),
 * the Authorization value for a repository's pull scope, and Bearer tokens cached per scope until they expire.
 *
 * Security rule F1: a challenge is taken only from a response of the registry's own origin, never from a host
 * it redirected to, since the challenge decides where the credentials go (Basic to the registry, or to the
 * token realm it names).
 */
import type { Logger } from '../../log.js';
import type { Challenge } from '../challenge.js';
import type { Credential } from '../credentials.js';
import type { RawRequest, RegistryResponse } from './http.js';
import { pickChallenge, type PingResult } from './ping.js';
import { fetchToken, type CachedToken, type TokenTransport } from './token.js';

export interface AuthOptions {
  registry: string;
  insecure: boolean;
  credential: Credential | undefined;
  /** where credentials were looked for, for the "no credentials" message */
  credentialHint: string | undefined;
  log: Logger;
  raw: RawRequest;
  readBody(res: RegistryResponse, limit: number, onTooLarge?: () => Error): Promise<Buffer>;
  discard(res: RegistryResponse): Promise<void>;
  withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T>;
}

export class RegistryAuth {
  private base: string | undefined;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenRequests = new Map<string, Promise<CachedToken>>();

  constructor(private readonly o: AuthOptions) {}

  /** Takes the registry's origin and first challenge from the ping; later pings change nothing. */
  begin(found: PingResult): void {
    if (this.base) return;
    this.base = found.base;
    this.challenge = found.challenge;
  }

  /** Whether a response came from the registry itself, not from a host it redirected to. */
  fromRegistry(res: RegistryResponse): boolean {
    return this.base !== undefined && new URL(res.url).origin === new URL(this.base).origin;
  }

  /** The auth challenge of a response, only when the registry's own origin sent it (F1). */
  registryChallenge(res: RegistryResponse): Challenge | undefined {
    return this.fromRegistry(res) ? pickChallenge(res.headers) : undefined;
  }

  /**
   * After a 401 from the request sent with `authz`: the challenge to ask again with, when the registry wants
   * another realm or scheme than the ping said, or a token expired early; undefined when asking again is useless.
   */
  retryChallenge(res: RegistryResponse, authz: string | undefined): Challenge | undefined {
    const ch = this.registryChallenge(res);
    if (!ch || ch.params.error === 'insufficient_scope') return undefined;
    return ch.scheme !== this.challenge?.scheme || !authz || ch.scheme === 'bearer' ? ch : undefined;
  }

  adopt(ch: Challenge): void {
    this.challenge = ch;
  }

  /** The Authorization value for a repository's pull scope, fetching a token when the registry wants one. */
  async authorization(repository: string, signal?: AbortSignal, forceNew = false): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') return this.basicValue();
    if (this.o.credential?.registryToken) return `Bearer ${this.o.credential.registryToken}`;
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

  /** ' (looked in ...)' for messages about missing credentials, or ''. */
  hint(): string {
    return this.o.credentialHint ? ` (looked in ${this.o.credentialHint})` : '';
  }

  private basicValue(): string | undefined {
    const c = this.o.credential;
    if (!c?.username || c.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  /** What the token exchange (token.ts) may use: the connection, and the credentials for the realm. */
  private tokenTransport(): TokenTransport {
    const o = this.o;
    return {
      registry: o.registry,
      viaHttps: Boolean(this.base?.startsWith('https:')),
      insecure: o.insecure,
      credential: o.credential,
      hint: this.hint(),
      log: o.log,
      basic: this.basicValue(),
      raw: o.raw,
      readBody: (res, limit, onTooLarge) => o.readBody(res, limit, onTooLarge),
      discard: (res) => o.discard(res),
      withRetries: (what, signal, fn) => o.withRetries(what, signal, fn),
    };
  }
}
