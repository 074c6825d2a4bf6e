/**
 * transport/auth.ts: the challenge in force and the Authorization value. Security rule F1: a challenge counts
 * only when the registry's own origin sent it.
 */
import t from 'tap';
import { silentLogger } from '../../../src/log.js';
import { RegistryAuth, type AuthOptions } from '../../../src/image/transport/auth.js';
import type { RegistryResponse } from '../../../src/image/transport/http.js';

const unused = () => {
  throw new Error('no request expected');
};

function auth(credential?: AuthOptions['credential']): RegistryAuth {
  return new RegistryAuth({ registry: 'reg.example', insecure: false, credential, credentialHint: 'auth.json',
    log: silentLogger(), raw: unused, readBody: unused, discard: unused, withRetries: unused });
}

function answer(url: string, challenge: string): RegistryResponse {
  return { statusCode: 401, url, headers: { 'www-authenticate': challenge }, body: undefined as never };
}

const BASIC = { source: 'auth.json', key: 'reg.example', username: 'u', password: 'p' };

t.test('a challenge from a host the registry redirected to is not taken (F1)', async (t) => {
  const a = auth(BASIC);
  a.begin({ base: 'https://reg.example', challenge: undefined });
  const evil = answer('https://cdn.example/blob', 'Basic realm="cdn"');
  t.equal(a.fromRegistry(evil), false);
  t.equal(a.registryChallenge(evil), undefined);
  t.equal(a.retryChallenge(evil, undefined), undefined, 'no asking again with credentials for that host');
  t.equal(await a.authorization('r'), undefined, 'still anonymous');
  const own = answer('https://reg.example/v2/r/manifests/x', 'Basic realm="reg"');
  t.same(a.registryChallenge(own), { scheme: 'basic', params: { realm: 'reg' } });
});

t.test("the ping's Basic challenge: the credentials' Basic value; a later ping changes nothing", async (t) => {
  const a = auth(BASIC);
  a.begin({ base: 'https://reg.example', challenge: { scheme: 'basic', params: {} } });
  a.begin({ base: 'https://other.example', challenge: undefined });
  t.equal(await a.authorization('r'), `Basic ${Buffer.from('u:p').toString('base64')}`);
  t.equal(a.fromRegistry(answer('https://other.example/v2/', '')), false);
});

t.test('asking again: a new scheme or a Bearer challenge yes, insufficient scope or the same Basic no', async (t) => {
  const a = auth(BASIC);
  a.begin({ base: 'https://reg.example', challenge: { scheme: 'basic', params: {} } });
  const url = 'https://reg.example/v2/r/manifests/x';
  t.equal(a.retryChallenge(answer(url, 'Basic realm="reg"'), 'Basic x'), undefined);
  t.match(a.retryChallenge(answer(url, 'Basic realm="reg"'), undefined), { scheme: 'basic' });
  t.match(a.retryChallenge(answer(url, 'Bearer realm="https://reg.example/token"'), 'Basic x'), { scheme: 'bearer' });
  t.equal(a.retryChallenge(answer(url, 'Bearer realm="https://reg.example/token",error="insufficient_scope"'), 'Bearer x'),
    undefined);
});

t.test('a registry token is sent as it is, without a token request', async (t) => {
  const a = auth({ source: 'auth.json', key: 'reg.example', registryToken: 'tok' });
  a.begin({ base: 'https://reg.example', challenge: { scheme: 'bearer', params: { realm: 'https://reg.example/t' } } });
  t.equal(await a.authorization('r'), 'Bearer tok');
  t.equal(a.hint(), ' (looked in auth.json)');
});
