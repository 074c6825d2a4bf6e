// The test modules are what every later kernel-facing test stands on: check they really are modules for
// the Debian kernel, with the metadata the scenarios rely on.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestKmods, koBuiltFor } from './kmods.js';

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

t.test('koBuiltFor: a copy whose vermagic names another release, for modinfo as for the kernel', async (t) => {
  const k = await ensureTestKmods();
  const dir = await mkdtemp(join(tmpdir(), 'kmm-vermagic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const original = await readFile(k.ko.kmm_hello!);
  for (const release of ['6.18.44-fc-v1147', '5.14.0-427.50.1.el9_4.x86_64', '6.1']) {
    const file = join(dir, `${release}.ko`);
    const copy = koBuiltFor(original, release);
    t.equal(copy.length, original.length, `${release}: same size`);
    await writeFile(file, copy);
    t.equal(modinfo('vermagic', file).split(' ')[0], release, `${release}: modinfo reads it`);
    t.equal(modinfo('srcversion', file), modinfo('srcversion', k.ko.kmm_hello!), `${release}: the rest of .modinfo intact`);
  }
  t.throws(() => koBuiltFor(original, 'x'.repeat(200)), /longer than the module's vermagic/);
});
