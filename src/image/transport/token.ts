/**
 * The Bearer token exchange of the distribution spec's token auth: the realm of the registry's challenge is
 * asked for a pull token of one scope (anonymous, with Basic credentials, or with an OAuth2 refresh token);
 * credentials never cross the network in clear text to a registry reached over verified TLS. The cache of
 * tokens per scope is auth.ts's, which hands this its transport.
 */
import { OperationError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { parseReceivedJson } from '../bounded-json.js';
import type { Challenge } from '../challenge.js';
import type { Credential } from '../credentials.js';
import type { RegistryResponse } from './http.js';
import { HttpStatusError, header } from './errors.js';

/** A token response is a JWT or two in a small JSON object; a few KiB in practice. */
export const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;

export interface CachedToken {
  value: string;
  expiresAt: number;
}

export interface TokenTransport {
  registry: string;
  /** the registry is reached over verified HTTPS */
  viaHttps: boolean;
  insecure: boolean;
  credential: Credential | undefined;
  /** where credentials were looked for, for messages (' (looked in ...)' or '') */
  hint: string;
  log: Logger;
  /** the Basic Authorization value of the credentials, if any */
  basic: string | undefined;
  raw(method: string, url: string | URL, headers: Record<string, string>, signal?: AbortSignal, body?: string): Promise<RegistryResponse>;
  readBody(res: RegistryResponse, limit: number, onTooLarge?: () => Error): Promise<Buffer>;
  discard(res: RegistryResponse): Promise<void>;
  withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T>;
}

export async function fetchToken(t: TokenTransport, ch: Challenge, scope: string, signal?: AbortSignal): Promise<CachedToken> {
  const realm = ch.params.realm;
  if (!realm) throw new OperationError(`registry ${t.registry}: Bearer challenge without a realm`, { located: true });
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new OperationError(`registry ${t.registry}: Bearer challenge with an invalid realm`, { located: true });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new OperationError(`registry ${t.registry}: Bearer challenge with an invalid realm`, { located: true });
  }
  const cred = t.credential;
  if (cred && url.protocol === 'http:' && t.viaHttps && !t.insecure) {
    // a registry reached over verified TLS must not have its credentials cross the network in clear text
    throw new OperationError(`registry ${t.registry} is reached over HTTPS but names a plain-HTTP token realm ` +
      `(${url.host}); the credentials from ${cred.source} are not sent unencrypted (insecurePull: true or --insecure ` +
      `allows it)`, { located: true });
  }
  const what = `token request to ${url.host}`;
  const tooLarge = () => new OperationError(`registry ${t.registry}: the token server ${url.host} sent a response ` +
    `larger than ${MAX_TOKEN_RESPONSE_BYTES} bytes`, { located: true });
  const res = await t.withRetries(what, signal, async () => {
    let r: RegistryResponse;
    if (cred?.identityToken) {
      // docker's identitytoken is an OAuth2 refresh token, exchanged with a POST
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken,
        client_id: 'kmm-worker', scope });
      if (ch.params.service) form.set('service', ch.params.service);
      r = await t.raw('POST', url, { 'content-type': 'application/x-www-form-urlencoded' }, signal, form.toString());
    } else {
      const u = new URL(url);
      if (ch.params.service) u.searchParams.set('service', ch.params.service);
      u.searchParams.set('scope', scope);
      const basic = t.basic;
      r = await t.raw('GET', u.href, basic ? { authorization: basic } : {}, signal);
    }
    if (r.statusCode >= 500 || r.statusCode === 429) {
      await t.discard(r);
      throw new HttpStatusError(r.statusCode, header(r.headers, 'retry-after'));
    }
    // the body is read inside the retries: a token response that stalls is retried like a reset
    return { r, body: r.statusCode === 200 ? await t.readBody(r, MAX_TOKEN_RESPONSE_BYTES, tooLarge) : undefined };
  }).then(({ r, body }) => ({ ...r, text: body }));
  if (res.statusCode === 401 || res.statusCode === 403) {
    await t.discard(res);
    throw new OperationError(cred
      ? `registry ${t.registry}: the token server ${url.host} rejected the credentials from ${cred.source} (HTTP ${res.statusCode})`
      : `registry ${t.registry}: the token server ${url.host} refused anonymous access (HTTP ${res.statusCode}); ` +
        `no credentials found for ${t.registry}${t.hint}`);
  }
  if (res.statusCode !== 200) {
    await t.discard(res);
    throw new OperationError(`registry ${t.registry}: the token server ${url.host} answered HTTP ${res.statusCode}`, { located: true });
  }
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    doc = parseReceivedJson(res.text!.toString('utf8'), `registry ${t.registry}: the token response of ${url.host}`) as
      typeof doc;
  } catch (err) {
    if (err instanceof OperationError) throw err;
    throw new OperationError(`registry ${t.registry}: the token server ${url.host} sent no JSON token`, { located: true });
  }
  if (!doc || typeof doc !== 'object') {
    throw new OperationError(`registry ${t.registry}: the token server ${url.host} sent no JSON token`, { located: true });
  }
  const value = typeof doc.token === 'string' && doc.token ? doc.token
    : typeof doc.access_token === 'string' ? doc.access_token : '';
  if (!value) throw new OperationError(`registry ${t.registry}: the token server ${url.host} sent no token`, { located: true });
  // the spec's default lifetime is 60 s; renew a little early so a token never expires mid-request
  const secs = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
  const issued = typeof doc.issued_at === 'string' ? Date.parse(doc.issued_at) : NaN;
  const start = Number.isFinite(issued) && issued <= Date.now() ? issued : Date.now();
  t.log.debug({ registry: t.registry, scope, expiresIn: secs }, 'obtained a registry token');
  return { value, expiresAt: start + Math.max(secs - 10, secs / 2) * 1000 };
}
