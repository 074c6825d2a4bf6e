/**
 * Registry traffic through HTTPS_PROXY / HTTP_PROXY / NO_PROXY: real registries on loopback named
 * `kmm-registry.invalid:PORT`, a name only the test proxy (test/helpers/connect-proxy.ts) resolves, so a pull
 * that works went through the proxy. CONNECT for HTTPS (the registry's certificate verified inside the tunnel),
 * absolute-form for plain HTTP on --insecure; NO_PROXY and loopback go direct; proxy credentials never logged.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { cli, errorLine, allStderr } from './cli.js';

const NAME = 'kmm-registry.invalid';
const PROXY_PASSWORD = 'proxy-secret-7f3a9c';
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-proxy-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-test') });

const tlsReg = await startRegistry({ auth: 'basic', tls: true, tlsNames: [NAME] });
t.teardown(() => tlsReg.stop());
const plainReg = await startRegistry();
t.teardown(() => plainReg.stop());
const digest = await pushImage(img, tlsReg, 'kmod:v1');
await pushImage(img, plainReg, 'kmod:v1');
const tlsName = `${NAME}:${tlsReg.host.split(':')[1]}`;
const plainName = `${NAME}:${plainReg.host.split(':')[1]}`;

const proxy = await startConnectProxy({ username: 'corp-user', password: PROXY_PASSWORD });
t.teardown(() => proxy.close());
const refusing = await startConnectProxy({ refuseConnect: 403 });
t.teardown(() => refusing.close());

// the TLS registry's CA and credentials, under the name the proxy resolves
const root = await fs.mkdtemp(path.join(work, 'root-'));
await fs.mkdir(path.join(root, 'etc/containers/certs.d', tlsName), { recursive: true });
await fs.copyFile(tlsReg.caFile!, path.join(root, 'etc/containers/certs.d', tlsName, 'ca.crt'));
const authFile = await writeAuthFile({ ...tlsReg, host: tlsName }, path.join(work, 'auth.json'));
const NO_ENV_PROXY = { HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };

const inspect = (ref: string, env: Record<string, string>, ...more: string[]) =>
  cli(['--host-root', root, '--auth-file', authFile, 'image', 'inspect', ref, '--json', ...more], { ...NO_ENV_PROXY, ...env });

t.test('HTTPS through a CONNECT tunnel, with proxy credentials and the registry\'s CA verified inside', async (t) => {
  for (const env of [{ HTTPS_PROXY: proxy.urlWithCredentials }, { https_proxy: proxy.urlWithCredentials }] as Array<Record<string, string>>) {
    proxy.passed.length = 0;
    const r = await inspect(`${tlsName}/kmod:v1`, env);
    t.equal(r.code, 0, `${Object.keys(env)[0]}: ${errorLine(r.stderr)}`);
    t.equal(JSON.parse(r.stdout || '{}').digest, digest);
    t.ok(proxy.passed.length > 0 && proxy.passed.every((p) => p.method === 'CONNECT' && p.target === tlsName),
      'only CONNECT to the registry passed');
    t.equal(proxy.passed[0]?.credentials, `corp-user:${PROXY_PASSWORD}`, 'the proxy credentials were sent to the proxy');
    t.match(r.stderr, `"httpsProxy":"${proxy.url}"`, 'the log names the proxy without its credentials');
  }
});

t.test('plain HTTP on --insecure goes as absolute-form requests to HTTP_PROXY', async (t) => {
  proxy.passed.length = 0;
  const r = await inspect(`${plainName}/kmod:v1`, { HTTP_PROXY: proxy.urlWithCredentials, HTTPS_PROXY: proxy.urlWithCredentials },
    '--insecure');
  t.equal(r.code, 0, errorLine(r.stderr));
  const gets = proxy.passed.filter((p) => p.method === 'GET').map((p) => p.target);
  t.ok(gets.includes(`http://${plainName}/v2/`), 'the ping went through as an absolute-form GET');
  t.ok(gets.some((g) => g.startsWith(`http://${plainName}/v2/kmod/manifests/`)), 'and the manifest');
});

t.test('HTTPS does not fall back to HTTP_PROXY; NO_PROXY and loopback go direct', async (t) => {
  proxy.passed.length = 0;
  let r = await inspect(`${tlsName}/kmod:v1`, { HTTP_PROXY: proxy.urlWithCredentials });
  t.equal(r.code, 1, 'only HTTP_PROXY: an https registry is reached directly (and the name does not resolve)');
  t.equal(proxy.passed.length, 0);

  for (const noProxy of [NAME, `.invalid`, `${tlsName}`, '*']) {
    r = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: proxy.urlWithCredentials, NO_PROXY: noProxy });
    t.equal(r.code, 1, `NO_PROXY=${noProxy}: direct, so the name does not resolve`);
    t.match(errorLine(r.stderr), /ENOTFOUND|getaddrinfo/);
  }
  r = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: proxy.urlWithCredentials, no_proxy: NAME });
  t.equal(r.code, 1, 'lower-case no_proxy');
  t.equal(proxy.passed.length, 0, 'nothing passed the proxy');

  // loopback is never proxied, as in Go: the test registries on 127.0.0.1 work with a proxy in the environment
  r = await inspect(`${plainReg.host}/kmod:v1`, { HTTPS_PROXY: proxy.urlWithCredentials, HTTP_PROXY: proxy.urlWithCredentials });
  t.equal(r.code, 0, errorLine(r.stderr));
  t.equal(proxy.passed.length, 0, 'loopback went direct');
});

t.test('a proxy that refuses CONNECT: exit 1 naming the proxy, never its credentials', async (t) => {
  const withCreds = refusing.url.replace('http://', `http://someone:${PROXY_PASSWORD}@`);
  const r = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: withCreds });
  t.equal(r.code, 1);
  t.equal(errorLine(r.stderr), `registry ${tlsName}: the proxy ${refusing.url} refused to open a tunnel to ${tlsName} (HTTP 403)`);
  t.ok(refusing.passed.some((p) => p.method === 'CONNECT' && p.status === 403));

  const wrong = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: proxy.url.replace('http://', 'http://corp-user:wrong@') });
  t.equal(wrong.code, 1);
  t.equal(errorLine(wrong.stderr), `registry ${tlsName}: the proxy ${proxy.url} refused to open a tunnel to ${tlsName} ` +
    '(HTTP 407: proxy credentials missing or rejected)');

  const down = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: 'http://127.0.0.1:9' });
  t.equal(down.code, 1);
  t.equal(errorLine(down.stderr), `registry ${tlsName}: cannot reach the proxy http://127.0.0.1:9 (127.0.0.1:9)`);

  const bad = await inspect(`${tlsName}/kmod:v1`, { HTTPS_PROXY: 'http://[not a url' });
  t.equal(bad.code, 2, 'a malformed proxy URL is a usage error');
  t.match(errorLine(bad.stderr), /^HTTPS_PROXY \(or https_proxy\) is not a proxy URL/);
});

t.test('no proxy or registry secret in any log line', async (t) => {
  for (const s of allStderr) {
    t.notOk(s.includes(PROXY_PASSWORD), 'the proxy password is never logged');
    t.notOk(s.includes(tlsReg.password!), 'the registry password is never logged');
  }
});
