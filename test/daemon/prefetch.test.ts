// `run` (daemon) prefetches too: once its config is loaded, a config image tagged with its kernel release
// (`<repo>:<kernel>`) is also stored for each other kernel installed on the node (test/day1/prefetch.test.ts has
// the sources), and a missing one is a warning, never a failed pass.
import t from 'tap';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage } from '../helpers/images.js';
import { cliPath } from '../worker/fixtures.js';
import { makeDaemonEnv, untilReady } from './fixtures.js';

const NEXT = '6.1.0-90-amd64';
const NO_IMAGE = '6.1.0-91-amd64';

t.test('run: after the load, the next installed kernel\'s image is stored; a missing one is a warning', async (t) => {
  const d = await makeDaemonEnv(['kmm_hello']);
  t.teardown(d.cleanup);
  const work = await mkdtemp(join(tmpdir(), 'kmm-daemon-prefetch-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  const layout = await buildLayout({
    dir: join(work, 'layout'), tag: NEXT,
    layers: [{ [`opt/lib/modules/${NEXT}/kmm_hello.ko`]: await readFile(d.env.kmods.ko.kmm_hello!) }],
  });
  await pushImage(layout, registry, `kmm/kmods:${NEXT}`);
  for (const release of [NEXT, NO_IMAGE]) {
    await mkdir(d.env.host.path(`/lib/modules/${release}/kernel`), { recursive: true });
    await mkdir(d.env.host.path('/boot'), { recursive: true });
    await writeFile(d.env.host.path(`/boot/vmlinuz-${release}`), 'kernel');
  }
  const kver = d.env.kmods.kver;
  const repo = `${registry.host}/kmm/kmods`;
  await d.volume.write({ kernelVersion: kver, containerImage: `${repo}:${kver}`, modprobe: { moduleName: 'kmm_hello' } });
  const imagesDir = join(work, 'images');
  const daemon = await d.start([], { KMM_IMAGES_DIR: imagesDir });
  await untilReady(daemon);
  const stored = await daemon.waitFor((l) => l.msg.startsWith(`prefetched ${repo}:${NEXT}@sha256:`), 60_000);
  t.equal(stored.level, 30, 'the next kernel\'s image is prefetched');
  const warn = await daemon.waitFor((l) => l.msg.includes(`installed kernel ${NO_IMAGE}`), 60_000);
  t.equal(warn.level, 40, 'a missing image for another kernel is a warning');
  t.match(warn.msg, `push ${repo}:${NO_IMAGE}`, 'naming the tag to push');
  const ls = await execa(process.execPath, [cliPath, 'image', 'ls', '--images-dir', imagesDir, '--json']);
  t.match(String(ls.stdout), `${repo}:${NEXT}`, 'the store holds it');
  t.same(await d.env.host.loadedModules(), ['kmm_hello'], 'the running kernel\'s module stays loaded');
  daemon.proc.kill('SIGTERM');
  t.equal((await daemon.exit).code, 0, 'exits 0 on SIGTERM');
});
