// modprobe.modprobedDir (upstream KMM): the image's modprobe.d files reach every modprobe call through -C,
// the real kmod modprobe sees their `options`, and nothing of them stays anywhere; a bad directory is exit 1.
import t from 'tap';
import { chmod, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { recordingModprobePath } from '../helpers/recording-modprobe.js';
import { makeEnv, type Env } from './fixtures.js';

const IMAGE = 'registry.example/kmm/kmods:1';
const DEFAULT_DIRS = ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'];
const exists = (p: string) => stat(p).then(() => true, () => false);
const cfgOf = (env: Env, modprobe: object, more: object = {}) =>
  env.config({ kernelVersion: env.kmods.kver, containerImage: IMAGE, ...more, modprobe: { moduleName: 'kmm_hello', modprobedDir: '/etc/kmm.d', ...modprobe } });

/** `<shared>/etc/kmm.d/<name>` files, as KMM's init container stages the image's modprobedDir. */
async function stageImageConf(env: Env, files: Record<string, string>): Promise<string> {
  const dir = join(env.shared, 'etc/kmm.d');
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** The -C values in front of an argv, and the rest. */
function splitConfig(argv: string[]): { dirs: string[]; rest: string[] } {
  const dirs: string[] = [];
  let i = 0;
  while (argv[i] === '-C') {
    dirs.push(argv[i + 1]!);
    i += 2;
  }
  return { dirs, rest: argv.slice(i) };
}

t.test('every modprobe call (in-tree removal, load, unload) reads the image files first, then the default dirs; nothing stays', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await stageImageConf(env, { 'kmm.conf': 'options kmm_hello greeting=from-image\n' });
  await env.host.addLoadedModule('dummy');
  const etcBefore = await readdir('/etc/modprobe.d');
  const cfg = await cfgOf(env, {}, { inTreeModulesToRemove: ['dummy'] });
  const load = await env.cli(['kmod', 'load', cfg]);
  t.equal(load.code, 0, 'load', { stderr: load.stderr });
  const unload = await env.cli(['kmod', 'unload', cfg]);
  t.equal(unload.code, 0, 'unload', { stderr: unload.stderr });
  const calls = (await env.argv()).map(splitConfig);
  const root = join(env.shared, 'opt');
  t.same(calls.map((c) => c.rest), [['-r', '-v', 'dummy'], ['-v', '-d', root, 'kmm_hello'], ['-r', '-v', '-d', root, 'kmm_hello']]);
  for (const c of calls) {
    t.same(c.dirs.slice(1), DEFAULT_DIRS, 'the default dirs follow the staged one');
    t.notOk(await exists(c.dirs[0]!), `the staged copy ${c.dirs[0]} is gone`);
  }
  t.not(calls[0]!.dirs[0], join(env.shared, 'etc/kmm.d'), 'modprobe reads a checked copy, not the image dir itself');
  t.same(await readdir('/etc/modprobe.d'), etcBefore, "the node's /etc/modprobe.d is unchanged");
});

t.test('the real kmod modprobe (-n -v) sees the options line from the image', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await stageImageConf(env, { 'kmm.conf': 'options kmm_hello greeting=from-image count=7\n', 'README': 'not a .conf: modprobe skips it\n' });
  // a modprobe that first asks the real kmod what it would do with this exact argv, then records it
  const realLog = join(env.work, 'real.log');
  const wrapper = join(env.work, 'modprobe-and-real');
  await writeFile(
    wrapper,
    `#!/bin/sh\nmodprobe -n -v -S '${env.kmods.kver}' "$@" >>'${realLog}' 2>&1\nexec '${recordingModprobePath}' "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  const r = await env.cli(['kmod', 'load', await cfgOf(env, {}), '--modprobe', wrapper]);
  t.equal(r.code, 0, 'load', { stderr: r.stderr });
  const real = (await execa('cat', [realLog])).stdout;
  t.match(real, /^insmod \S+\/kmm_hello\.ko +greeting=from-image count=7\s*$/m, `kmod: ${real}`);
});

t.test('a dry run names the staged files in its plan and leaves nothing behind', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await stageImageConf(env, { 'kmm.conf': 'options kmm_hello count=3\n' });
  const r = await env.cli(['--dry-run', 'kmod', 'load', await cfgOf(env, {})]);
  t.equal(r.code, 0, 'dry run', { stderr: r.stderr });
  const staged = /modprobe also reads the image's \/etc\/kmm.d, staged in (\S+)/.exec(r.stdout)?.[1];
  t.ok(staged, r.stdout);
  t.match(r.stdout, new RegExp(`run modprobe -C ${staged} -C /etc/modprobe.d .* -v -d \\S+ kmm_hello`));
  t.notOk(await exists(staged!), 'the staged copy is removed after a dry run too');
});

t.test('a bad modprobedDir is exit 1 with one line, before anything is touched', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello', 'kmm_lib'] });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('dummy');
  const dir = join(env.shared, 'etc/kmm.d');
  const cases: [string, () => Promise<void>, object, RegExp][] = [
    ['missing', async () => {}, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d does not exist in the image/],
    ['a file', async () => { await mkdir(join(env.shared, 'etc'), { recursive: true }); await writeFile(dir, 'x'); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d is a file, not a directory/],
    ['a symlink out of the image', async () => { await mkdir(join(env.shared, 'etc'), { recursive: true }); await symlink('/etc/modprobe.d', dir); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d is a symlink, not a directory/],
    ['a subdirectory', async () => { await mkdir(join(dir, 'sub'), { recursive: true }); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/sub is a subdirectory; only regular modprobe\.d files/],
    ['a file symlinked out of the image', async () => { await mkdir(dir, { recursive: true }); await symlink('/etc/passwd', join(dir, 'x.conf')); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/x\.conf is a symlink; only regular/],
    ['a device file', async () => { await mkdir(dir, { recursive: true }); await execa('mknod', [join(dir, 'null.conf'), 'c', '1', '3']); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/null\.conf is a device file/],
    ['a FIFO', async () => { await mkdir(dir, { recursive: true }); await execa('mkfifo', [join(dir, 'f.conf')]); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/f\.conf is a FIFO/],
    ['a huge file', async () => { await mkdir(dir, { recursive: true }); await writeFile(join(dir, 'big.conf'), Buffer.alloc(1024 * 1024 + 1, 0x23)); }, {}, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/big\.conf is 1048577 bytes; a modprobe\.d file may have at most 1048576/],
    ['softdep.conf with modulesLoadingOrder', async () => { await stageImageConf(env, { 'softdep.conf': 'softdep kmm_hello pre: kmm_lib\n' }); }, { modulesLoadingOrder: ['kmm_hello', 'kmm_lib'] }, /^modprobe\.modprobedDir: \/etc\/kmm\.d\/softdep\.conf clashes with the softdep\.conf that modprobe\.modulesLoadingOrder needs/],
  ];
  for (const [name, setup, modprobe, message] of cases) {
    await execa('rm', ['-rf', join(env.shared, 'etc')]);
    await setup();
    const cfg = await cfgOf(env, modprobe, { inTreeModulesToRemove: ['dummy'] });
    for (const verb of ['load', 'unload']) {
      if (verb === 'unload') await env.host.addLoadedModule('kmm_hello');
      const r = await env.cli(['kmod', verb, cfg, '--firmware-path', '/lib/firmware']);
      t.equal(r.code, 1, `${name} (${verb}): exit 1`, { stderr: r.stderr });
      t.equal(r.errors.length, 1, `${name} (${verb}): one error line`);
      t.match(r.errors[0], message, `${name} (${verb})`);
    }
    await execa('rm', ['-rf', env.host.sysModule('kmm_hello')]);
  }
  t.same(await env.argv(), [], 'modprobe never ran');
  t.same(await env.host.loadedModules(), ['dummy'], 'the in-tree module is still loaded');
  t.same(await readdir(env.host.path('/lib/firmware')).catch(() => []), [], 'nothing written into the firmware dir');
});

t.test('softdep.conf without modulesLoadingOrder is just another file', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await stageImageConf(env, { 'softdep.conf': 'softdep kmm_hello post: dummy\n' });
  const r = await env.cli(['kmod', 'load', await cfgOf(env, {})]);
  t.equal(r.code, 0, 'load', { stderr: r.stderr });
});
