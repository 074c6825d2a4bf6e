import t, { type Test } from 'tap';
import { lstat, mkdir, readFile, readdir, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeEnv, type CliResult, type Env } from './fixtures.js';

const IMAGE = 'registry.example/kmm/kmods:1';
const cfgOf = (env: Env, modprobe: object, more: object = {}) =>
  env.config({ kernelVersion: env.kmods.kver, containerImage: IMAGE, ...more, modprobe });
const ok = (t: Test, r: CliResult, what = 'exit 0') => t.equal(r.code, 0, what, { stderr: r.stderr });
const exists = (p: string) => stat(p).then(() => true, () => false);

async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => join(e.parentPath, e.name).slice(dir.length + 1) + (e.isDirectory() ? '/' : '')).sort();
}

t.test('unload of a module that is not loaded: exit 0, logged, no modprobe', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const r = await env.cli(['kmod', 'unload', await cfgOf(env, { moduleName: 'kmm_hello' })]);
  ok(t, r);
  t.match(r.stderr, /kmm_hello not loaded; nothing to unload/);
  t.same(await env.argv(), []);
});

t.test('unload after the node moved on (other kernel, kmods gone): the module is not loaded, firmware still cleaned', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'fw.bin': 'F' } });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' }, { imagePullPolicy: 'Never' });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  t.ok(await exists(env.host.path('/var/lib/firmware/fw.bin')));
  // reboot into another kernel: nothing loaded, the shared dir emptied
  await rm(env.host.sysModule('kmm_fw'), { recursive: true });
  await writeFile(env.host.path('/proc/sys/kernel/osrelease'), '6.1.0-99-amd64\n');
  await rm(join(env.shared, 'opt'), { recursive: true });
  const r = await env.cli(['--images-dir', join(env.work, 'images'), 'kmod', 'unload', cfg]);
  ok(t, r);
  t.notOk(await exists(env.host.path('/var/lib/firmware/fw.bin')));
  t.same(await env.argv(), [['-v', '-d', join(env.shared, 'opt'), 'kmm_fw']], 'only the load ran modprobe');
});

t.test('unload of a module in use: exit 1 naming the holders; nothing removed', async (t) => {
  const env = await makeEnv({ modules: ['kmm_lib', 'kmm_user'], firmware: { 'lib.bin': 'L' } });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_lib', firmwarePath: '/firmware' });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  // something else on the node uses it
  await env.host.addLoadedModule('other_user');
  await writeFile(join(env.host.sysModule('kmm_lib'), 'holders/other_user'), '');
  await writeFile(join(env.host.sysModule('kmm_lib'), 'refcnt'), '1\n');
  const r = await env.cli(['kmod', 'unload', cfg]);
  t.equal(r.code, 1);
  t.same(r.errors, ['module kmm_lib is in use (refcnt 1, used by other_user); unload those first']);
  t.ok(await env.host.loadedModules().then((m) => m.includes('kmm_lib')));
  t.ok(await exists(env.host.path('/var/lib/firmware/lib.bin')), 'its firmware stays');
});

t.test('firmware: contents of nested dirs copied, recorded, firmware_class.path set; unload removes them', async (t) => {
  const env = await makeEnv({
    modules: ['kmm_fw'],
    firmware: { 'kmm/fw-a.bin': 'AAAA', 'kmm/deeper/fw-b.bin': 'BBBB', 'top.bin': 'T' },
    firmwarePath: '/firmware',
    firmwareClassPath: '',
  });
  t.teardown(env.cleanup);
  await mkdir(env.host.path('/lib/firmware/updates/preexisting'), { recursive: true });
  await writeFile(env.host.path('/lib/firmware/updates/preexisting/host.bin'), 'host');
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware', parameters: ['fw_name=kmm/fw-a.bin'] });
  const fw = '/lib/firmware/updates';
  ok(t, await env.cli(['kmod', 'load', cfg, '--firmware-path', fw, '--module-name', 'fw-mod']));
  const dir = env.host.path(fw);
  t.same(await tree(dir), [
    '.kmm-worker/', '.kmm-worker/kmm-ops/', '.kmm-worker/kmm-ops/fw-mod.json',
    'kmm/', 'kmm/deeper/', 'kmm/deeper/fw-b.bin', 'kmm/fw-a.bin',
    'preexisting/', 'preexisting/host.bin', 'top.bin',
  ]);
  t.equal(await readFile(join(dir, 'kmm/deeper/fw-b.bin'), 'utf8'), 'BBBB');
  t.same(JSON.parse(await readFile(join(dir, '.kmm-worker/kmm-ops/fw-mod.json'), 'utf8')), {
    module: 'kmm-ops/fw-mod',
    modules: ['kmm_fw'],
    files: ['kmm/deeper/fw-b.bin', 'kmm/fw-a.bin', 'top.bin'],
    dirs: ['kmm', 'kmm/deeper'],
  });
  t.equal(await env.host.firmwareClassPath(), fw);

  ok(t, await env.cli(['kmod', 'unload', cfg, '--firmware-path', fw, '--module-name', 'fw-mod']));
  t.same(await tree(dir), ['preexisting/', 'preexisting/host.bin'], 'only what the module installed is gone');
});

