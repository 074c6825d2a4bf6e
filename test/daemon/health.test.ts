import t from 'tap';
import { parseHealthAddr, startHealthServer } from '../../src/daemon/health.js';
import { UsageError } from '../../src/errors.js';

t.test('--health-addr forms', async (t) => {
  t.same(parseHealthAddr('127.0.0.1:8081'), { host: '127.0.0.1', port: 8081 });
  t.same(parseHealthAddr(':8081'), { host: '0.0.0.0', port: 8081 }, 'empty host = every interface');
  t.same(parseHealthAddr('[::1]:9000'), { host: '::1', port: 9000 });
  t.same(parseHealthAddr('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['8081', 'localhost', '127.0.0.1:99999', '127.0.0.1:http', '::1:80', '']) {
    t.throws(() => parseHealthAddr(bad), UsageError, `'${bad}' is a usage error`);
  }
});

t.test('/healthz and /readyz follow the status; a taken port is an operation error naming it', async (t) => {
  let reason: string | null = 'loading';
  const srv = await startHealthServer({ host: '127.0.0.1', port: 0 }, { live: () => true, notReadyReason: () => reason });
  t.teardown(() => srv.close());
  const get = async (p: string, method = 'GET') => {
    const r = await fetch(srv.url + p, { method });
    return [r.status, await r.text()];
  };
  t.same(await get('/healthz'), [200, 'ok\n']);
  t.same(await get('/readyz'), [503, 'not ready: loading\n']);
  reason = null;
  t.same(await get('/readyz'), [200, 'ok\n']);
  t.same(await get('/readyz', 'HEAD'), [200, '']);
  t.same(await get('/readyz', 'POST'), [405, 'method not allowed\n']);
  t.same(await get('/metrics'), [404, 'not found\n']);
  const port = Number(new URL(srv.url).port);
  await t.rejects(startHealthServer({ host: '127.0.0.1', port }, { live: () => true, notReadyReason: () => null }),
    { name: 'OperationError', message: new RegExp(`--health-addr 127.0.0.1:${port}: cannot listen \\(EADDRINUSE\\)`) });
});
