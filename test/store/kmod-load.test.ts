import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureTestKmods } from '../kmods/kmods.js';
import { makeHostRoot } from '../helpers/host-root.js';
import { recordedArgv, recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage, type LayerSpec } from '../helpers/images.js';
import { cli } from './fixtures.js';

const run = promisify(execFile);
const kmods = await ensureTestKmods();
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-imgload-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());

// a real kmod image: kmm_hello.ko + the real depmod's modules.dep in one layer, firmware in another
const staging = path.join(work, 'staging');
const modDir = path.join(staging, 'opt/lib/modules', kmods.kver);
await mkdir(path.join(modDir, 'extra'), { recursive: true });
await copyFile(kmods.ko.kmm_hello!, path.join(modDir, 'extra/kmm_hello.ko'));
await run('depmod', ['-b', path.join(staging, 'opt'), kmods.kver]);
const modulesLayer: LayerSpec = {};
for (const name of await readdir(modDir, { recursive: true })) {
  const p = path.join(modDir, name);
  if (!name.includes('.')) continue; // directories (extra/)
  modulesLayer[path.relative(staging, p)] = await readFile(p);
}
const img = await buildLayout({
  dir: path.join(work, 'layout'),
  tag: 'v1',
  layers: [modulesLayer, { 'firmware/kmm/hello-fw.bin': 'firmware bytes\n' }],
});
const ref = `${reg.host}/kmod-hello:${kmods.kver}`;
await pushImage(img, reg, `kmod-hello:${kmods.kver}`);

async function setup(t: { teardown(f: () => unknown): void }, policy = 'IfNotPresent', dirName = '/opt') {
  const host = await makeHostRoot({ kver: kmods.kver });
  t.teardown(() => host.cleanup());
  const dir = await mkdtemp(path.join(work, 'case-'));
  const config = path.join(dir, 'config.yaml');
  await writeFile(config, [
    `kernelVersion: ${kmods.kver}`,
    `containerImage: ${ref}`,
    `imagePullPolicy: ${policy}`,
    'modprobe:',
    '  moduleName: kmm_hello',
    `  dirName: ${dirName}`,
    '  firmwarePath: /firmware',
    '',
  ].join('\n'));
  const logFile = path.join(dir, 'modprobe.log');
  const images = path.join(dir, 'images');
  const shared = path.join(dir, 'empty-shared');
  await mkdir(shared);
  const kmm = (args: string[]) =>
    cli(['--host-root', host.root, '--shared-dir', shared, '--images-dir', images, '--modprobe', recordingModprobePath, '--report', 'off', ...args], {
      env: recordingModprobeEnv(host.root, logFile),
    });
  return { host, config, images, kmm, argv: () => recordedArgv(logFile) };
}

t.test('kmod load pulls containerImage when the shared dir is empty, and loads from the cache afterwards', async (t) => {
  const s = await setup(t);
  const load = await s.kmm(['kmod', 'load', s.config, '--firmware-path', '/var/lib/firmware']);
  t.equal(load.code, 0, load.stderr);
  const [argv] = await s.argv();
  t.equal(argv?.[0], '-v');
  t.equal(argv?.[1], '-d');
  const modulesRoot = argv![2]!;
  t.ok(modulesRoot.startsWith(path.join(s.images, 'entries') + '/') && modulesRoot.endsWith('/rootfs/opt'), `modprobe -d ${modulesRoot}`);
  t.same(argv!.slice(3), ['kmm_hello']);
  t.equal((await readFile(path.join(s.host.sysModule('kmm_hello'), 'initstate'), 'utf8')).trim(), 'live');
  t.equal(await readFile(s.host.path('/var/lib/firmware/kmm/hello-fw.bin'), 'utf8'), 'firmware bytes\n', 'firmware copied from the image');

  const unload = await s.kmm(['kmod', 'unload', s.config, '--firmware-path', '/var/lib/firmware']);
  t.equal(unload.code, 0, unload.stderr);

  await reg.stop();
  try {
    const again = await s.kmm(['kmod', 'load', s.config, '--firmware-path', '/var/lib/firmware']);
    t.equal(again.code, 0, `IfNotPresent loads from the cache with the registry down: ${again.stderr}`);
    t.same((await s.argv()).at(-1), ['-v', '-d', modulesRoot, 'kmm_hello']);
  } finally {
    await reg.start();
  }
});

t.test('a dirName the image does not use: exit 1 naming what the image carries, no cache entry, modprobe never runs', async (t) => {
  const s = await setup(t, 'IfNotPresent', '/');
  const load = await s.kmm(['kmod', 'load', s.config]);
  t.equal(load.code, 1, load.stderr);
  t.match(load.stderr, `image ${ref} has no /lib/modules/${kmods.kver}; it carries kernels ${kmods.kver} (dirName /opt); ` +
    `kernel ${kmods.kver} is there under dirName /opt: set modprobe.dirName (--dir-name) to /opt`);
  t.same(await readdir(path.join(s.images, 'entries')), [], 'no cache entry');
  t.same(await readdir(path.join(s.images, 'tmp')), [], 'no debris');
  t.same(await s.argv(), [], 'modprobe never ran');
});

t.test('imagePullPolicy Never with nothing cached fails before touching the host', async (t) => {
  const s = await setup(t, 'Never');
  const load = await s.kmm(['kmod', 'load', s.config]);
  t.equal(load.code, 1);
  t.match(load.stderr, /is not in the cache .* pull policy is Never/);
  t.same(await s.argv(), [], 'modprobe never ran');
});
