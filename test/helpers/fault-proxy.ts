/**
 * A misbehaving network in front of a real registry (test/helpers/registry.ts), for the transport and hardening
 * tests. Everything here is a real socket on 127.0.0.1; the registry behind it is the real docker-registry.
 *  - resetProxy: a TCP proxy that resets the connection after N bytes (headers included) of a chosen blob's
 *    response: a reset at any byte;
 *  - frontServer: an HTTP proxy that answers some requests itself or injects a fault into them (FrontAnswer or
 *    Fault) and forwards the rest: 5xx/429 storms, redirects to a second host, resets and truncation after N
 *    body bytes, slow-loris bodies, hangs before and after the headers;
 *  - evilServer: a host that records everything it receives and answers with a Bearer challenge naming itself
 *    as the token realm: a "CDN" that tries to harvest the registry's credentials.
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

/** A fault injected into a forwarded response (or instead of it). */
export type Fault =
  /** answer HTTP 307 to `location` (a second host) */
  | { fault: 'redirect'; location: string }
  /** send the headers and `afterBytes` bytes of the body, then reset (RST) the connection */
  | { fault: 'reset'; afterBytes: number }
  /** send the headers (with the full Content-Length) and `afterBytes` bytes, then close cleanly (FIN) */
  | { fault: 'truncate'; afterBytes: number }
  /** slow-loris: the body trickles at `bytesPerSecond` (one byte at a time below 10 B/s) */
  | { fault: 'slow'; bytesPerSecond: number }
  /** accept the request and never answer */
  | { fault: 'hang-before-headers' }
  /** send the headers and `afterBytes` bytes (0 by default), then nothing more, never closing */
  | { fault: 'hang-after-headers'; afterBytes?: number };

function isFault(a: FrontAnswer | Fault): a is Fault {
  return a !== undefined && 'fault' in a;
}

export interface FrontServer {
  host: string;
  requests: FrontRequest[];
  /** body bytes forwarded from the target so far (what a registry sent through this server) */
  bodyBytes(): number;
  close(): Promise<void>;
}

/**
 * An HTTP server on `listenHost` that answers with `intercept(req)` when it returns an answer, injects the fault
 * it returns, or else forwards to `targetUrl`.
 */
export async function frontServer(targetUrl: string, intercept: (req: http.IncomingMessage) => FrontAnswer | Fault,
  listenHost = '127.0.0.1', opts: { ignoreRange?: boolean } = {}): Promise<FrontServer> {
  const requests: FrontRequest[] = [];
  let forwarded = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer(async (req, res) => {
    requests.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization !== undefined });
    const answer = intercept(req);
    if (answer && !isFault(answer)) {
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
      return;
    }
    const fault = answer;
    if (fault?.fault === 'redirect') {
      res.writeHead(307, { location: fault.location, 'content-length': '0' });
      res.end();
      return;
    }
    if (fault?.fault === 'hang-before-headers') return;
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
      res.flushHeaders();
      let sent = 0;
      for await (const c of up.body as AsyncIterable<Buffer>) {
        forwarded += c.length;
        if (!fault) {
          res.write(c);
          continue;
        }
        if (fault.fault === 'slow') {
          // a tenth of a second's worth at a time (one byte at a time below 10 B/s)
          const step = Math.max(1, Math.floor(fault.bytesPerSecond / 10));
          for (let i = 0; i < c.length; i += step) {
            if (res.destroyed) return;
            res.write(c.subarray(i, i + step));
            await new Promise<void>((r) => {
              const tm = setTimeout(() => {
                timers.delete(tm);
                r();
              }, (step * 1000) / fault.bytesPerSecond);
              timers.add(tm);
            });
          }
          continue;
        }
        const budget = (fault.fault === 'hang-after-headers' ? fault.afterBytes ?? 0 : fault.afterBytes) - sent;
        if (c.length < budget) {
          res.write(c);
          sent += c.length;
          continue;
        }
        if (budget > 0) res.write(c.subarray(0, budget));
        if (fault.fault === 'reset') res.socket?.resetAndDestroy();
        else if (fault.fault === 'truncate') res.socket?.end();
        // hang-after-headers: leave the response open with nothing more to come
        up.body.destroy();
        return;
      }
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
    bodyBytes: () => forwarded,
    close: () => new Promise<void>((r) => {
      for (const tm of timers) clearTimeout(tm);
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export interface EvilRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface EvilServer {
  host: string;
  /** everything received, headers and bodies included */
  requests: EvilRequest[];
  close(): Promise<void>;
}

/**
 * A host that answers every request with 401 and `WWW-Authenticate: Bearer realm="http://<itself>/token"`, and
 * hands out a token at /token to whoever asks: what a hostile redirect target (or a realm nobody announced) does
 * to collect credentials. It records every request, so a test can assert that nothing secret ever reached it.
 */
export async function evilServer(): Promise<EvilServer> {
  const requests: EvilRequest[] = [];
  let host = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      if (req.url!.startsWith('/token')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: 'evil-token', access_token: 'evil-token', expires_in: 300 }));
        return;
      }
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="http://${host}/token",service="evil",scope="repository:kmod:pull"`,
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    host,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
