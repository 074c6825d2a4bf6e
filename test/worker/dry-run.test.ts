import t, { type Test } from 'tap';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeEnv, type Env } from './fixtures.js';

const srcversion = async (ko: string) => (await execa('modinfo', ['-F', 'srcversion', ko])).stdout.trim();

/** Every path under a dir with its content (files) — to prove a dry run changed nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length)] = e.isFile() ? await readFile(p, 'utf8') : e.isDirectory() ? '<dir>' : '<other>';
  }
  return out;
}

async function setup(t: Test): Promise<{ env: Env; cfg: string }> {
  const env = await makeEnv({
    modules: ['kmm_user', 'kmm_lib', 'kmm_fw'],
    firmware: { 'kmm/a.bin': 'A', 'b.bin': 'B' },
    firmwareClassPath: '/lib/firmware',
  });
  t.teardown(env.cleanup);
  await env.host.addLoadedModule('old_user', { srcversion: 'AAAAAAAAAAAAAAAAAAAAAAA' });
  const cfg = await env.config({
    kernelVersion: env.kmods.kver,
    containerImage: 'registry.example/kmm/kmods:1',
    inTreeModulesToRemove: ['old_user', 'absent_one'],
    modprobe: { moduleName: 'kmm_user', modulesLoadingOrder: ['kmm_user', 'kmm_lib'], parameters: ['x=1'], firmwarePath: '/firmware' },
  });
  return { env, cfg };
}

t.test('dry-run load prints every command and file of steps 3-6 and changes nothing', async (t) => {
  const { env, cfg } = await setup(t);
  const before = await snapshot(env.host.root);
  const sharedBefore = await snapshot(env.shared);
  const r = await env.cli(['--dry-run', 'kmod', 'load', cfg, '--firmware-path', '/var/lib/firmware']);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const root = join(env.shared, 'opt');
  const fw = env.host.path('/var/lib/firmware');
  const sysPath = env.host.path('/sys/module/firmware_class/parameters/path');
  t.equal(
    r.stdout,
    [
      `# dry run: load kmm-ops/kmm_user for kernel ${env.kmods.kver}`,
      `# kmods from shared dir ${root}/lib/modules/${env.kmods.kver}`,
      `# signature: module kmm_user is unsigned; this node does not enforce module signatures, so loading it will taint the kernel`,
      `# signature: module kmm_lib is unsigned; this node does not enforce module signatures, so loading it will taint the kernel`,
      `# abi: module kmm_user vermagic ${env.kmods.kver} matches kernel ${env.kmods.kver}`,
      `# abi: module kmm_lib vermagic ${env.kmods.kver} matches kernel ${env.kmods.kver}`,
      `# abi: neither /proc/kallsyms nor a System.map can be read: symbols not checked`,
      `# in-tree module absent_one is not loaded: nothing to remove`,
      `run modprobe -r -v old_user`,
      `copy ${env.shared}/firmware/b.bin -> ${fw}/b.bin`,
      `mkdir -p ${fw}/kmm`,
      `copy ${env.shared}/firmware/kmm/a.bin -> ${fw}/kmm/a.bin`,
      `mkdir -p ${fw}/.kmm-worker/kmm-ops`,
      `write ${fw}/.kmm-worker/kmm-ops/kmm_user.json (${r.stdout.match(/kmm_user\.json \((\d+) bytes/)?.[1]} bytes)`,
      `write ${sysPath}: /var/lib/firmware`,
      `run modprobe -v -d ${root} kmm_lib`,
      `run modprobe -v -d ${root} kmm_user x=1`,
      `verify ${env.host.path('/sys/module/kmm_user')} is live with srcversion ${await srcversion(env.kmods.ko.kmm_user!)}`,
      `verify ${env.host.path('/sys/module/kmm_lib')} is live with srcversion ${await srcversion(env.kmods.ko.kmm_lib!)}`,
    ].join('\n'),
  );
  t.same(await env.argv(), [], 'modprobe never ran');
  t.same(await snapshot(env.host.root), before, 'host root unchanged');
  t.same(await snapshot(env.shared), sharedBefore, 'shared dir unchanged');
  const messages = r.stderr.trim().split('\n').map((l) => JSON.parse(l).msg as string);
  t.ok(messages.length > 0, 'the flow logged');
  t.same(messages.filter((m) => !m.startsWith('(dry run) ')), [], "every log line of the flow says it is a dry run");
});

t.test('dry-run unload prints the modprobe -r and the firmware it would remove', async (t) => {
  const { env, cfg } = await setup(t);
  t.equal((await env.cli(['kmod', 'load', cfg])).code, 0);
  const before = await snapshot(env.host.root);
  const r = await env.cli(['--dry-run', 'kmod', 'unload', cfg]);
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const fw = env.host.path('/var/lib/firmware');
  const root = join(env.shared, 'opt');
  t.match(r.stdout, `run modprobe -r -v -d ${root} kmm_user kmm_lib\n`);
  t.match(r.stdout, `remove ${fw}/b.bin\n`);
  t.match(r.stdout, `remove ${fw}/kmm/a.bin\n`);
  t.match(r.stdout, `rmdir ${fw}/kmm (if empty)\n`);
  t.match(r.stdout, `remove ${fw}/.kmm-worker/kmm-ops/kmm_user.json\n`);
  t.equal((await env.argv()).length, 3, 'only the real load ran modprobe (2 loads + in-tree removal)');
  t.same(await snapshot(env.host.root), before, 'host root unchanged');
  t.ok(await stat(join(fw, 'b.bin')));
});

t.test('dry-run with an invalid config is still exit 2', async (t) => {
  const { env } = await setup(t);
  const bad = await env.config('kernelVersion: x\ncontainerImage: y\nmodprobe: {}\n');
  const r = await env.cli(['--dry-run', 'kmod', 'load', bad]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
});
