/**
 * A real `docker-registry` (distribution 2.8, Debian package) on a free 127.0.0.1 port, for tests.
 *
 *   const reg = await startRegistry({ auth: 'basic', tls: true });
 *   // reg.host = "127.0.0.1:PORT", reg.caFile, reg.username, reg.password
 *   await reg.stop();
 *
 * Modes: no auth (plain HTTP unless tls), htpasswd Basic, or Bearer tokens from the tests' own token server
 * (./token-server.ts). With `tls`, the registry serves a certificate for IP:127.0.0.1/localhost signed by a
 * throw-away CA generated with openssl (`caFile`). Every registry process is killed when the test process exits,
 * even when a test forgets stop().
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTokenServer, type TestTokenServer, type TokenPolicy } from './token-server.js';

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  tls?: boolean;
  /** Basic/token credentials; a random password by default (so a log scan for it is meaningful) */
  username?: string;
  password?: string;
  /** token mode: which actions a (user, scope) gets; default: the user gets what it asks, anonymous nothing */
  tokenPolicy?: TokenPolicy;
  /** token lifetime in seconds (token mode) */
  tokenTtl?: number;
  /** more DNS names in the TLS certificate (a name only a test proxy resolves) */
  tlsNames?: string[];
}

export interface RegistryRequest {
  method: string;
  /** the request URI (path and query) */
  path: string;
  status: number;
}

export interface TestRegistry {
  /** "127.0.0.1:PORT" — what goes into image references */
  host: string;
  /** "http://127.0.0.1:PORT" or "https://..." */
  url: string;
  auth: RegistryAuth;
  tls: boolean;
  /** the registry's storage root (docker/registry/v2/... below it) */
  dataDir: string;
  /** the CA that signed the registry's certificate (tls only) */
  caFile?: string;
  username?: string;
  password?: string;
  /** the token server (token mode only) */
  tokenServer?: TestTokenServer;
  /** stdout+stderr of the registry (JSON log lines and the combined access log) */
  logFile: string;
  /** the requests the registry has answered so far, from its access log */
  requests(): Promise<RegistryRequest[]>;
  /** forget the requests logged so far (requests() then lists only later ones) */
  clearRequests(): Promise<void>;
  /** the path of a blob's data file in the registry's storage (to corrupt it) */
  blobPath(digest: string): string;
  stop(): Promise<void>;
  /** start again on the same port with the same data */
  start(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

export interface TestCerts {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A CA and a server certificate for 127.0.0.1/localhost signed by it (EC P-256: fast to generate). */
export function makeCerts(dir: string, extraNames: string[] = []): TestCerts {
  fs.mkdirSync(dir, { recursive: true });
  const p = (f: string) => path.join(dir, f);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=kmm-worker test CA', '-keyout', p('ca.key'), '-out', p('ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=127.0.0.1', '-keyout', p('server.key'), '-out', p('server.csr'));
  fs.writeFileSync(p('server.ext'),
    `subjectAltName=IP:127.0.0.1,DNS:localhost${extraNames.map((n) => `,DNS:${n}`).join('')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  ossl('x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', p('server.ext'), '-out', p('server.crt'));
  return { dir, caFile: p('ca.crt'), certFile: p('server.crt'), keyFile: p('server.key') };
}

function registryConfig(o: {
  port: number; dataDir: string; certs?: TestCerts; htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootCert: string };
}): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${o.dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${o.port}`,
    '  secret: kmm-worker-test-http-secret',
  ];
  if (o.certs) {
    lines.push('  tls:', `    certificate: ${o.certs.certFile}`, `    key: ${o.certs.keyFile}`);
  }
  if (o.htpasswd) {
    lines.push('auth:', '  htpasswd:', '    realm: kmm-test', `    path: ${o.htpasswd}`);
  }
  if (o.token) {
    lines.push('auth:', '  token:', `    realm: ${o.token.realm}`, `    service: ${o.token.service}`,
      `    issuer: ${o.token.issuer}`, `    rootcertbundle: ${o.token.rootCert}`);
  }
  return lines.join('\n') + '\n';
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  const tls = opts.tls ?? false;
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'kmm-registry-'));
  const dataDir = path.join(work, 'data');
  const logFile = path.join(work, 'registry.log');
  await fsp.mkdir(dataDir);
  const port = await freePort();
  const certs = tls ? makeCerts(path.join(work, 'certs'), opts.tlsNames) : undefined;

  let username: string | undefined;
  let password: string | undefined;
  let htpasswd: string | undefined;
  let tokenServer: TestTokenServer | undefined;
  let token: { realm: string; service: string; issuer: string; rootCert: string } | undefined;
  if (auth !== 'none') {
    username = opts.username ?? 'kmmtest';
    password = opts.password ?? `pw-${randomBytes(9).toString('hex')}`;
  }
  if (auth === 'basic') {
    htpasswd = path.join(work, 'htpasswd');
    // bcrypt is the only scheme distribution's htpasswd reader accepts
    const line = execFileSync('htpasswd', ['-Bbn', username!, password!], { encoding: 'utf8' });
    await fsp.writeFile(htpasswd, line.trim() + '\n');
  }
  if (auth === 'token') {
    tokenServer = await startTokenServer({
      dir: path.join(work, 'token'),
      users: { [username!]: password! },
      policy: opts.tokenPolicy,
      ttl: opts.tokenTtl,
    });
    token = { realm: tokenServer.realm, service: tokenServer.service, issuer: tokenServer.issuer,
      rootCert: tokenServer.certFile };
  }
  const configFile = path.join(work, 'config.yml');
  await fsp.writeFile(configFile, registryConfig({ port, dataDir, certs, htpasswd, token }));

  const host = `127.0.0.1:${port}`;
  const url = `${tls ? 'https' : 'http'}://${host}`;
  let child: ChildProcess | undefined;
  let skipLines = 0;

  const readRequests = async (): Promise<RegistryRequest[]> => {
    const text = await fsp.readFile(logFile, 'utf8').catch(() => '');
    const out: RegistryRequest[] = [];
    // combined log format: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
    const re = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) HTTP\/[\d.]+" (\d{3}) /;
    for (const l of text.split('\n')) {
      const m = re.exec(l);
      if (m) out.push({ method: m[1]!, path: m[2]!, status: Number(m[3]) });
    }
    return out;
  };

