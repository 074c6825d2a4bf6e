/**
 * The two parts of undici the registry client uses, `Agent` and `request`, loaded from undici's own files rather
 * than from its index. The index also loads fetch, WebSocket, EventSource, the cache stores, the mocks and every
 * proxy agent: measured on Node 24, importing the index takes a process from 41 to 69 MiB of RSS, these two
 * parts to 56 MiB. That difference is a tenth of a worker pod's 128 MiB limit.
 */
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';

const require = createRequire(import.meta.url);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
export type Agent = UndiciAgent;
export type AgentOptions = UndiciAgent.Options;

type ApiRequest = (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
const apiRequest = require('undici/lib/api/api-request.js') as ApiRequest;

/** undici's `request(url, { dispatcher, ... })`, with the dispatcher always given. */
export function request(
  url: string | URL,
  opts: { dispatcher: Dispatcher; method: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string;
    signal?: AbortSignal },
): Promise<Dispatcher.ResponseData> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher, ...rest } = opts;
  return apiRequest.call(dispatcher, { ...rest, origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname });
}
