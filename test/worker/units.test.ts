import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseModuleConfig } from '../../src/config/module-config.js';
import { kernelMatches } from '../../src/kmod/names.js';
import { loadArgvs, unloadArgv } from '../../src/worker/modprobe-argv.js';
import { modulesOfArgv } from '../../src/kmod/modprobe-args.js';
import { createWorkerDeps } from '../../src/app/worker-deps.js';
import { isModuleLive } from '../../src/worker/load.js';
import { silentLogger } from '../../src/log.js';
import type { Context, GlobalOptions } from '../../src/context.js';
import { makeHostRoot } from '../helpers/host-root.js';
import { recordingModprobePath } from '../helpers/recording-modprobe.js';

t.test('kernel match: exact, or a trailing + on one side', async (t) => {
  t.ok(kernelMatches('6.1.0-27-amd64', '6.1.0-27-amd64'));
  t.ok(kernelMatches('5.15.0-cos+', '5.15.0-cos'));
  t.ok(kernelMatches('5.15.0-cos', '5.15.0-cos+'));
  t.notOk(kernelMatches('6.1.0-27-amd64', '6.1.0-28-amd64'));
  t.notOk(kernelMatches('6.1.0-27', '6.1.0-27-amd64'));
});

t.test('modprobe argv of §6.5 / §7.3', async (t) => {
  const c = parseModuleConfig(
    'kernelVersion: k\ncontainerImage: i\nmodprobe: {moduleName: a, parameters: [p=1], modulesLoadingOrder: [a, b, c], args: {load: [-q], unload: [-q]}}\n',
    'c',
  );
  t.same(loadArgvs(c, '/r'), [
    ['-v', '-d', '/r', '-q', 'c'],
    ['-v', '-d', '/r', '-q', 'b'],
    ['-v', '-d', '/r', '-q', 'a', 'p=1'],
  ]);
  t.same(unloadArgv(c, '/r'), ['-r', '-v', '-d', '/r', '-q', 'a', 'b', 'c']);
  const single = parseModuleConfig('kernelVersion: k\ncontainerImage: i\nmodprobe: {moduleName: a}\n', 'c');
  t.same(loadArgvs(single, '/r'), [['-v', '-d', '/r', 'a']]);
  t.same(unloadArgv(single, '/r'), ['-r', '-v', '-d', '/r', 'a']);
});

t.test('the modules a raw modprobe argv names', async (t) => {
  t.same(modulesOfArgv(['-v', '-d', '/opt', 'mod_a', 'x=1']), ['mod_a']);
  t.same(modulesOfArgv(['--dirname=/opt', 'mod_a']), ['mod_a']);
  t.same(modulesOfArgv(['-r', '-v', '-d', '/opt', 'a', 'b']), ['a', 'b']);
  t.same(modulesOfArgv(['-rv', 'a', 'b']), ['a', 'b']);
  t.same(modulesOfArgv(['-a', 'a', 'b']), ['a', 'b']);
  t.same(modulesOfArgv(['-S', '6.1', '-d/opt', 'a', 'p=2']), ['a']);
});

t.test('isModuleLive: every module of the config live in /sys/module', async (t) => {
  const host = await makeHostRoot({ kver: 'k' });
  t.teardown(host.cleanup);
  const opts = { hostRoot: host.root, modprobe: recordingModprobePath, modinfo: 'modinfo', depmod: 'depmod', dryRun: false, sharedDir: '/nonexistent' } as GlobalOptions;
  const ctx: Context = { opts, log: silentLogger(), stdout: process.stdout, signal: new AbortController().signal };
  const c = parseModuleConfig('kernelVersion: k\ncontainerImage: i\nmodprobe: {moduleName: a, modulesLoadingOrder: [a, b]}\n', 'c');
  const deps = await createWorkerDeps(ctx, c);
  t.equal(deps.identity.name, 'a', 'identity falls back to moduleName');
  t.equal(await isModuleLive(deps, c), false);
  await host.addLoadedModule('a');
  t.equal(await isModuleLive(deps, c), false, 'b is missing');
  await host.addLoadedModule('b', { initstate: 'coming' });
  t.equal(await isModuleLive(deps, c), false, 'b is not live yet');
  await writeFile(join(host.sysModule('b'), 'initstate'), 'live\n');
  t.equal(await isModuleLive(deps, c), true);
});

t.test('the recording modprobe is strict about its command line and plays the kernel', async (t) => {
  const host = await makeHostRoot({ kver: 'k' });
  t.teardown(host.cleanup);
  const env = { RECORDING_MODPROBE_HOST_ROOT: host.root, RECORDING_MODPROBE_LOG: join(host.root, 'log') };
  const run = (args: string[]) => execa(recordingModprobePath, args, { env, reject: false });
  const bad = await run(['--frobnicate', 'x']);
  t.equal(bad.exitCode, 1);
  t.match(bad.stderr, /unrecognized option '--frobnicate'/);
  t.equal((await run(['-Z', 'x'])).exitCode, 1, 'unknown short option');
  t.equal((await run(['-d'])).exitCode, 1, '-d without its value');
  t.equal((await run(['-v'])).exitCode, 1, 'no module');
  const notFound = await run(['-v', '-d', host.root, 'nomod']);
  t.equal(notFound.exitCode, 1);
  t.match(notFound.stderr, /FATAL: Module nomod not found in directory/);
  await host.addLoadedModule('held', { holders: ['user_mod'] });
  const inUse = await run(['-r', 'held']);
  t.equal(inUse.exitCode, 1);
  t.match(inUse.stderr, /FATAL: Module held is in use/);
  t.equal((await run(['-r', 'never_loaded'])).exitCode, 0, '-r of a module not loaded is a no-op');
  await host.addBuiltinModule('builtin_x');
  t.equal((await run(['-r', 'builtin_x'])).exitCode, 1, 'a built-in module cannot be removed');
});
