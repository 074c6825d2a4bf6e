/**
 * Registry traffic through the proxies the node's environment names, as the kubelet and podman (Go's
 * net/http) read them: HTTPS_PROXY for https:// registries (a CONNECT tunnel), HTTP_PROXY for plain-HTTP
 * (--insecure) ones (absolute-form requests), NO_PROXY for the exceptions; upper case first, then lower case.
 * As in Go, HTTPS does not fall back to HTTP_PROXY, and loopback (localhost, 127/8, ::1) is never proxied.
 * NO_PROXY entries: host names (a name matches its subdomains too), `*`, `host:port`, and IP CIDRs (for a
 * registry given by address). The tunnels and forwarding are undici's own agents (EnvHttpProxyAgent).
 * A proxy URL can hold credentials: only `redactProxy(url)` ever reaches a log line or a message.
 */
import net from 'node:net';
import { createRequire } from 'node:module';
import type { Dispatcher, EnvHttpProxyAgent as UndiciEnvHttpProxyAgent } from 'undici';
import { OperationError, UsageError } from '../errors.js';
import { isLoopbackHost } from './reference.js';
import { Agent, type AgentOptions } from './undici-parts.js';

export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  /** NO_PROXY as given */
  noProxy: string;
}

function envAny(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n]?.trim();
    if (v) return v;
  }
  return undefined;
}

/** A proxy variable's URL (scheme added as Go does); a malformed one is a UsageError that does not echo it. */
function proxyUrl(env: NodeJS.ProcessEnv, upper: string): string | undefined {
  const v = envAny(env, upper, upper.toLowerCase());
  if (!v) return undefined;
  const u = /^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `http://${v}`;
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new UsageError(`${upper} (or ${upper.toLowerCase()}) is not a proxy URL (expected http://host:port)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`${upper}: proxy scheme ${parsed.protocol} is not supported (http:// or https://)`);
  }
  return u;
}

/** The proxy settings of the environment; undefined when no proxy is set. */
export function proxySettings(env: NodeJS.ProcessEnv = process.env): ProxySettings | undefined {
  const httpProxy = proxyUrl(env, 'HTTP_PROXY');
  const httpsProxy = proxyUrl(env, 'HTTPS_PROXY');
  if (!httpProxy && !httpsProxy) return undefined;
  return { httpProxy, httpsProxy, noProxy: envAny(env, 'NO_PROXY', 'no_proxy') ?? '' };
}

/** The proxy URL without user name and password (for log lines and messages). */
export function redactProxy(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

/** Whether a registry endpoint (host[:port]) goes direct whatever the proxy settings: loopback, or NO_PROXY's CIDRs. */
export function bypassesProxy(endpoint: string, s: ProxySettings): boolean {
  if (isLoopbackHost(endpoint)) return true;
  const host = endpoint.startsWith('[') ? endpoint.slice(1, endpoint.indexOf(']')) : endpoint.replace(/:\d+$/, '');
  const family = net.isIP(host);
  if (!family) return false;
  const blocks = new net.BlockList();
  for (const entry of s.noProxy.split(/[\s,]+/)) {
    const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(entry);
    const f = m ? net.isIP(m[1]!) : 0;
    if (m && f) blocks.addSubnet(m[1]!, Number(m[2]), f === 6 ? 'ipv6' : 'ipv4');
  }
  return blocks.check(host, family === 6 ? 'ipv6' : 'ipv4');
}

const require = createRequire(import.meta.url);
/**
 * undici's index, loaded only when a proxy is set (most nodes have none; see undici-parts.ts for its memory cost):
 * the proxy agents need the `connect` API the index adds to every dispatcher.
 */
const envProxyAgent = () => (require('undici') as { EnvHttpProxyAgent: typeof UndiciEnvHttpProxyAgent }).EnvHttpProxyAgent;

/** Sends https:// requests to one dispatcher and http:// ones to another. */
class BySchemeDispatcher {
  constructor(private readonly https: Dispatcher, private readonly http: Dispatcher) {}

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(opts.origin ?? '');
    return (origin.startsWith('https:') ? this.https : this.http).dispatch(opts, handler);
  }

  async close(): Promise<void> {
    await Promise.all([this.https.close(), this.http.close()]);
  }

  async destroy(err?: Error): Promise<void> {
    await Promise.all([this.https.destroy(err ?? null), this.http.destroy(err ?? null)]);
  }
}

/**
 * A dispatcher for one registry client: undici's EnvHttpProxyAgent for the scheme that has a proxy (with the
 * client's TLS settings for the registry inside the tunnel), a plain Agent otherwise.
 */
export function proxyDispatcher(agentOpts: AgentOptions, s: ProxySettings): Dispatcher {
  // loopback hosts are added to NO_PROXY so a token server on loopback is not proxied either
  const noProxy = [s.noProxy, 'localhost', '127.0.0.1', '::1'].filter(Boolean).join(',');
  const EnvHttpProxyAgent = envProxyAgent();
  const through = (proxy: string | undefined) => proxy
    ? new EnvHttpProxyAgent({ ...agentOpts, requestTls: agentOpts.connect as never, httpProxy: proxy, httpsProxy: proxy, noProxy })
    : new Agent(agentOpts);
  return new BySchemeDispatcher(through(s.httpsProxy), through(s.httpProxy)) as unknown as Dispatcher;
}

function causeTexts(err: unknown): string[] {
  const out: string[] = [];
  for (let e = err as { message?: unknown; cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i++) {
    if (typeof e.message === 'string') out.push(e.message);
  }
  return out;
}

/**
 * A failure that was the proxy's, as a one-line error naming the proxy (never its credentials): a refused
 * CONNECT, or a proxy that cannot be reached. Undefined when the failure was not the proxy's.
 */
export function proxyFailure(err: unknown, s: ProxySettings, registry: string, endpoint: string): OperationError | undefined {
  const texts = causeTexts(err);
  const refused = texts.map((t) => /Proxy response \((\d+)\) !== 200 when HTTP Tunneling/.exec(t)).find(Boolean);
  if (refused && s.httpsProxy) {
    return new OperationError(`registry ${registry}: the proxy ${redactProxy(s.httpsProxy)} refused to open a tunnel ` +
      `to ${endpoint} (HTTP ${refused[1]}${refused[1] === '407' ? ': proxy credentials missing or rejected' : ''})`, { located: true, cause: err });
  }
  for (const proxy of [s.httpsProxy, s.httpProxy]) {
    if (!proxy) continue;
    const u = new URL(proxy);
    const hostPort = `${u.hostname.replace(/^\[|\]$/g, '')}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
    if (texts.some((t) => /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH/.test(t) && t.includes(u.hostname.replace(/^\[|\]$/g, '')))) {
      return new OperationError(`registry ${registry}: cannot reach the proxy ${redactProxy(proxy)} (${hostPort})`, { located: true, cause: err });
    }
  }
  return undefined;
}
