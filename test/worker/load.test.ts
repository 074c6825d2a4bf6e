import t, { type Test } from 'tap';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeEnv, type CliResult, type Env } from './fixtures.js';

const IMAGE = 'registry.example/kmm/kmods:1';
const cfgOf = (env: Env, modprobe: object, more: object = {}) =>
  env.config({ kernelVersion: env.kmods.kver, containerImage: IMAGE, ...more, modprobe });
const ok = (t: Test, r: CliResult, what = 'exit 0') => t.equal(r.code, 0, what, { stderr: r.stderr });
const sysfs = (env: Env, m: string, f: string) => readFile(join(env.host.sysModule(m), f), 'utf8').then((s) => s.trim());
const exists = (p: string) => stat(p).then(() => true, () => false);

/** The `insmod` lines modprobe printed (streamed into the log), in order. */
function insmodLines(r: CliResult): string[] {
  return r.stderr
    .split('\n')
    .flatMap((l) => {
      try {
        const j = JSON.parse(l) as { tool?: string; msg: string };
        return j.tool === 'modprobe' && j.msg.startsWith('insmod ') ? [j.msg.trim()] : [];
      } catch {
        return [];
      }
    });
}

/**
 * The same argv through the real kmod modprobe in dry-run mode: kmod itself says what it would insert. Each
 * dry run starts from the real (empty) kernel, so what an earlier call inserted is dropped, as a live kernel would.
 */
async function realModprobeInsmods(env: Env, argvs: string[][]): Promise<string[]> {
  const out: string[] = [];
  const inserted = new Set<string>();
  for (const argv of argvs) {
    const r = await execa('modprobe', ['-n', '-S', env.kmods.kver, ...argv]);
    for (const line of r.stdout.split('\n').map((l) => l.trim())) {
      const path = line.split(' ')[1];
      if (!line.startsWith('insmod ') || inserted.has(path!)) continue;
      inserted.add(path!);
      out.push(line);
    }
  }
  return out;
}

t.test('simple load, then unload', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' });
  const load = await env.cli(['kmod', 'load', cfg]);
  ok(t, load);
  const root = join(env.shared, 'opt');
  t.same(await env.argv(), [['-v', '-d', root, 'kmm_hello']]);
  t.equal(await sysfs(env, 'kmm_hello', 'initstate'), 'live');
  t.equal(await sysfs(env, 'kmm_hello', 'srcversion'), (await execa('modinfo', ['-F', 'srcversion', env.kmods.ko.kmm_hello!])).stdout.trim());
  t.same(insmodLines(load), await realModprobeInsmods(env, await env.argv()), 'kmod agrees on what is inserted');
  const unload = await env.cli(['kmod', 'unload', cfg]);
  ok(t, unload);
  t.same((await env.argv()).at(-1), ['-r', '-v', '-d', root, 'kmm_hello']);
  t.same(await env.host.loadedModules(), []);
});

t.test('parameters only on moduleName; args on every call; modulesLoadingOrder of 3 loads last to first', async (t) => {
  const env = await makeEnv({ modules: ['kmm_user', 'kmm_lib', 'kmm_standalone'] });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, {
    moduleName: 'kmm_user',
    modulesLoadingOrder: ['kmm_user', 'kmm_lib', 'kmm_standalone'],
    parameters: ['verbose=1'],
    args: { load: ['--ignore-install'], unload: ['--ignore-install'] },
  });
  const load = await env.cli(['kmod', 'load', cfg]);
  ok(t, load);
  const root = join(env.shared, 'opt');
  const argvs = await env.argv();
  t.same(argvs, [
    ['-v', '-d', root, '--ignore-install', 'kmm_standalone'],
    ['-v', '-d', root, '--ignore-install', 'kmm_lib'],
    ['-v', '-d', root, '--ignore-install', 'kmm_user', 'verbose=1'],
  ]);
  t.same(insmodLines(load), await realModprobeInsmods(env, argvs), 'insmod order proved by kmod itself');
  t.same(await env.host.loadedModules(), ['kmm_lib', 'kmm_standalone', 'kmm_user']);
  t.equal(await sysfs(env, 'kmm_lib', 'refcnt'), '1', 'kmm_user holds kmm_lib');
  const unload = await env.cli(['kmod', 'unload', cfg]);
  ok(t, unload);
  t.same((await env.argv()).at(-1), ['-r', '-v', '-d', root, '--ignore-install', 'kmm_user', 'kmm_lib', 'kmm_standalone']);
  t.same(await env.host.loadedModules(), []);
});

