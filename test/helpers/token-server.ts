/**
 * The tests' own Docker registry token server (the Bearer flow of the distribution spec), in-process.
 *
 * GET <realm>?service=S&scope=repository:NAME:pull  (Basic credentials optional)  → {token, access_token, expires_in}
 * POST <realm> (form: grant_type=refresh_token|password, ...)                       → {access_token, expires_in}
 *
 * Tokens are RS256 JWTs with `x5c` = a self-signed certificate that the registry trusts as `rootcertbundle`.
 * Wrong Basic credentials get 401. What a caller may do is decided by `policy` (default: an authenticated user
 * gets every action it asks; anonymous gets none, so the registry answers 401 and the client must log in).
 */
import http from 'node:http';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface TokenScope {
  type: string;
  name: string;
  actions: string[];
}

/** The actions granted to `user` (undefined = anonymous) for one requested scope. */
export type TokenPolicy = (user: string | undefined, scope: TokenScope) => string[];

export interface TokenRequest {
  method: string;
  user: string | undefined;
  service: string | null;
  scopes: string[];
  /** what was granted, one entry per scope */
  granted: TokenScope[];
  status: number;
}

export interface TestTokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** the signing certificate (the registry's rootcertbundle) */
  certFile: string;
  /** refresh tokens accepted by POST grant_type=refresh_token (identitytoken in auth files), → user */
  refreshTokens: Map<string, string>;
  requests: TokenRequest[];
  /** every token handed out (to scan logs for them) */
  issued: string[];
  close(): Promise<void>;
}

export interface TokenServerOptions {
  dir: string;
  users: Record<string, string>;
  policy?: TokenPolicy;
  /** seconds; default 300 */
  ttl?: number;
}

const defaultPolicy: TokenPolicy = (user, scope) => (user ? scope.actions : []);

export async function startTokenServer(opts: TokenServerOptions): Promise<TestTokenServer> {
  fs.mkdirSync(opts.dir, { recursive: true });
  const keyFile = path.join(opts.dir, 'token.key');
  const certFile = path.join(opts.dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
    '/CN=kmm-worker test token issuer', '-keyout', keyFile, '-out', certFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = fs.readFileSync(keyFile);
  const der = fs.readFileSync(certFile, 'utf8').replace(/-----[^-]+-----|\s/g, '');
  const service = 'kmm-test-registry';
  const issuer = 'kmm-test-issuer';
  const ttl = opts.ttl ?? 300;
  const policy = opts.policy ?? defaultPolicy;
  const requests: TokenRequest[] = [];
  const refreshTokens = new Map<string, string>();
  const issued: string[] = [];

  const sign = (user: string | undefined, access: TokenScope[], aud: string | null) => {
    const now = Math.floor(Date.now() / 1000);
    const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${b64u({ typ: 'JWT', alg: 'RS256', x5c: [der] })}.${b64u({
      iss: issuer, sub: user ?? '', aud: aud ?? service, exp: now + ttl, nbf: now - 10, iat: now,
      jti: crypto.randomUUID(), access,
    })}`;
    return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };

  const parseScope = (s: string): TokenScope | undefined => {
    // repository:name:actions — the name may itself hold ':' only with a port, which repository names do not
    const i = s.indexOf(':');
    const j = s.lastIndexOf(':');
    if (i < 0 || j <= i) return undefined;
    return { type: s.slice(0, i), name: s.slice(i + 1, j), actions: s.slice(j + 1).split(',').filter(Boolean) };
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const params = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString()) : u.searchParams;
      const rec: TokenRequest = { method: req.method ?? 'GET', user: undefined, service: params.get('service'),
        scopes: params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean), granted: [], status: 200 };
      requests.push(rec);
      const deny = (status: number, msg: string) => {
        rec.status = status;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: msg }] }));
      };
      if (req.method === 'POST') {
        const grant = params.get('grant_type');
        if (grant === 'refresh_token') {
          rec.user = refreshTokens.get(params.get('refresh_token') ?? '');
          if (!rec.user) return deny(401, 'unknown refresh token');
        } else if (grant === 'password') {
          const user = params.get('username') ?? '';
          if (opts.users[user] === undefined || opts.users[user] !== params.get('password')) {
            return deny(401, 'bad credentials');
          }
          rec.user = user;
        } else {
          return deny(400, 'unsupported grant_type');
        }
      } else {
        const auth = req.headers.authorization ?? '';
        if (auth.startsWith('Basic ')) {
          const dec = Buffer.from(auth.slice(6), 'base64').toString();
          const k = dec.indexOf(':');
          const user = dec.slice(0, k);
          if (k < 0 || opts.users[user] === undefined || opts.users[user] !== dec.slice(k + 1)) {
            return deny(401, 'bad credentials');
          }
          rec.user = user;
        }
      }
      rec.granted = rec.scopes.map(parseScope).filter((s): s is TokenScope => !!s)
        .map((s) => ({ ...s, actions: policy(rec.user, s) }));
      const token = sign(rec.user, rec.granted, rec.service);
      issued.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // never keep a test process alive just for the token server
  server.unref();
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    refreshTokens,
    requests,
    issued,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
