/**
 * Credentials and TLS against real registries: htpasswd Basic behind TLS with a self-signed CA, and Bearer
 * tokens from the tests' own token server. Every CLI run's stderr is scanned for the test credentials at the end.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRegistry, writeAuthFile, writePullSecret } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { cli, errorLine, allStderr } from './cli.js';
import { openImage } from '../../src/image/open.js';
import { pino } from 'pino';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-auth-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-test') });

const locked = new Set<string>();
const basic = await startRegistry({ auth: 'basic', tls: true });
t.teardown(() => basic.stop());
const token = await startRegistry({
  auth: 'token',
  tokenPolicy: (user, scope) => (!user ? [] : locked.has(scope.name) ? scope.actions.filter((a) => a !== 'pull') : scope.actions),
});
t.teardown(() => token.stop());
await pushImage(img, basic, 'kmod:v1');
await pushImage(img, token, 'kmod:v1');
await pushImage(img, token, 'secret:v1');
locked.add('secret');

/** A host root whose certs.d trusts the basic registry's CA. */
async function hostRootWithCA(kind: 'containers' | 'docker'): Promise<string> {
  const root = await fs.mkdtemp(path.join(work, `root-${kind}-`));
  const dir = path.join(root, 'etc', kind === 'containers' ? 'containers' : 'docker', 'certs.d', basic.host);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(basic.caFile!, path.join(dir, kind === 'containers' ? 'registry-ca.crt' : 'ca.crt'));
  return root;
}

/** A HOME without auth files, so the default places hold nothing; they are all named in the message. */
const home = path.join(work, 'home');
const noHome = { HOME: home, XDG_RUNTIME_DIR: '', DOCKER_CONFIG: '' };
const lookedIn = (root: string) => [`${home}/.config/containers/auth.json`, `${home}/.docker/config.json`,
  path.join(root, 'var/lib/kubelet/config.json')].join(', ');

const KO = ['opt/lib/modules/6.1.0-test/kmm_a.ko', 'opt/lib/modules/6.1.0-test/kmm_b.ko'];

t.test('Basic auth over TLS: CA from certs.d, credentials from an auth file or a pull secret', async (t) => {
  const rootC = await hostRootWithCA('containers');
  const rootD = await hostRootWithCA('docker');
  const authFile = await writeAuthFile(basic, path.join(work, 'auth.json'));
  const fieldsFile = await writeAuthFile(basic, path.join(work, 'auth-fields.json'), 'fields');
  // a Kubernetes secret volume: the file is a symlink into ..data, which points at a timestamped dir
  const secrets = path.join(work, 'secrets');
  const real = await writePullSecret(basic, path.join(secrets, 'my-secret', '..2026_01_01'), '.');
  await fs.symlink('..2026_01_01', path.join(secrets, 'my-secret', '..data'));
  await fs.symlink('..data/.dockerconfigjson', path.join(secrets, 'my-secret', '.dockerconfigjson'));
  t.ok(real);
  const ref = `${basic.host}/kmod:v1`;
  for (const [name, args] of [
    ['auth file + containers certs.d', ['--host-root', rootC, '--auth-file', authFile]],
    ['auth file with username/password + docker certs.d', ['--host-root', rootD, '--auth-file', fieldsFile]],
    ['pull secret', ['--host-root', rootC, '--pull-secrets-dir', secrets]],
  ] as const) {
    const r = await cli([...args, 'image', 'inspect', ref, '--json']);
    t.equal(r.code, 0, `${name}: ${errorLine(r.stderr)}`);
    t.same(JSON.parse(r.stdout || '{}').kernels, { '6.1.0-test': KO }, name);
  }
  const env = await cli(['--host-root', rootC, 'image', 'inspect', ref, '--json'], { REGISTRY_AUTH_FILE: authFile });
  t.equal(env.code, 0, 'REGISTRY_AUTH_FILE is the auth file');
});

t.test('Basic auth failures', async (t) => {
  const root = await hostRootWithCA('containers');
  const ref = `${basic.host}/kmod:v1`;
  const wrong = await writeAuthFile({ ...basic, password: 'not-the-password' }, path.join(work, 'wrong.json'));
  let r = await cli(['--host-root', root, '--auth-file', wrong, 'image', 'inspect', ref]);
  t.equal(r.code, 1);
  t.equal(errorLine(r.stderr), `registry ${basic.host}: authentication failed for kmod: the credentials from ${wrong} were rejected`);

  r = await cli(['--host-root', root, 'image', 'inspect', ref], noHome);
  t.equal(r.code, 1);
  t.equal(errorLine(r.stderr), `registry ${basic.host} requires authentication for kmod and no credentials were found ` +
    `for it (looked in pull secrets /nonexistent-kmm-secrets, ${lookedIn(root)}; give --auth-file)`);

  const good = await writeAuthFile(basic, path.join(work, 'good.json'));
  r = await cli(['--auth-file', good, 'image', 'inspect', ref]);
  t.equal(r.code, 1, 'TLS without the CA fails');
  // a command-line user gets the flag, not the config field
  t.match(errorLine(r.stderr), new RegExp(`^registry ${basic.host}: TLS certificate not trusted \\(.*\\); put the registry's CA in ` +
    `/etc/containers/certs.d/${basic.host}/ca.crt \\(under --host-root\\), or to skip verification pass --insecure$`));
  t.notMatch(r.stderr, /insecurePull|use-system-ca/);
  t.equal(r.stdout, '');

  r = await cli(['--auth-file', good, 'image', 'inspect', ref, '--json'], { NODE_EXTRA_CA_CERTS: basic.caFile! });
  t.equal(r.code, 0, `a CA from NODE_EXTRA_CA_CERTS is trusted: ${errorLine(r.stderr)}`);

  r = await cli(['--auth-file', good, 'image', 'inspect', ref, '--insecure', '--json']);
  t.equal(r.code, 0, '--insecure skips verification');
  t.match(r.stderr, /insecure pull: TLS certificates are not verified/);

  const bad = path.join(work, 'bad.json');
  await fs.writeFile(bad, `{"auths": {"${basic.host}": {"auth": "${Buffer.from(`u:${basic.password}`).toString('base64')}"`);
  r = await cli(['--auth-file', bad, 'image', 'inspect', ref]);
  t.equal(r.code, 2, 'an unparsable auth file is a usage error');
  t.equal(errorLine(r.stderr), `${bad} is not valid JSON (expected a docker config / containers-auth.json)`);
});