t.test('firmware default dir is /var/lib/firmware; firmware_class.path untouched without --firmware-path', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'x.bin': 'X' }, firmwareClassPath: '/somewhere' });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  t.equal(await readFile(env.host.path('/var/lib/firmware/x.bin'), 'utf8'), 'X');
  t.equal(await env.host.firmwareClassPath(), '/somewhere');
});

t.test('firmware_class.path is not rewritten when it already has the value', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'x.bin': 'X' }, firmwareClassPath: '/var/lib/firmware' });
  t.teardown(env.cleanup);
  const past = new Date('2020-01-01T00:00:00Z');
  await utimes(env.host.firmwareClassPathFile, past, past);
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' });
  const r = await env.cli(['kmod', 'load', cfg, '--firmware-path', '/var/lib/firmware']);
  ok(t, r);
  t.match(r.stderr, /firmware_class.path already points at the firmware dir/);
  t.equal(await env.host.firmwareClassPath(), '/var/lib/firmware');
  t.equal((await stat(env.host.firmwareClassPathFile)).mtime.getTime(), past.getTime(), 'the parameter was not written');
});

t.test('two modules share a firmware file: unloading one keeps it, unloading the other removes it', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw', 'kmm_hello'] });
  t.teardown(env.cleanup);
  for (const [img, own] of [['fw-a', 'a-only.bin'], ['fw-b', 'b-only.bin']] as const) {
    await mkdir(join(env.shared, img, 'shared'), { recursive: true });
    await writeFile(join(env.shared, img, 'shared/common.bin'), 'COMMON');
    await writeFile(join(env.shared, img, own), own);
  }
  const a = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/fw-a' });
  const b = await cfgOf(env, { moduleName: 'kmm_hello', firmwarePath: '/fw-b' });
  const fw = env.host.path('/var/lib/firmware');
  ok(t, await env.cli(['kmod', 'load', a, '--module-name', 'mod-a']));
  ok(t, await env.cli(['kmod', 'load', b, '--module-name', 'mod-b']));
  t.same((await tree(fw)).filter((p) => !p.startsWith('.kmm-worker')), ['a-only.bin', 'b-only.bin', 'shared/', 'shared/common.bin']);

  ok(t, await env.cli(['kmod', 'unload', a, '--module-name', 'mod-a']));
  t.same((await tree(fw)).filter((p) => !p.startsWith('.kmm-worker')), ['b-only.bin', 'shared/', 'shared/common.bin'], 'the shared file stays for mod-b');
  t.same(await env.host.loadedModules(), ['kmm_hello']);

  ok(t, await env.cli(['kmod', 'unload', b, '--module-name', 'mod-b']));
  t.same(await tree(fw), [], 'everything the two installed is gone, the dirs they left empty too');
});

t.test('a shared file of a module that is no longer loaded does not keep it', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw', 'kmm_hello'] });
  t.teardown(env.cleanup);
  for (const img of ['fw-a', 'fw-b']) {
    await mkdir(join(env.shared, img), { recursive: true });
    await writeFile(join(env.shared, img, 'common.bin'), 'COMMON');
  }
  const a = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/fw-a' });
  const b = await cfgOf(env, { moduleName: 'kmm_hello', firmwarePath: '/fw-b' });
  ok(t, await env.cli(['kmod', 'load', a, '--module-name', 'mod-a']));
  ok(t, await env.cli(['kmod', 'load', b, '--module-name', 'mod-b']));
  // mod-b's module went away behind our back (its record is still there)
  await rm(env.host.sysModule('kmm_hello'), { recursive: true });
  ok(t, await env.cli(['kmod', 'unload', a, '--module-name', 'mod-a']));
  t.notOk(await exists(env.host.path('/var/lib/firmware/common.bin')));
});