  const reg: TestRegistry = {
    host, url, auth, tls, dataDir, logFile, username, password, tokenServer,
    caFile: certs?.caFile,
    async requests() {
      // the access log line is written just after the response is sent: let it land
      let prev = -1;
      let cur = (await readRequests()).length;
      for (let i = 0; i < 10 && cur !== prev; i++) {
        await sleep(30);
        prev = cur;
        cur = (await readRequests()).length;
      }
      return (await readRequests()).slice(skipLines);
    },
    async clearRequests() {
      skipLines += (await reg.requests()).length;
    },
    blobPath(digest: string) {
      const [alg, hex] = digest.split(':');
      return path.join(dataDir, 'docker/registry/v2/blobs', alg!, hex!.slice(0, 2), hex!, 'data');
    },
    async start() {
      if (child) return;
      const fd = fs.openSync(logFile, 'a');
      // setpriv --pdeathsig: the registry dies with the test process even when that is killed by a signal
      // (tap's timeout), where the 'exit' hook below never runs
      const c = spawn('setpriv', ['--pdeathsig', 'KILL', 'docker-registry', 'serve', configFile],
        { stdio: ['ignore', fd, fd] });
      fs.closeSync(fd);
      child = c;
      live.add(c);
      c.on('exit', () => {
        live.delete(c);
        if (child === c) child = undefined;
      });
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (!child) throw new Error(`docker-registry exited at start; see ${logFile}`);
        if (await answers(url, certs?.caFile)) return;
        if (Date.now() > deadline) {
          await reg.stop();
          throw new Error(`docker-registry did not answer /v2/ within 10 s; see ${logFile}`);
        }
        await sleep(50);
      }
    },
    async stop() {
      const c = child;
      if (!c) return;
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
      child = undefined;
    },
  };

  await reg.start();
  return reg;
}

/** Whether GET /v2/ gets an HTTP answer (any status: 401 is an answer). */
async function answers(url: string, caFile?: string): Promise<boolean> {
  const request = url.startsWith('https') ? https.request : http.request;
  return new Promise((resolve) => {
    const req = request(`${url}/v2/`, { ca: caFile ? fs.readFileSync(caFile) : undefined, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/**
 * A containers-auth.json (also valid as a docker config.json) holding the registry's credentials, written to
 * `file`; returns the file's path. `form` picks `auth` (base64 user:pass, as docker login writes) or
 * `username`/`password` fields.
 */
export async function writeAuthFile(reg: Pick<TestRegistry, 'host' | 'username' | 'password'>, file: string,
  form: 'auth' | 'fields' = 'auth'): Promise<string> {
  if (!reg.username || !reg.password) throw new Error('writeAuthFile: the registry has no credentials');
  const entry = form === 'auth'
    ? { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') }
    : { username: reg.username, password: reg.password };
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, JSON.stringify({ auths: { [reg.host]: entry } }, null, 2));
  return file;
}

/**
 * A Kubernetes pull secret as the kubelet/KMM mount it: `<dir>/<name>/.dockerconfigjson` (type
 * kubernetes.io/dockerconfigjson). Returns the file's path.
 */
export async function writePullSecret(reg: Pick<TestRegistry, 'host' | 'username' | 'password'>, dir: string,
  name = 'pull-secret'): Promise<string> {
  return writeAuthFile(reg, path.join(dir, name, '.dockerconfigjson'));
}
