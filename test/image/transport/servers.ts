/**
 * Small real HTTP servers on 127.0.0.1 for the transport's unit tests, and a RegistryHttp whose name lookups
 * all land on 127.0.0.1, so that a test can use a registry name that is not a loopback name.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { LookupFunction } from 'node:net';
import type { Logger } from '../../../src/log.js';
import { silentLogger } from '../../../src/log.js';
import { DEFAULT_NET_LIMITS } from '../../../src/image/net-limits.js';
import { RegistryHttp } from '../../../src/image/transport/http.js';
import { Agent } from '../../../src/image/undici-parts.js';

export interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

export interface TestServer {
  port: number;
  seen: Seen[];
  /** TLS hellos and other garbage the server could not read as HTTP */
  clientErrors: number;
  close(): Promise<void>;
}

export async function serve(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<TestServer> {
  const seen: Seen[] = [];
  const s: TestServer = { port: 0, seen, clientErrors: 0, close: () => new Promise((r) => server.close(() => r())) };
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    handle(req, res);
  });
  server.on('clientError', (_err, socket) => {
    s.clientErrors++;
    // what a plain-HTTP server answers a TLS hello with (node's own default)
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  s.port = (server.address() as import('node:net').AddressInfo).port;
  return s;
}

const toLoopback: LookupFunction = (_host, opts, cb) => {
  if ((opts as { all?: boolean }).all) (cb as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};

/** A connection whose every host name resolves to 127.0.0.1. */
export function loopbackHttp(log: Logger = silentLogger(), insecure = false): RegistryHttp {
  return new RegistryHttp({
    registry: 'test', insecure, tls: { extraCAs: [], caFiles: [] }, log, limits: DEFAULT_NET_LIMITS,
    makeDispatcher: (o) => new Agent({ ...o, connect: { ...o.connect, lookup: toLoopback } }),
  });
}
