/**
 * A small forward proxy for the proxy tests (not a fault injector): CONNECT tunnels for https:// and
 * absolute-form requests for http://, on 127.0.0.1. Every host name it is asked for resolves to 127.0.0.1, so a
 * registry named `kmm-registry.invalid:PORT` (which nothing else can resolve) is reachable only through it: a
 * passing test proves the traffic went through the proxy, and `passed` says what went through.
 *
 *   const proxy = await startConnectProxy({ username: 'u', password: 'p' });
 *   // HTTPS_PROXY=proxy.urlWithCredentials; proxy.passed = [{ method: 'CONNECT', target: 'host:port', ... }]
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

export interface ProxiedRequest {
  method: string;
  /** CONNECT: host:port; otherwise the absolute URL asked for */
  target: string;
  /** the Proxy-Authorization header decoded ("user:password"), or undefined */
  credentials?: string;
  /** what the proxy answered (200 for an open tunnel) */
  status: number;
}

export interface ConnectProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** http://user:password@127.0.0.1:PORT when credentials are required */
  urlWithCredentials: string;
  host: string;
  passed: ProxiedRequest[];
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** require these (Basic, Proxy-Authorization); 407 otherwise */
  username?: string;
  password?: string;
  /** answer every CONNECT with this status instead of opening a tunnel (a proxy whose policy refuses) */
  refuseConnect?: number;
}

function credentialsOf(req: http.IncomingMessage): string | undefined {
  const h = req.headers['proxy-authorization'];
  const m = typeof h === 'string' ? /^Basic\s+(\S+)$/i.exec(h) : null;
  return m ? Buffer.from(m[1]!, 'base64').toString('utf8') : undefined;
}

export async function startConnectProxy(opts: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const passed: ProxiedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const want = opts.username ? `${opts.username}:${opts.password ?? ''}` : undefined;
  const allowed = (req: http.IncomingMessage) => !want || credentialsOf(req) === want;

  const server = http.createServer((req, res) => {
    const target = req.url ?? '';
    const entry: ProxiedRequest = { method: req.method ?? '', target, credentials: credentialsOf(req), status: 0 };
    passed.push(entry);
    if (!allowed(req)) {
      entry.status = 407;
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test-proxy"' }).end();
      return;
    }
    let u: URL;
    try {
      u = new URL(target);
    } catch {
      entry.status = 400;
      res.writeHead(400).end('absolute-form request expected');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const up = http.request({ host: '127.0.0.1', port: Number(u.port || 80), method: req.method, path: `${u.pathname}${u.search}`,
      headers }, (upRes) => {
      entry.status = upRes.statusCode ?? 0;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      entry.status = 502;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });

  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const target = req.url ?? '';
    const entry: ProxiedRequest = { method: 'CONNECT', target, credentials: credentialsOf(req), status: 0 };
    passed.push(entry);
    const reply = (status: number, text: string) => {
      entry.status = status;
      client.end(`HTTP/1.1 ${status} ${text}\r\n${status === 407 ? 'Proxy-Authenticate: Basic realm="test-proxy"\r\n' : ''}\r\n`);
    };
    if (!allowed(req)) return reply(407, 'Proxy Authentication Required');
    if (opts.refuseConnect) return reply(opts.refuseConnect, 'Refused by policy');
    const port = Number(target.slice(target.lastIndexOf(':') + 1));
    const up = net.connect(port, '127.0.0.1');
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => {
      if (entry.status === 0) reply(502, 'Bad Gateway');
      else client.destroy();
    });
    up.on('connect', () => {
      entry.status = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    client.on('close', () => up.destroy());
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const cred = opts.username ? `${encodeURIComponent(opts.username)}:${encodeURIComponent(opts.password ?? '')}@` : '';
  return {
    url: `http://${host}`,
    urlWithCredentials: `http://${cred}${host}`,
    host,
    passed,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
