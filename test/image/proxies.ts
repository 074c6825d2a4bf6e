/**
 * Misbehaving network in front of a real registry, for the transport tests:
 *  - resetProxy: a TCP proxy that resets the connection after N bytes of a chosen blob's response;
 *  - frontServer: an HTTP proxy that can answer some requests itself (5xx, 429, redirects) and forwards the rest.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { request } from 'undici';

export interface ResetProxy {
  host: string;
  /** request heads (lower-cased) seen for the watched blob */
  blobRequests: string[];
  /** connections cut so far */
  cuts: number;
  close(): Promise<void>;
}

/**
 * Forwards 127.0.0.1:<port> → target; a response to `GET .../blobs/<digest>` is cut (RST) after `cutAfter`
 * bytes, for the first `times` such responses.
 */
export async function resetProxy(target: { host: string }, digest: string, cutAfter: number, times: number)
  : Promise<ResetProxy> {
  const [thost, tport] = target.host.split(':') as [string, string];
  const state: ResetProxy = { host: '', blobRequests: [], cuts: 0, close: async () => undefined };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(tport), thost);
    sockets.add(client);
    sockets.add(upstream);
    let budget = -1;
    client.on('data', (d: Buffer) => {
      const head = d.toString('latin1');
      if (head.startsWith(`GET `) && head.split('\r\n')[0]!.includes(`/blobs/${digest}`)) {
        state.blobRequests.push(head.toLowerCase());
        budget = state.cuts < times ? cutAfter : -1;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (budget >= 0) {
        if (d.length > budget) {
          client.write(d.subarray(0, budget));
          state.cuts++;
          budget = -1;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        budget -= d.length;
      }
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return state;
}

export interface FrontRequest {
  method: string;
  url: string;
  authorization: boolean;
}

export type FrontAnswer = { status: number; headers?: Record<string, string>; body?: string } | undefined;

export interface FrontServer {
  host: string;
  requests: FrontRequest[];
  close(): Promise<void>;
}

/** An HTTP server on `listenHost` that answers with `intercept(req)` when it returns something, else forwards. */
export async function frontServer(targetUrl: string, intercept: (req: http.IncomingMessage) => FrontAnswer,
  listenHost = '127.0.0.1', opts: { ignoreRange?: boolean } = {}): Promise<FrontServer> {
  const requests: FrontRequest[] = [];
  const server = http.createServer(async (req, res) => {
    requests.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization !== undefined });
    const answer = intercept(req);
    if (answer) {
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
      return;
    }
    const headers: Record<string, string> = {};
    // ignoreRange: behave like a registry (or CDN) that always answers a Range request with the whole blob
    for (const h of opts.ignoreRange ? ['authorization', 'accept'] : ['authorization', 'accept', 'range']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    try {
      const up = await request(`${targetUrl}${req.url}`, { method: req.method as 'GET', headers });
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) {
        // the registry's own redirects and challenges must name this server, not the registry
        if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
      }
      res.writeHead(up.statusCode, out);
      for await (const c of up.body) res.write(c);
      res.end();
    } catch {
      res.destroy();
    }
  });
  server.listen(0, listenHost);
  await once(server, 'listening');
  return {
    host: `${listenHost}:${(server.address() as net.AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
