/**
 * How the registry transport reads failures: which errors below HTTP are transient (retried), which are TLS
 * trust failures, the text of a failure's cause chain, and the `code: message` of a registry's error body.
 * The one-line messages these become are built by RegistryClient (registry-client.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { OperationError } from '../../errors.js';
import { parseReceivedJson } from '../bounded-json.js';

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
