/**
 * A hostile registry or network (issue 14 F1, F3, F10): a redirect target that asks for credentials, stalls
 * before and after the headers and slow-loris bodies, and documents built to exhaust memory or the stack. The
 * registry behind the fault proxy is the real docker-registry; the proxy and the evil host are real sockets.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { evilServer, frontServer } from '../helpers/fault-proxy.js';
import { allStderr, cli, errorLine } from './cli.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-hostile-registry-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-hostile') });

t.test('F1: a redirect target that answers 401 with its own challenge gets no credentials', async (t) => {
  for (const auth of ['basic', 'token'] as const) {
    const reg = await startRegistry({ auth });
    t.teardown(() => reg.stop());
    await pushImage(img, reg, 'kmod:v1');
    const evil = await evilServer();
    t.teardown(() => evil.close());
    // the registry sends every blob to a "CDN" on another host
    const front = await frontServer(reg.url, (req) => {
      const m = /\/blobs\/(sha256:[a-f0-9]+)/.exec(req.url!);
      return m && req.method === 'GET' ? { fault: 'redirect', location: `http://${evil.host}/cdn/${m[1]}?sig=x` } : undefined;
    });
    t.teardown(() => front.close());
    const authFile = await writeAuthFile({ ...reg, host: front.host }, path.join(work, `${auth}-auth.json`));
    const r = await cli(['--auth-file', authFile, 'image', 'inspect', `${front.host}/kmod:v1`]);
    t.equal(r.code, 1, `${auth}: exit 1`);
    t.match(errorLine(r.stderr), new RegExp(`^registry ${front.host}: download of blob sha256:[a-f0-9]{64}: HTTP 401 from ` +
      `${evil.host}, where the registry redirected it; its authentication challenge is not answered \\(credentials ` +
      `go only to the registry and the token realm it announced\\)$`), `${auth}: the line names the host`);
    t.ok(front.requests.some((q) => q.url.includes('/manifests/') && q.authorization), `${auth}: the registry got credentials`);
    t.ok(evil.requests.length >= 1, `${auth}: the redirect was followed`);
    t.same(evil.requests.filter((q) => q.url.startsWith('/token')).map((q) => q.url), [], `${auth}: the evil realm was never asked for a token`);
    t.same(evil.requests.filter((q) => q.headers.authorization !== undefined).map((q) => q.headers.authorization), [],
      `${auth}: no Authorization ever reached the evil host`);
    const basic = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    const everything = JSON.stringify(evil.requests);
    t.notOk(everything.includes(basic) || everything.includes(reg.password!), `${auth}: the password never reached it`);
    for (const tok of reg.tokenServer?.issued ?? []) t.notOk(everything.includes(tok), `${auth}: no registry token reached it`);
  }
});

t.test('no credential in any log line', async (t) => {
  t.notMatch(allStderr.join('\n'), /(Basic|Bearer) [A-Za-z0-9+/=_.-]{8,}/);
});