t.test('parameters with spaces reach modprobe as one argument each', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello', parameters: ['count=3', 'greeting=hello there'] });
  const load = await env.cli(['kmod', 'load', cfg]);
  ok(t, load);
  const argvs = await env.argv();
  t.same(argvs, [['-v', '-d', join(env.shared, 'opt'), 'kmm_hello', 'count=3', 'greeting=hello there']]);
  t.same(insmodLines(load), await realModprobeInsmods(env, argvs));
  t.equal(await sysfs(env, 'kmm_hello', 'parameters/greeting'), 'hello there');
});

t.test('rawArgs: exactly those arguments, once', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const root = join(env.shared, 'opt');
  const cfg = await cfgOf(env, { rawArgs: { load: ['-v', '-d', root, 'kmm_hello', 'count=7'], unload: ['-r', '-v', '-d', root, 'kmm_hello'] } });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  t.same(await env.argv(), [['-v', '-d', root, 'kmm_hello', 'count=7']]);
  t.equal(await sysfs(env, 'kmm_hello', 'parameters/count'), '7');
  ok(t, await env.cli(['kmod', 'unload', cfg]));
  t.same((await env.argv()).at(-1), ['-r', '-v', '-d', root, 'kmm_hello']);
  t.same(await env.host.loadedModules(), []);
});

t.test('in-tree removal: loaded ones in one modprobe -r -v on the host tree, absent ones skipped, -/_ equivalent', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('old_hello', { srcversion: 'AAAAAAAAAAAAAAAAAAAAAAA' });
  await env.host.addLoadedModule('old_helper', { srcversion: 'BBBBBBBBBBBBBBBBBBBBBBB' });
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' }, { inTreeModulesToRemove: ['old-hello', 'not_loaded', 'old_helper'] });
  const r = await env.cli(['kmod', 'load', cfg]);
  ok(t, r);
  t.same(await env.argv(), [
    ['-r', '-v', 'old-hello', 'old_helper'],
    ['-v', '-d', join(env.shared, 'opt'), 'kmm_hello'],
  ]);
  t.same(await env.host.loadedModules(), ['kmm_hello']);
  t.match(r.stderr, /in-tree module not_loaded is not loaded; nothing to remove/);
});

t.test('in-tree list with one loaded, one absent, one built-in: exit 1 before anything is touched', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'], firmware: { 'a.bin': 'A' } });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('old_hello', { srcversion: 'AAAAAAAAAAAAAAAAAAAAAAA' });
  await env.host.addBuiltinModule('builtin_drv');
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello', firmwarePath: '/firmware' }, { inTreeModulesToRemove: ['old_hello', 'absent_one', 'builtin-drv'] });
  const r = await env.cli(['kmod', 'load', cfg]);
  t.equal(r.code, 1);
  t.same(r.errors, ['inTreeModulesToRemove: builtin-drv is built into the running kernel and cannot be removed or replaced']);
  t.same(await env.argv(), [], 'no modprobe ran');
  t.same(await env.host.loadedModules(), ['old_hello'], 'the loaded in-tree module is still there');
  t.notOk(await exists(env.host.path('/var/lib/firmware/a.bin')), 'no firmware copied');
});

t.test('legacy inTreeModuleToRemove works like the list', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('old_hello');
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' }, { inTreeModuleToRemove: 'old_hello' });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  t.same((await env.argv())[0], ['-r', '-v', 'old_hello']);
});

t.test('an in-tree twin already live and not listed for removal: exit 1 with the srcversion message', async (t) => {
  const env = await makeEnv({ modules: ['dummy'] });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('dummy', { srcversion: 'D1E2A3D4B5E6E7F8A9B0C1D' });
  const cfg = await cfgOf(env, { moduleName: 'dummy' });
  const r = await env.cli(['kmod', 'load', cfg]);
  t.equal(r.code, 1);
  const image = (await execa('modinfo', ['-F', 'srcversion', env.kmods.ko.dummy!])).stdout.trim();
  t.same(r.errors, [
    `module dummy is live but is not the image's (srcversion D1E2A3D4B5E6E7F8A9B0C1D, the image's ${image}): the host's own dummy was already loaded; add it to inTreeModulesToRemove`,
  ]);
  t.same(await env.argv(), [['-v', '-d', join(env.shared, 'opt'), 'dummy']], 'modprobe ran (and found it already loaded)');

  // listed for removal: the twin goes, the image's module comes
  const fixed = await cfgOf(env, { moduleName: 'dummy' }, { inTreeModulesToRemove: ['dummy'] });
  ok(t, await env.cli(['kmod', 'load', fixed]));
  t.equal(await sysfs(env, 'dummy', 'srcversion'), image);
});

