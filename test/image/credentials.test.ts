/** Credential lookup as docker/podman match auth-file keys, and the pull-secret volume layout. */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CredentialStore, loadCredentials, normalizeAuthKey } from '../../src/image/credentials.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('auth-file keys are normalised', async (t) => {
  t.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'docker.io');
  t.equal(normalizeAuthKey('registry-1.docker.io'), 'docker.io');
  t.equal(normalizeAuthKey('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
  t.equal(normalizeAuthKey('Quay.io/org/repo/'), 'quay.io/org/repo');
  t.equal(normalizeAuthKey('localhost:5000'), 'localhost:5000');
});

t.test('the most specific key wins, then the earlier source', async (t) => {
  const s = new CredentialStore();
  s.add('/secrets/a/.dockerconfigjson', { auths: {
    'quay.io': { auth: b64('host-user:p1') },
    'quay.io/org': { username: 'org-user', password: 'p2' },
  } });
  s.add('/auth.json', { auths: {
    'quay.io/org/kmod': { auth: b64('repo-user:p3') },
    'quay.io': { auth: b64('later-host-user:p4') },
    'https://index.docker.io/v1/': { auth: b64('hub:p5') },
    'id.example': { identitytoken: 'refresh' },
    'empty.example': {},
    'broken.example': { auth: 'bm9jb2xvbg==' },
  } });
  t.match(s.lookup('quay.io', 'org/kmod'), { username: 'repo-user', password: 'p3', source: '/auth.json' });
  t.match(s.lookup('quay.io', 'org/other'), { username: 'org-user', password: 'p2', source: '/secrets/a/.dockerconfigjson' });
  t.match(s.lookup('quay.io', 'else/x'), { username: 'host-user', password: 'p1' });
  t.match(s.lookup('docker.io', 'library/busybox'), { username: 'hub', password: 'p5' });
  t.match(s.lookup('id.example', 'x'), { identityToken: 'refresh' });
  t.equal(s.lookup('empty.example', 'x'), undefined);
  t.equal(s.lookup('broken.example', 'x'), undefined, 'auth without a colon is ignored');
  t.equal(s.lookup('quay.io.evil', 'org/kmod'), undefined);
  t.equal(s.lookup('other.example', 'org/kmod'), undefined);
  // legacy .dockercfg: the map without "auths"
  const legacy = new CredentialStore();
  legacy.add('/s/.dockercfg', { 'https://reg.example:5000': { auth: b64('u:p:with:colons'), email: 'x@y' } });
  t.match(legacy.lookup('reg.example:5000', 'a'), { username: 'u', password: 'p:with:colons' });
});

t.test('the pull-secrets dir: only the two file names, any depth, kubelet copies skipped', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-creds-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const put = async (rel: string, doc: unknown) => {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), JSON.stringify(doc));
  };
  await put('a/..2026_01_01/.dockerconfigjson', { auths: { 'a.example': { auth: b64('a:1') } } });
  await fs.symlink('..2026_01_01', path.join(dir, 'a/..data'));
  await fs.symlink('..data/.dockerconfigjson', path.join(dir, 'a/.dockerconfigjson'));
  await put('deep/er/b/.dockercfg', { 'b.example': { auth: b64('b:2') } });
  await put('c/config.json', { auths: { 'c.example': { auth: b64('c:3') } } });
  await put('d/dockerconfigjson', { auths: { 'd.example': { auth: b64('d:4') } } });
  const s = await loadCredentials({ pullSecretsDir: dir });
  t.equal(s.size, 2);
  t.match(s.lookup('a.example', 'x'), { username: 'a', source: path.join(dir, 'a/.dockerconfigjson') });
  t.match(s.lookup('b.example', 'x'), { username: 'b' });
  t.equal(s.lookup('c.example', 'x'), undefined, 'other file names are not pull secrets');
  const none = await loadCredentials({ pullSecretsDir: path.join(dir, 'missing'), authFile: path.join(dir, 'missing.json') });
  t.equal(none.size, 0, 'missing sources are fine');
  await fs.writeFile(path.join(dir, 'bad.json'), '{"auths": {"x": {"auth": "c2VjcmV0OnNlY3JldA=="');
  await t.rejects(loadCredentials({ authFile: path.join(dir, 'bad.json') }), {
    name: 'UsageError', message: `${path.join(dir, 'bad.json')} is not valid JSON (expected a docker config / containers-auth.json)` });
});

t.test('kubelet-style globbed keys: one label per *, same port, path prefix; exact keys first', async (t) => {
  const s = new CredentialStore();
  const b64 = (v: string) => Buffer.from(v).toString('base64');
  s.add('/var/lib/kubelet/config.json', { auths: {
    '*.azurecr.io': { auth: b64('glob:p1') },
    'exact.azurecr.io': { auth: b64('exact:p2') },
    'x*.corp:5000/team': { username: 'team', password: 'p3' },
  } });
  t.match(s.lookup('mine.azurecr.io', 'k'), { username: 'glob' });
  t.match(s.lookup('exact.azurecr.io', 'k'), { username: 'exact' });
  t.equal(s.lookup('a.b.azurecr.io', 'k'), undefined, 'one label per *');
  t.equal(s.lookup('azurecr.io', 'k'), undefined, 'not the apex');
  t.match(s.lookup('xy.corp:5000', 'team/k'), { username: 'team' });
  t.equal(s.lookup('xy.corp:5000', 'other/k'), undefined, 'path prefix');
  t.equal(s.lookup('xy.corp', 'team/k'), undefined, 'port must match');
  t.equal(s.lookup('y.corp:5000', 'team/k'), undefined, 'x* needs the x');
});
