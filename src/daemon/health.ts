/**
 * `/healthz` and `/readyz` for the kubelet's probes (docs/daemon.md). Liveness says the process still serves;
 * readiness says the wanted module is loaded and live — a probe, a Service or an operator can wait on it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperationError, UsageError } from '../errors.js';

export interface HealthAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, `[v6]:PORT`, or `:PORT` (every interface, as Go's listeners read it). */
export function parseHealthAddr(value: string): HealthAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--health-addr must be HOST:PORT (e.g. 127.0.0.1:8081, :8081, [::1]:8081), got '${value}'`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}

export interface HealthStatus {
  /** false only when the daemon cannot serve any more */
  live(): boolean;
  /** null when ready, else why not (shown in the 503 body) */
  notReadyReason(): string | null;
}

export interface HealthServer {
  /** e.g. http://127.0.0.1:8081 */
  url: string;
  close(): Promise<void>;
}

export async function startHealthServer(addr: HealthAddress, status: HealthStatus): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const reply = (code: number, text: string) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : `${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed');
    if (path === '/healthz' || path === '/livez') return status.live() ? reply(200, 'ok') : reply(503, 'not live');
    if (path === '/readyz') {
      const why = status.notReadyReason();
      return why === null ? reply(200, 'ok') : reply(503, `not ready: ${why}`);
    }
    reply(404, 'not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new OperationError(`--health-addr ${addr.host}:${addr.port}: cannot listen (${err.code ?? err.message})`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