t.test('kernel mismatch: exit 1 before anything runs; a trailing + on one side still matches', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'], runningKernel: '6.1.0-99-amd64' });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' });
  const r = await env.cli(['kmod', 'load', cfg]);
  t.equal(r.code, 1);
  t.same(r.errors, [`kernelVersion ${env.kmods.kver} does not match the running kernel 6.1.0-99-amd64`]);
  t.same(await env.argv(), []);

  const plus = await makeEnv({ modules: ['kmm_hello'], runningKernel: `${env.kmods.kver}+` });
  t.teardown(plus.cleanup);
  const cfg2 = await cfgOf(plus, { moduleName: 'kmm_hello' });
  const r2 = await plus.cli(['kmod', 'load', cfg2]);
  ok(t, r2, 'running kernel with a trailing + loads');
  t.equal(await sysfs(plus, 'kmm_hello', 'initstate'), 'live');
  const [argv] = await plus.argv();
  t.not(argv![2], join(plus.shared, 'opt'), 'modprobe got a scratch root that also answers to the running release');
  t.notOk(await exists(argv![2]!), 'the scratch copy is gone afterwards');

  // the modules' vermagic is the real release, which the ABI check (issue 19) holds the config's to, `+` aside
  const plusCfg = await makeEnv({ modules: ['kmm_hello'], kver: `${env.kmods.kver}+`, runningKernel: env.kmods.kver });
  t.teardown(plusCfg.cleanup);
  const cfg3 = await plusCfg.config({ kernelVersion: `${env.kmods.kver}+`, containerImage: IMAGE, modprobe: { moduleName: 'kmm_hello' } });
  ok(t, await plusCfg.cli(['kmod', 'load', cfg3]), 'config with a trailing + loads on the kernel without');
});

t.test('missing modules.dep: depmod -b into a scratch copy; the shared dir is never written', async (t) => {
  const env = await makeEnv({ modules: ['kmm_user', 'kmm_lib'], depmod: false });
  t.teardown(env.cleanup);
  const kdir = join(env.shared, 'opt/lib/modules', env.kmods.kver);
  const cfg = await cfgOf(env, { moduleName: 'kmm_user' });
  const r = await env.cli(['kmod', 'load', cfg]);
  ok(t, r);
  t.match(r.stderr, /modules.dep is missing; running depmod -b \S+ /);
  const [argv] = await env.argv();
  t.equal(argv!.length, 4);
  t.not(argv![2], join(env.shared, 'opt'));
  t.same(await env.host.loadedModules(), ['kmm_lib', 'kmm_user'], 'the dependency came from the generated modules.dep');
  t.notOk(await exists(join(kdir, 'modules.dep')), 'no modules.dep written into the shared dir');
  t.notOk(await exists(argv![2]!), 'scratch removed');
  ok(t, await env.cli(['kmod', 'unload', cfg]));
  t.same(await env.host.loadedModules(), []);
});

t.test('the module is not in the kmods: exit 1 naming the file and the dir; no modprobe', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const r = await env.cli(['kmod', 'load', await cfgOf(env, { moduleName: 'kmm_missing' })]);
  t.equal(r.code, 1);
  t.match(r.errors[0], /^modprobe.moduleName: kmm_missing.ko \(or .ko.xz\/.ko.zst\/.ko.gz\) is not under \S+\/opt\/lib\/modules\//);
  t.same(await env.argv(), []);
});

t.test('no kmods in the shared dir and the image not pullable (policy Never, empty cache): exit 1, no modprobe', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await rm(join(env.shared, 'opt'), { recursive: true });
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' }, { imagePullPolicy: 'Never' });
  const r = await env.cli(['--images-dir', join(env.work, 'images'), 'kmod', 'load', cfg]);
  t.equal(r.code, 1);
  t.equal(r.errors.length, 1);
  t.match(r.errors[0], IMAGE, 'the message names the image');
  t.same(await env.argv(), []);
});

