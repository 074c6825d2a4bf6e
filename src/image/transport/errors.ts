/**
 * How the registry transport reads failures: which errors below HTTP are transient (retried), which are TLS
 * trust failures, the text of a failure's cause chain, and the `code: message` of a registry's error body.
 * and the one-line messages a failed request becomes (below HTTP, or a status the caller does not take).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCodes, OperationError } from '../../errors.js';
import { messages } from '../../messages.js';
import { parseReceivedJson } from '../bounded-json.js';
import type { Challenge } from '../challenge.js';

const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'KMM_STALLED',
]);

const CERT_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH/;

export function errorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

export function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (typeof e.message === 'string' && e.message && !parts.includes(e.message)) parts.push(e.message);
  }
  // OpenSSL messages span lines; failures are reported on one
  return (parts.join(': ') || String(err)).replace(/\s+/g, ' ').trim();
}

export function isRetryableError(err: unknown): boolean {
  if (err instanceof OperationError) return false;
  const code = errorCode(err);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

export function isCertificateError(err: unknown): boolean {
  const code = errorCode(err) ?? '';
  return CERT_CODES.test(code);
}

export function stripQuery(u: string): string {
  const i = u.search(/[?#]/);
  return i < 0 ? u : u.slice(0, i);
}

export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The `code: message` of a registry error body, if it has one (distribution's {"errors": [...]}). */
export function registryErrorText(body: Buffer | undefined): string | undefined {
  try {
    const doc = parseReceivedJson(body?.toString('utf8') ?? '', 'error body') as
      { errors?: Array<{ code?: unknown; message?: unknown }> };
    const e = doc.errors?.[0];
    // a registry's words go into a one-line message: strings only, no line breaks, bounded
    const words = [e?.code, e?.message].filter((w): w is string => typeof w === 'string' && w !== '')
      // control characters (ANSI escapes) from a registry must not reach a terminal or an Event
      .map((w) => w.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 300));
    if (words.length) return words.join(': ');
  } catch {
    // not JSON (or cut short): the status says enough
  }
  return undefined;
}

export class HttpStatusError extends Error {
  constructor(readonly statusCode: number, readonly retryAfter?: string) {
    super(`HTTP ${statusCode}`);
  }
}

/** A one-line error for a failure below HTTP (connection, TLS) of a request to `registry` at `endpoint`. */
export function networkError(registry: string, endpoint: string, err: unknown, what: string, tries: number): Error {
  if (err instanceof OperationError || (err instanceof Error && err.name === 'AbortError')) return err;
  if (isCertificateError(err)) {
    return new OperationError(messages.tlsUntrusted(registry, endpoint, errorText(err)), { cause: err });
  }
  if (/wrong version number|packet length too long/i.test(errorText(err))) {
    return new OperationError(messages.plainHttp(registry), { cause: err });
  }
  const t = tries > 1 ? ` after ${tries} tries` : '';
  return new OperationError(`registry ${registry}: ${what} failed${t}: ${errorText(err)}`, { located: true, cause: err });
}

/** What is known of a request the registry answered with a status the caller does not take. */
export interface StatusFailure {
  registry: string;
  repository: string;
  what: string;
  statusCode: number;
  /** the registry's error body, as `code: message` */
  detail: string | undefined;
  /** the registry's own challenge on a 401 */
  challenge: Challenge | undefined;
  /** the credentials found for the registry, if any (only their source is named) */
  credential: { source: string } | undefined;
  /** where credentials were looked for (' (looked in ...)' or '') */
  hint: string;
  /** the request carried an Authorization header */
  hadAuth: boolean;
}

/** The one line for a failed status: on a 401, what the user can do about the credentials. */
export function statusError(f: StatusFailure): OperationError {
  const { registry, repository, challenge: ch, credential: cred, hadAuth } = f;
  const d = f.detail ? ` (${f.detail})` : '';
  if (f.statusCode === 401) {
    if ((ch?.params.error === 'insufficient_scope' || ch?.scheme === 'bearer') && !cred) {
      return new OperationError(`registry ${registry}: anonymous pull of ${repository} denied and no ` +
        `credentials were found for it${f.hint}`, { located: true, code: ErrorCodes.registryDenied });
    }
    if (ch?.params.error === 'insufficient_scope' || (ch?.scheme === 'bearer' && hadAuth)) {
      return new OperationError(`registry ${registry}: pull access to ${repository} denied: the token ` +
        `does not grant 'pull' on it (insufficient scope)${cred ? ` with the credentials from ${cred.source}` : ''}`, { located: true, code: ErrorCodes.registryDenied });
    }
    if (cred && !hadAuth) {
      return new OperationError(`registry ${registry} wants Basic authentication for ${repository}, but the ` +
        `credentials from ${cred.source} hold no username and password`, { located: true, code: ErrorCodes.registryDenied });
    }
    if (cred && hadAuth) {
      return new OperationError(`registry ${registry}: authentication failed for ${repository}: the ` +
        `credentials from ${cred.source} were rejected`, { located: true, code: ErrorCodes.registryDenied });
    }
    return new OperationError(`registry ${registry} requires authentication for ${repository} and no ` +
      `credentials were found for it${f.hint}`, { located: true, code: ErrorCodes.registryDenied });
  }
  if (f.statusCode === 403) {
    return new OperationError(`registry ${registry}: access to ${repository} denied (HTTP 403)${d}`, { located: true, code: ErrorCodes.registryDenied });
  }
  const code = f.statusCode === 404 ? ErrorCodes.imageNotFound : ErrorCodes.operation;
  return new OperationError(`registry ${registry}: ${f.what}: HTTP ${f.statusCode}${d}`, { located: true, code });
}
