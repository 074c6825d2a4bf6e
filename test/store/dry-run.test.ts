/**
 * Issue 14, row DR: `--dry-run` never writes anywhere. Each command that can write (image pull, image prune,
 * kmod load/unload through an image, day1 pull/load) and each read-only one runs under --dry-run against a
 * snapshot (paths, types, sizes, modes, mtimes, contents) of every directory it could touch: the images dir,
 * the layout, the shared dir and the host root.
 */
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ociLayout, rawTar } from '../helpers/hostile-layers.js';
import { makeEnv } from '../worker/fixtures.js';

/** Every path under each dir (not following links): type, mode, size, mtime and content hash; 'absent' if missing. */
async function snapshot(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = path.join(d, name);
      const st = await lstat(p);
      const hash = st.isFile() ? crypto.createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16) : '';
      out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${hash}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  for (const d of dirs) {
    const st = await lstat(d).catch(() => undefined);
    if (!st) out.push(`${d} absent`);
    else {
      out.push(`${d} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) await walk(d);
    }
  }
  return out;
}

async function setup(t: Test) {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const kver = env.kmods.kver;
  const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-dry-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const layout = path.join(work, 'layout');
  const ko = await readFile(env.kmods.ko.kmm_hello!);
  await ociLayout(layout, 'v1', [rawTar([
    { name: `opt/lib/modules/${kver}/kmm_hello.ko`, body: ko },
    { name: 'firmware/fw.bin', body: 'fw' },
  ])]);
  const images = path.join(work, 'images');
  const emptyShared = path.join(work, 'shared');
  await mkdir(emptyShared);
  const cfg = await env.config({
    kernelVersion: kver, containerImage: `oci:${layout}:v1`, modprobe: { moduleName: 'kmm_hello', firmwarePath: '/firmware' },
  });
  const dirs = [images, layout, emptyShared, env.shared, env.host.root];
  const run = (args: string[], extra: Record<string, string> = {}) =>
    env.cli(['--images-dir', images, '--shared-dir', emptyShared, ...args], extra);
  return { env, kver, layout, images, cfg, dirs, run };
}

t.test('DR: every command under --dry-run leaves every directory it could touch as it was', async (t) => {
  const s = await setup(t);
  const { kver, layout } = s;
  const ref = `oci:${layout}:v1`;
  const day1 = { KMM_DAY1_IMAGE: `oci:${layout}`, KMM_DAY1_MODULE: 'kmm_hello', KMM_DAY1_REBOOT_COMMAND: '/bin/false' };

  const check = async (label: string, args: string[], expect: { code: number; stdout?: RegExp }, env: Record<string, string> = {}) => {
    const before = await snapshot(s.dirs);
    const r = await s.run(['--dry-run', ...args], env);
    t.equal(r.code, expect.code, `${label}: exit ${expect.code}`, { stderr: r.stderr.slice(0, 3000) });
    if (expect.stdout) t.match(r.stdout + r.errors.join('\n'), expect.stdout, `${label}: says what it would do`);
    t.same(await snapshot(s.dirs), before, `${label}: nothing written`);
    return r;
  };

  // an empty cache: nothing is created, not even the images dir
  await check('image pull (not cached)', ['image', 'pull', ref, '--kernel', kver], { code: 0, stdout: /^# dry run: would pull oci:.*:v1 sha256:[0-9a-f]{64} \(1 layer, \d+ bytes\) into /m });
  await check('image pull --all --json', ['image', 'pull', ref, '--all', '--json'], { code: 0, stdout: /"dryRun":true,"action":"download"/ });
  await check('kmod load (image not cached)', ['kmod', 'load', s.cfg], { code: 1, stdout: /dry run: would pull oci:.* the rest of the plan needs its files/ });
  await check('image ls', ['image', 'ls'], { code: 0 });
  await check('image prune', ['image', 'prune', '--older-than', '0s'], { code: 0, stdout: /0 entries would be removed/ });

  // a real pull fills the cache; then make its last-used time old, so a prune would remove it
  const pulled = await s.run(['image', 'pull', ref, '--kernel', kver, '--firmware-dir', '/firmware']);
  t.equal(pulled.code, 0, 'the real pull works', { stderr: pulled.stderr.slice(0, 2000) });
  const pulledAll = await s.run(['image', 'pull', ref, '--all']);
  t.equal(pulledAll.code, 0);
  const old = new Date(Date.now() - 30 * 86_400_000);
  for (const f of await readdir(path.join(s.images), { recursive: true })) await utimes(path.join(s.images, f), old, old);

  await check('image pull (cached)', ['image', 'pull', ref, '--kernel', kver, '--firmware-dir', '/firmware'], { code: 0, stdout: /is in the cache/ });
  await check('image pull --pull-policy Always', ['image', 'pull', ref, '--all', '--pull-policy', 'Always'], { code: 0, stdout: /is in the cache/ });
  await check('image prune --older-than 0s', ['image', 'prune', '--older-than', '0s'], { code: 0, stdout: /would remove oci:[\s\S]*2 entries would be removed/ });
  await check('image prune --json', ['image', 'prune', '--older-than', '0s', '--json'], { code: 0, stdout: /"dryRun":true/ });
  await check('image inspect', ['image', 'inspect', ref], { code: 0 });
  await check('image ls', ['image', 'ls'], { code: 0 });
  await check('kmod load (image cached)', ['kmod', 'load', s.cfg], { code: 0, stdout: /run modprobe -v -d .* kmm_hello/ });
  await check('kmod unload (image cached)', ['kmod', 'unload', s.cfg], { code: 0 });
  await check('day1 load', ['day1', 'load'], { code: 0 }, day1);
  await check('day1 pull', ['day1', 'pull'], { code: 0 }, day1);
  await check('run', ['run', s.cfg], { code: 0 });

  // and the real prune still removes them
  const pruned = await s.run(['image', 'prune', '--older-than', '0s']);
  t.match(pruned.stdout, /2 entries removed/);
});
