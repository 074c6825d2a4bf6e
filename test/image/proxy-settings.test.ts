/** Which proxy the environment names, and which registries bypass it (loopback, NO_PROXY CIDRs). */
import t from 'tap';
import { bypassesProxy, proxySettings, redactProxy } from '../../src/image/proxy.js';
import { UsageError } from '../../src/errors.js';

t.test('upper case first, then lower case; empty means unset; a bare host:port is http://', async (t) => {
  t.equal(proxySettings({}), undefined, 'no proxy variables: no proxy');
  t.equal(proxySettings({ NO_PROXY: 'x' }), undefined, 'NO_PROXY alone: no proxy');
  t.same(proxySettings({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:2', no_proxy: '.corp' }),
    { httpProxy: undefined, httpsProxy: 'http://a:1', noProxy: '.corp' });
  t.same(proxySettings({ HTTPS_PROXY: '', https_proxy: 'proxy.corp:3128', HTTP_PROXY: 'http://h:3' }),
    { httpProxy: 'http://h:3', httpsProxy: 'http://proxy.corp:3128', noProxy: '' });
  t.throws(() => proxySettings({ HTTPS_PROXY: 'socks5://p:1080' }), UsageError);
  t.throws(() => proxySettings({ http_proxy: 'http://[bad' }), new UsageError('HTTP_PROXY (or http_proxy) is not a proxy URL (expected http://host:port)'));
});

t.test('loopback and NO_PROXY CIDRs bypass the proxy', async (t) => {
  const s = { httpsProxy: 'http://p:1', noProxy: 'corp.example, 10.0.0.0/8,fd00::/8' };
  for (const e of ['127.0.0.1:5000', 'localhost:5000', '[::1]:5000', '127.3.2.1', '10.1.2.3:5443', '[fd00::5]:443']) {
    t.ok(bypassesProxy(e, s), `${e} goes direct`);
  }
  for (const e of ['11.0.0.1:5000', 'quay.io', 'reg.corp.example:5000', '[fe80::1]:443']) {
    t.notOk(bypassesProxy(e, s), `${e} is not decided here (names are matched per request by undici)`);
  }
});

t.test('a proxy is named without its credentials', async (t) => {
  t.equal(redactProxy('http://user:s3cret@proxy.corp:3128/'), 'http://proxy.corp:3128');
  t.equal(redactProxy('https://tok@proxy.corp'), 'https://proxy.corp');
});