t.test('Bearer tokens', async (t) => {
  const ts = token.tokenServer!;
  const authFile = await writeAuthFile(token, path.join(work, 'token-auth.json'));
  const before = ts.requests.length;
  let r = await cli(['--auth-file', authFile, 'image', 'inspect', `${token.host}/kmod:v1`, '--json']);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.same(JSON.parse(r.stdout).kernels, { '6.1.0-test': KO });
  const mine = ts.requests.slice(before);
  t.same(mine.map((q) => [q.user, q.scopes]), [['kmmtest', ['repository:kmod:pull']]],
    'one token for the repository scope serves the manifest, the config and both layers');
  t.equal(mine[0]!.service, ts.service, 'service from the challenge');

  r = await cli(['--auth-file', authFile, 'image', 'inspect', `${token.host}/secret:v1`]);
  t.equal(r.code, 1, 'a token without the pull scope');
  t.equal(errorLine(r.stderr), `registry ${token.host}: pull access to secret denied: the token does not grant 'pull' ` +
    `on it (insufficient scope) with the credentials from ${authFile}`);

  r = await cli(['image', 'inspect', `${token.host}/kmod:v1`], noHome);
  t.equal(r.code, 1, 'anonymous');
  t.equal(errorLine(r.stderr), `registry ${token.host}: anonymous pull of kmod denied and no credentials were found for ` +
    `it (looked in pull secrets /nonexistent-kmm-secrets, ${lookedIn('/')}; give --auth-file)`);

  const wrong = await writeAuthFile({ ...token, password: 'nope-nope' }, path.join(work, 'token-wrong.json'));
  r = await cli(['--auth-file', wrong, 'image', 'inspect', `${token.host}/kmod:v1`]);
  t.equal(r.code, 1, 'wrong password');
  t.match(errorLine(r.stderr), new RegExp(`^registry ${token.host}: the token server 127\\.0\\.0\\.1:\\d+ rejected the ` +
    `credentials from ${wrong} \\(HTTP 401\\)$`));

  // docker's identitytoken: an OAuth2 refresh token exchanged with POST
  ts.refreshTokens.set('refresh-7f3a9c1e5b', 'kmmtest');
  const idFile = path.join(work, 'identity.json');
  await fs.writeFile(idFile, JSON.stringify({ auths: { [`http://${token.host}/v2/`]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'refresh-7f3a9c1e5b' } } }));
  const n = ts.requests.length;
  r = await cli(['--auth-file', idFile, 'image', 'inspect', `${token.host}/kmod:v1`, '--json']);
  t.equal(r.code, 0, `identitytoken: ${errorLine(r.stderr)}`);
  t.same(ts.requests.slice(n).map((q) => [q.method, q.user]), [['POST', 'kmmtest']]);
});

t.test('tokens are cached per scope until they expire', async (t) => {
  const short = await startRegistry({ auth: 'token', tokenTtl: 2 });
  t.teardown(() => short.stop());
  await pushImage(img, short, 'kmod:v1');
  const authFile = await writeAuthFile(short, path.join(work, 'short.json'));
  const ts = short.tokenServer!;
  const n = ts.requests.length;
  const image = await openImage(`${short.host}/kmod:v1`, { authFile, log: pino({ level: 'silent' }) });
  const read = async () => {
    for (const l of image.layers) for await (const _ of await image.openBlob(l));
  };
  await read();
  t.equal(ts.requests.length - n, 1, 'one token for manifest, config and layers');
  await sleep(1200);
  await read();
  t.equal(ts.requests.length - n, 2, 'a new token once the first expired');
});

t.test('no credential in any log line', async (t) => {
  const secrets = [basic.password!, token.password!, 'refresh-7f3a9c1e5b', ...token.tokenServer!.issued];
  for (const r of [basic, token]) {
    secrets.push(Buffer.from(`${r.username}:${r.password}`).toString('base64'));
  }
  const logs = allStderr.join('\n');
  t.ok(logs.length > 10_000, `debug logs were captured (${logs.length} bytes)`);
  t.ok(token.tokenServer!.issued.length >= 3, 'tokens were issued');
  for (const s of secrets) t.notOk(logs.includes(s), `secret ${s.slice(0, 4)}… absent from the logs`);
  t.notMatch(logs, /(Basic|Bearer) [A-Za-z0-9+/=_.-]{8,}/, 'no Authorization value');
});