t.test('firmwarePath missing from the kmods: exit 1 naming it, before modprobe', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'] });
  t.teardown(env.cleanup);
  const r = await env.cli(['kmod', 'load', await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/nofw' })]);
  t.equal(r.code, 1);
  t.match(r.errors[0], /^modprobe.firmwarePath: \S+\/nofw is not a directory in the kmods image$/);
  t.same(await env.argv(), []);
});

t.test('read-only firmware_class.path: exit 1 saying to mount /sys from the host', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'x.bin': 'X' } });
  t.teardown(env.cleanup);
  // a real read-only sysfs attribute stands in for the parameter (root cannot write it either)
  const readOnly = '/sys/kernel/notes';
  t.ok(await exists(readOnly), `${readOnly} exists on this machine`);
  await rm(env.host.firmwareClassPathFile);
  await symlink(readOnly, env.host.firmwareClassPathFile);
  const r = await env.cli(['kmod', 'load', await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' }), '--firmware-path', '/lib/firmware']);
  t.equal(r.code, 1);
  t.match(r.errors[0], /^cannot write \S+\/sys\/module\/firmware_class\/parameters\/path: EACCES \(read-only \/sys\): mount \/sys from the host read-write into the worker$/);
  t.same(await env.argv(), [], 'no modprobe after the failure');
});

t.test('firmware symlinks: relative links inside the tree are kept as links, others are skipped', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'vendor/real-1.2.bin': 'REAL' } });
  t.teardown(env.cleanup);
  await symlink('real-1.2.bin', join(env.shared, 'firmware/vendor/real.bin'));
  await symlink('/etc/passwd', join(env.shared, 'firmware/vendor/escape.bin'));
  await symlink('../../../outside', join(env.shared, 'firmware/vendor/up.bin'));
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' });
  const r = await env.cli(['kmod', 'load', cfg]);
  ok(t, r);
  const fw = env.host.path('/var/lib/firmware');
  t.equal(await readlink(join(fw, 'vendor/real.bin')), 'real-1.2.bin');
  t.notOk(await lstat(join(fw, 'vendor/escape.bin')).catch(() => undefined), 'absolute link not installed');
  t.notOk(await lstat(join(fw, 'vendor/up.bin')).catch(() => undefined), 'link leaving the tree not installed');
  t.match(r.stderr, /skipping firmware symlink that points outside the firmware directory/);
  ok(t, await env.cli(['kmod', 'unload', cfg]));
  t.same(await tree(fw), []);
});

t.test('a symlink already at a firmware destination is replaced, never written through', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'x.bin': 'NEW' } });
  t.teardown(env.cleanup);
  const victim = join(env.work, 'victim.txt');
  await writeFile(victim, 'precious');
  await symlink(victim, env.host.path('/var/lib/firmware/x.bin'));
  ok(t, await env.cli(['kmod', 'load', await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' })]));
  t.equal(await readFile(victim, 'utf8'), 'precious');
  t.ok((await lstat(env.host.path('/var/lib/firmware/x.bin'))).isFile());
  t.equal(await readFile(env.host.path('/var/lib/firmware/x.bin'), 'utf8'), 'NEW');
  t.same((await tree(env.host.path('/var/lib/firmware'))).filter((p) => p.includes('kmm-tmp')), [], 'no temp files left');
});

t.test('the upstream worker flags: --set-firmware-mount-path (copy only) and --set-firmware-class-path', async (t) => {
  const env = await makeEnv({ modules: ['kmm_fw'], firmware: { 'x.bin': 'X' }, firmwareClassPath: '/old' });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_fw', firmwarePath: '/firmware' });
  // what the KMM operator runs: kmod load <config> --set-firmware-mount-path /var/lib/firmware
  ok(t, await env.cli(['kmod', 'load', cfg, '--set-firmware-mount-path', '/lib/firmware/kmm']));
  t.equal(await readFile(env.host.path('/lib/firmware/kmm/x.bin'), 'utf8'), 'X');
  t.equal(await env.host.firmwareClassPath(), '/old', 'the mount path alone does not touch firmware_class.path');
  ok(t, await env.cli(['kmod', 'load', cfg, '--set-firmware-mount-path', '/lib/firmware/kmm', '--set-firmware-class-path', '/lib/firmware/kmm']));
  t.equal(await env.host.firmwareClassPath(), '/lib/firmware/kmm');
  ok(t, await env.cli(['kmod', 'unload', cfg, '--set-firmware-mount-path', '/lib/firmware/kmm']));
  t.notOk(await exists(env.host.path('/lib/firmware/kmm/x.bin')));
  const both = await env.cli(['kmod', 'load', cfg, '--firmware-path', '/a', '--set-firmware-mount-path', '/b']);
  t.equal(both.code, 2);
  t.same(both.errors, ['--firmware-path cannot be combined with --set-firmware-mount-path or --set-firmware-class-path']);
  const unloadClass = await env.cli(['kmod', 'unload', cfg, '--set-firmware-class-path', '/x']);
  t.equal(unloadClass.code, 2, 'unload has no --set-firmware-class-path, as upstream');
});
