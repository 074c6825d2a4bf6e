/**
 * Redirects of registry requests, followed by hand (undici's own handler would keep the headers): the
 * Authorization header goes only to the origin the request was made to, never to the host a redirect names
 * (a CDN, object storage with a signed URL). A failure answered by such a host is named as such and its
 * challenge is not followed (security rule F1).
 */
import { OperationError } from '../../errors.js';
import { header, stripQuery } from './errors.js';
import type { RawRequest, RegistryResponse } from './http.js';

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface RedirectTransport {
  registry: string;
  raw: RawRequest;
  discard(res: RegistryResponse): Promise<void>;
}

/** One request, following up to MAX_REDIRECTS redirects; `authz` is sent only to `url`'s own origin. */
export async function followRedirects(t: RedirectTransport, method: string, url: string, headers: Record<string, string>,
  authz: string | undefined, signal?: AbortSignal): Promise<RegistryResponse> {
  const origin = new URL(url).origin;
  let current = url;
  for (let hops = 0; ; hops++) {
    const h = { ...headers };
    if (authz && new URL(current).origin === origin) h.authorization = authz;
    const res = await t.raw(method, current, h, signal);
    const location = header(res.headers, 'location');
    if (!REDIRECT_STATUSES.has(res.statusCode) || !location) return res;
    await t.discard(res);
    if (hops >= MAX_REDIRECTS) {
      throw new OperationError(`registry ${t.registry}: more than ${MAX_REDIRECTS} redirects for ${stripQuery(url)}`, { located: true });
    }
    current = new URL(location, current).href;
  }
}

/** A failure answered by a host the registry redirected to: named as such, and its challenge not followed. */
export async function redirectTargetError(registry: string, res: RegistryResponse, what: string): Promise<OperationError> {
  await res.body.dump().catch(() => undefined);
  const host = new URL(res.url).host;
  const why = res.statusCode === 401
    ? '; its authentication challenge is not answered (credentials go only to the registry and the token realm it announced)'
    : '';
  return new OperationError(`registry ${registry}: ${what}: HTTP ${res.statusCode} from ${host}, where the ` +
    `registry redirected it${why}`, { located: true });
}