t.test('modprobe fails: exit 1 with modprobe\'s own complaint', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' });
  const r = await env.cli(['kmod', 'load', cfg], { RECORDING_MODPROBE_FAIL: 'kmm_hello' });
  t.equal(r.code, 1);
  t.same(r.errors, [`modprobe -v -d ${join(env.shared, 'opt')} kmm_hello failed (exit 1): modprobe: ERROR: could not insert 'kmm_hello': Invalid argument`]);
  const missing = await env.cli(['--modprobe', '/nonexistent/modprobe', 'kmod', 'load', cfg]);
  t.equal(missing.code, 1);
  t.same(missing.errors, ["modprobe: cannot run '/nonexistent/modprobe': not found"]);
});

t.test('loading twice is fine: modprobe finds it loaded, verification passes', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' });
  ok(t, await env.cli(['kmod', 'load', cfg]));
  ok(t, await env.cli(['kmod', 'load', cfg]));
  t.equal((await env.argv()).length, 2);
});

t.test('SIGTERM during a load: the running modprobe finishes, nothing more runs, scratch removed, exit 143', async (t) => {
  const env = await makeEnv({ modules: ['kmm_user', 'kmm_lib', 'kmm_standalone'], depmod: false });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_user', modulesLoadingOrder: ['kmm_user', 'kmm_lib', 'kmm_standalone'] });
  const sub = env.spawn(['kmod', 'load', cfg], { RECORDING_MODPROBE_DELAY_MS: '1500' });
  const deadline = Date.now() + 30_000;
  while ((await env.argv()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal((await env.argv()).length, 1, 'the first modprobe started');
  sub.kill('SIGTERM');
  const r = await sub;
  t.equal(r.exitCode, 143, 'exit 143', { stderr: r.stderr });
  t.match(String(r.stderr), /"msg":"interrupted by SIGTERM"/);
  const argvs = await env.argv();
  t.equal(argvs.length, 1, 'no modprobe after the signal');
  t.same(await env.host.loadedModules(), ['kmm_standalone'], 'the started modprobe completed');
  t.notOk(await exists(argvs[0]![2]!), 'the scratch copy is removed');
});

t.test('KMM_DEPMOD and KMM_MODINFO name the tools', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'], depmod: false });
  t.teardown(env.cleanup);
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' });
  const r = await env.cli(['kmod', 'load', cfg], { KMM_DEPMOD: '/nonexistent/depmod' });
  t.equal(r.code, 1);
  t.same(r.errors, ["depmod: cannot run '/nonexistent/depmod': not found"]);
  t.same(await env.argv(), []);
  const r2 = await env.cli(['kmod', 'load', cfg], { KMM_MODINFO: '/nonexistent/modinfo' });
  t.equal(r2.code, 1);
  t.same(r2.errors, ["modinfo: cannot run '/nonexistent/modinfo': not found"]);
});

t.test('compressed modules (.ko.xz): found, loaded, verified against their srcversion', async (t) => {
  const env = await makeEnv({ modules: ['kmm_user', 'kmm_lib'], depmod: false });
  t.teardown(env.cleanup);
  const kdir = join(env.shared, 'opt/lib/modules', env.kmods.kver);
  await execa('xz', ['--check=crc32', join(kdir, 'extra/kmm_user.ko'), join(kdir, 'extra/kmm_lib.ko')]);
  await execa('depmod', ['-b', join(env.shared, 'opt'), env.kmods.kver]);
  const cfg = await cfgOf(env, { moduleName: 'kmm_user' });
  const load = await env.cli(['kmod', 'load', cfg]);
  ok(t, load);
  t.same(insmodLines(load), await realModprobeInsmods(env, await env.argv()));
  t.match(insmodLines(load)[0], /kmm_lib\.ko\.xz$/);
  t.equal(await sysfs(env, 'kmm_user', 'srcversion'), (await execa('modinfo', ['-F', 'srcversion', env.kmods.ko.kmm_user!])).stdout.trim());
});

t.test('an in-tree module that is in use cannot be removed: exit 1 naming its holders; nothing loaded', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('old_hello', { holders: ['old_consumer'] });
  const cfg = await cfgOf(env, { moduleName: 'kmm_hello' }, { inTreeModulesToRemove: ['old_hello'] });
  const r = await env.cli(['kmod', 'load', cfg]);
  t.equal(r.code, 1);
  t.same(r.errors, ['cannot remove in-tree module: module old_hello is in use (refcnt 1, used by old_consumer); unload those first']);
  t.same(await env.argv(), [['-r', '-v', 'old_hello']]);
  t.same(await env.host.loadedModules(), ['old_hello']);
});
