/**
 * transport/ping.ts: scheme discovery. HTTPS is tried first; plain HTTP only with --insecure or for a loopback
 * registry; the ping's 401 challenge (Bearer before Basic) is what auth starts from; one ping per client.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { messages } from '../../../src/messages.js';
import { silentLogger, type Logger } from '../../../src/log.js';
import { withRetries } from '../../../src/image/transport/retry.js';
import { ping, SchemeDiscovery, type PingTransport } from '../../../src/image/transport/ping.js';
import type { RegistryHttp } from '../../../src/image/transport/http.js';
import { loopbackHttp, serve } from './servers.js';

const FAST = { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 };

function transport(conn: RegistryHttp, endpoint: string, insecure: boolean, log: Logger = silentLogger()): PingTransport {
  return {
    registry: endpoint, endpoint, insecure, log, raw: conn.raw, discard: (r) => conn.discard(r),
    withRetries: (what, signal, fn) => withRetries({ registry: endpoint, endpoint, log, policy: FAST }, what, signal, fn),
  };
}

const registry = await serve((_req, res) => res.writeHead(401, {
  'www-authenticate': ['Basic realm="r"', 'Bearer realm="https://auth.example/token",service="reg"'],
}).end());
t.teardown(() => registry.close());
const conn = loopbackHttp(silentLogger(), true);
t.teardown(() => conn.close());

t.test('a plain-HTTP registry under a non-loopback name without --insecure: HTTPS only, one-line hint', async (t) => {
  const strict = loopbackHttp();
  t.teardown(() => strict.close());
  const before = registry.seen.length;
  const endpoint = `registry.test:${registry.port}`;
  await t.rejects(ping(transport(strict, endpoint, false)), { message: messages.plainHttp(endpoint) });
  t.equal(registry.seen.length, before, 'no plain-HTTP request was made');
  t.ok(registry.clientErrors > 0, 'the server saw the TLS hello');
});

t.test('with --insecure: HTTPS first, then plain HTTP, and the Bearer challenge', async (t) => {
  const tlsBefore = registry.clientErrors;
  const before = registry.seen.length;
  const endpoint = `registry.test:${registry.port}`;
  const found = await ping(transport(conn, endpoint, true));
  t.equal(found.base, `http://${endpoint}`);
  t.same(found.challenge, { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg' } });
  t.equal(registry.clientErrors, tlsBefore + 1, 'one HTTPS try, not retried');
  t.same(registry.seen.slice(before).map((s) => `${s.method} ${s.url}`), ['GET /v2/']);
});

t.test('a loopback registry may speak plain HTTP without --insecure', async (t) => {
  const strict = loopbackHttp();
  t.teardown(() => strict.close());
  const found = await ping(transport(strict, `127.0.0.1:${registry.port}`, false));
  t.equal(found.base, `http://127.0.0.1:${registry.port}`);
});

t.test('no challenge when the registry lets anonymous clients in', async (t) => {
  const open = await serve((_req, res) => res.end('{}'));
  t.teardown(() => open.close());
  const found = await ping(transport(conn, `127.0.0.1:${open.port}`, false));
  t.equal(found.challenge, undefined);
});

t.test('SchemeDiscovery: concurrent first requests share one ping; --insecure is warned about once', async (t) => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } }));
  const before = registry.seen.length;
  const d = new SchemeDiscovery(transport(conn, `127.0.0.1:${registry.port}`, true, log));
  const [a, b] = await Promise.all([d.discover(), d.discover()]);
  const c = await d.discover();
  t.equal(a, b);
  t.equal(a, c);
  t.equal(registry.seen.length - before, 1, 'one GET /v2/');
  t.equal(lines.filter((l) => l.includes('insecure pull')).length, 1);
});
