// The test modules are what every later kernel-facing test stands on: check they really are modules for
// the Debian kernel, with the metadata the scenarios rely on.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { ensureTestKmods } from './kmods.js';

const modinfo = (field: string, file: string) =>
  execFileSync('modinfo', ['-F', field, file], { encoding: 'utf8' }).trim();

t.test('ensureTestKmods builds every module for the Debian kernel ABI', async (t) => {
  const k = await ensureTestKmods();
  t.match(k.kver, /^\d+\.\d+\.\d+-\d+-amd64$/);
  t.same(Object.keys(k.ko).sort(), ['dummy', 'kmm_fw', 'kmm_hello', 'kmm_lib', 'kmm_standalone', 'kmm_user']);
  for (const [name, file] of Object.entries(k.ko)) {
    t.equal(modinfo('name', file), name, `${name}: modinfo name`);
    t.match(modinfo('vermagic', file), new RegExp(`^${k.kver.replace(/\./g, '\\.')} `), `${name}: vermagic`);
  }
  t.same(modinfo('parm', k.ko.kmm_hello!).split('\n').map((l) => l.split(':')[0]).sort(), ['count', 'greeting']);
  t.equal(modinfo('depends', k.ko.kmm_user!), 'kmm_lib');
  t.equal(modinfo('depends', k.ko.kmm_hello!), '');
});

t.test('the out-of-tree dummy is told apart from the in-tree one by srcversion', async (t) => {
  const k = await ensureTestKmods();
  const inTree = execFileSync('find', [k.kernel.modulesDir, '-name', 'dummy.ko*'], { encoding: 'utf8' }).trim();
  t.ok(inTree, 'the kernel package ships an in-tree dummy');
  t.match(modinfo('srcversion', k.ko.dummy!), /^[0-9A-F]{23}$/);
  t.not(modinfo('srcversion', inTree), modinfo('srcversion', k.ko.dummy!));
});

t.test('a second call is served from the cache', async (t) => {
  const first = await ensureTestKmods();
  const t0 = Date.now();
  const { ensureTestKmods: again } = await import(`./kmods.js?again=${Date.now()}`);
  const second = await again();
  t.same(second, first);
  t.ok(Date.now() - t0 < 5000, 'cached build.sh returns in seconds');
});
