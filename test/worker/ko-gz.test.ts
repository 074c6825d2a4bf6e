// .ko.gz kmods (accepted by inspect and preflight) load even with a kmod built without zlib (Debian's, the
// worker image's): the scratch copy holds them decompressed and depmod indexes the .ko files.
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeEnv } from './fixtures.js';

t.test('a .ko.gz kmod is loaded from a decompressed scratch copy; the source tree is untouched', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'], depmod: false });
  t.teardown(env.cleanup);
  const dir = join(env.shared, 'opt/lib/modules', env.kmods.kver, 'extra');
  await execa('gzip', ['-9', join(dir, 'kmm_hello.ko')]);
  const zlib = (await execa('modprobe', ['--version'])).stdout;
  t.comment(`this machine's kmod: ${zlib.split('\n').at(-1)}`);
  const cfg = await env.config({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello' } });
  const r = await env.cli(['kmod', 'load', cfg]);
  t.equal(r.code, 0, 'load', { stderr: r.stderr });
  const [argv] = await env.argv();
  const root = argv![argv!.indexOf('-d') + 1]!;
  t.not(root, join(env.shared, 'opt'), 'modprobe used a scratch copy');
  t.match(r.stderr, /decompressed 1 \.ko\.gz in the scratch copy/);
  const { stdout } = await execa('modinfo', ['-F', 'srcversion', env.kmods.ko.kmm_hello!]);
  t.equal((await execa('cat', [join(env.host.sysModule('kmm_hello'), 'srcversion')])).stdout.trim(), stdout.trim(), 'the kernel got the same module');
  t.same(await readdir(dir), ['kmm_hello.ko.gz'], 'the source tree still holds only the .ko.gz');
});
