import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeEnv } from './fixtures.js';

t.test('simple load then unload', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'example.com/kmm/hello:1', modprobe: { moduleName: 'kmm_hello' } });
  const load = await env.cli(['kmod', 'load', cfg]);
  t.equal(load.code, 0, load.stderr);
  const root = join(env.shared, 'opt');
  t.same(await env.argv(), [['-v', '-d', root, 'kmm_hello']]);
  t.equal((await readFile(join(env.host.sysModule('kmm_hello'), 'initstate'), 'utf8')).trim(), 'live');
  const unload = await env.cli(['kmod', 'unload', cfg]);
  t.equal(unload.code, 0, unload.stderr);
  t.same((await env.argv()).at(-1), ['-r', '-v', '-d', root, 'kmm_hello']);
  t.same(await env.host.loadedModules(), []);
});
