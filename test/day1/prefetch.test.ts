/**
 * Prefetch for the next kernel: `day1 pull` stores `<repo>:<release>` for every kernel installed but not running,
 * found in a host root the way a node shows them (/lib/modules + /boot/vmlinuz, BLS entries + GRUB's saved_entry,
 * rpm-ostree deployments), so the first boot of that kernel loads from the store with no pull and no reboot.
 * Real CLI, real docker-registry on 127.0.0.1, real .ko bytes, the recording modprobe and reboot command.
 */
import t from 'tap';
import { runCli, type CliResult } from '../helpers/run-cli.js';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ensureTestKmods, koBuiltFor } from '../kmods/kmods.js';
import { makeHostRoot, type HostRoot } from '../helpers/host-root.js';
import { recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage } from '../helpers/images.js';
import { CLI, recordingReboot } from './systemd-root.js';

const kmods = await ensureTestKmods();
const running = kmods.kver;
// releases of other installed kernels; each image's module names its release in vermagic (the load checks it)
const NEXT = running.replace(/-(\d+)-/, (_, abi: string) => `-${(abi.startsWith('9') ? '8' : '9').repeat(abi.length)}-`);
const NO_IMAGE = '6.1.0-91-amd64';
const BLS_ONLY = '6.1.0-92-amd64';
const OSTREE = '5.14.0-427.50.1.el9_4.x86_64';
const work = await mkdtemp(join(tmpdir(), 'kmm-prefetch-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const registry = await startRegistry();
t.teardown(() => registry.stop());
const ko = await readFile(kmods.ko.kmm_hello!);
for (const release of [running, NEXT, BLS_ONLY, OSTREE]) {
  const layout = await buildLayout({
    dir: join(work, 'layout'),
    tag: release,
    layers: [{ [`opt/lib/modules/${release}/extra/kmm_hello.ko`]: koBuiltFor(ko, release) }],
  });
  await pushImage(layout, registry, `day1/kmod:${release}`);
}
const repo = `${registry.host}/day1/kmod`;

// The reboot command the pull runs: records its argv, one line per call.
const { script: rebootScript, reboots } = await recordingReboot(work);

// rpm-ostree as RHCOS prints it (the fields kmm-worker reads), on PATH only for the tests that want it
const fakeBin = join(work, 'bin');
await mkdir(fakeBin);
const OSTREE_CSUM = 'a'.repeat(64);
await writeFile(join(fakeBin, 'rpm-ostree'), `#!/bin/sh
[ "$1 $2" = "status --json" ] || { echo "unexpected: $*" >&2; exit 1; }
cat <<'EOF'
{"deployments":[
 {"id":"rhcos-${OSTREE_CSUM}.0","osname":"rhcos","checksum":"${OSTREE_CSUM}","serial":0,"booted":false,"staged":true,"version":"417.94.202501"},
 {"id":"rhcos-${'b'.repeat(64)}.0","osname":"rhcos","checksum":"${'b'.repeat(64)}","serial":0,"booted":true,"staged":false}
]}
EOF
`);
await chmod(join(fakeBin, 'rpm-ostree'), 0o755);

async function cli(host: HostRoot, imagesDir: string, args: string[], opts: { env?: Record<string, string>; offline?: boolean } = {}): Promise<CliResult> {
  return runCli(['--log-format', 'json', ...args], {
    ...(opts.offline ? { wrapper: ['unshare', '--net'] } : {}),
    env: {
      KMM_HOST_ROOT: host.root,
      KMM_IMAGES_DIR: imagesDir,
      KMM_MODPROBE: recordingModprobePath,
      KMM_REPORT: 'off',
      ...recordingModprobeEnv(host.root, join(work, 'modprobe.log')),
      ...opts.env,
    },
  });
}

const pull = (host: HostRoot, imagesDir: string, env?: Record<string, string>) =>
  cli(host, imagesDir, ['day1', 'pull', '--image', repo, '--module', 'kmm_hello', '--reboot-command', `${rebootScript} now`], { env });

async function storedTags(imagesDir: string): Promise<string[]> {
  const r = await execa(process.execPath, [CLI, 'image', 'ls', '--images-dir', imagesDir, '--json'], { reject: false });
  const list = JSON.parse(String(r.stdout) || '[]') as Array<{ references: string[] }>;
  return list.flatMap((i) => i.references).map((r) => r.slice(r.lastIndexOf(':') + 1)).sort();
}

/** A kernel installed the Debian way: its modules tree and /boot/vmlinuz-<release>. */
async function installKernel(host: HostRoot, release: string): Promise<void> {
  await mkdir(join(host.root, 'lib/modules', release, 'kernel'), { recursive: true });
  await mkdir(join(host.root, 'boot'), { recursive: true });
  await writeFile(join(host.root, 'boot', `vmlinuz-${release}`), 'kernel image');
}

async function removeKernel(host: HostRoot, release: string): Promise<void> {
  await rm(join(host.root, 'lib/modules', release), { recursive: true, force: true });
  await rm(join(host.root, 'boot', `vmlinuz-${release}`), { force: true });
}

t.test('modules + vmlinuz: the next kernel\'s image is stored with the running one; one reboot, for the running one', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'debian-store');
  await installKernel(host, running);
  await installKernel(host, NEXT);
  // a modules tree left behind by a removed kernel package has no kernel image: not bootable, not prefetched
  await mkdir(join(host.root, 'lib/modules', '6.1.0-10-amd64', 'kernel'), { recursive: true });
  const before = (await reboots()).length;

  const r = await pull(host, store);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `prefetched ${repo}:${NEXT}@sha256:`, 'says it prefetched the next kernel\'s image');
  t.same(await storedTags(store), [NEXT, running].sort(), 'the store holds the running and the next kernel\'s images, nothing else');
  t.equal((await reboots()).length - before, 1, 'one reboot: the running kernel\'s image was new');

  const again = await pull(host, store);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stderr, `${repo}:${NEXT} for the installed kernel ${NEXT} is already in the store`);
  t.equal((await reboots()).length - before, 1, 'no reboot when everything was stored');

  // the next boot: the new kernel runs, the network is not up yet; the load finds its image in the store
  await writeFile(join(host.root, 'proc/sys/kernel/osrelease'), `${NEXT}\n`);
  const load = await cli(host, store, ['day1', 'load', '--image', repo, '--module', 'kmm_hello'], { offline: true });
  t.equal(load.code, 0, load.stderr);
  t.match(load.stderr, `loading kmm_hello from the stored image ${repo}:${NEXT}@sha256:`, 'the first boot of the new kernel loads early');
  t.match(load.stderr, `insmod /tmp/kmm-worker-kmods-`, 'modprobe inserted the module');
  t.match(load.stderr, `lib/modules/${NEXT}/extra/kmm_hello.ko`, '... from the new kernel\'s tree');
  t.match(load.stderr, '"module kmm_hello is live"', 'and it is live');

  // the old kernel is removed from the node: its entry goes at the next pull
  await removeKernel(host, running);
  const afterRemoval = await pull(host, store);
  t.equal(afterRemoval.code, 0, afterRemoval.stderr);
  t.match(afterRemoval.stderr, `removed ${repo}:${running} from the store: kernel ${running} is no longer installed`);
  t.same(await storedTags(store), [NEXT], 'only the running (new) kernel\'s image is left');
  t.equal((await reboots()).length - before, 1, 'still no second reboot');
});

t.test('no image for the next kernel: a warning naming the tag to push; the running kernel is served, no extra reboot', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'missing-store');
  await installKernel(host, running);
  await installKernel(host, NO_IMAGE);
  const before = (await reboots()).length;
  const r = await pull(host, store);
  t.equal(r.code, 0, r.stderr);
  const warn = r.stderr.split('\n').map((l) => { try { return JSON.parse(l) as { level: number; msg: string }; } catch { return undefined; } })
    .find((l) => l?.msg.includes(`installed kernel ${NO_IMAGE}`));
  t.ok(warn, 'a log line about the next kernel', { stderr: r.stderr });
  t.equal(warn?.level, 40, 'it is a warning');
  t.match(warn?.msg ?? '', `push ${repo}:${NO_IMAGE}`, 'naming the tag to push');
  t.same(await storedTags(store), [running], 'the running kernel\'s image is stored');
  t.equal((await reboots()).length - before, 1, 'one reboot, for the running kernel\'s new image only');
  const again = await pull(host, store);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stderr, `push ${repo}:${NO_IMAGE}`, 'the warning again on the next run');
  t.equal((await reboots()).length - before, 1, 'and never a reboot for it');
});

t.test('BLS entries and GRUB saved_entry: the default entry\'s kernel is prefetched and named as the next boot', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'bls-store');
  await mkdir(join(host.root, 'boot/loader/entries'), { recursive: true });
  await mkdir(join(host.root, 'boot/grub2'), { recursive: true });
  await writeFile(join(host.root, `boot/loader/entries/abc-${running}.conf`), `title Old\nversion ${running}\nlinux /vmlinuz-${running}\n`);
  await writeFile(join(host.root, `boot/loader/entries/abc-${BLS_ONLY}.conf`), `title New\nversion ${BLS_ONLY}\nlinux /vmlinuz-${BLS_ONLY}\ninitrd /initramfs-${BLS_ONLY}.img\n`);
  await writeFile(join(host.root, 'boot/grub2/grubenv'), `# GRUB Environment Block\nsaved_entry=abc-${BLS_ONLY}\n${'#'.repeat(900)}\n`);
  const r = await pull(host, store);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `the next boot starts kernel ${BLS_ONLY} (default boot entry)`);
  t.match(r.stderr, `prefetched ${repo}:${BLS_ONLY}@sha256:`);
  t.same(await storedTags(store), [BLS_ONLY, running].sort());
});

t.test('GRUB saved_entry naming a Debian menu entry: the release in it is the next boot', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'grub-store');
  await installKernel(host, NEXT);
  await mkdir(join(host.root, 'boot/grub'), { recursive: true });
  await writeFile(join(host.root, 'boot/grub/grubenv'), `saved_entry=gnulinux-advanced-1234>gnulinux-${NEXT}-advanced-1234\n`);
  const r = await pull(host, store);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `the next boot starts kernel ${NEXT} (default boot entry)`);
  t.match(r.stderr, `prefetched ${repo}:${NEXT}@sha256:`);
});

t.test('rpm-ostree: the staged deployment\'s kernel is prefetched', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'ostree-store');
  await mkdir(join(host.root, `ostree/deploy/rhcos/deploy/${OSTREE_CSUM}.0/usr/lib/modules/${OSTREE}/kernel`), { recursive: true });
  const r = await pull(host, store, { PATH: `${fakeBin}:${process.env.PATH}` });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `the next boot starts kernel ${OSTREE} (default boot entry)`);
  t.match(r.stderr, `prefetched ${repo}:${OSTREE}@sha256:`);
  t.same(await storedTags(store), [OSTREE, running].sort());
});

t.test('--dry-run says what it would prefetch and stores nothing', async (t) => {
  const host = await makeHostRoot({ kver: running });
  t.teardown(() => host.cleanup());
  const store = join(work, 'dry-store');
  await installKernel(host, NEXT);
  const r = await cli(host, store, ['--dry-run', 'day1', 'pull', '--image', repo, '--module', 'kmm_hello']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `would prefetch ${repo}:${NEXT} for the installed kernel ${NEXT}`);
  t.same(await storedTags(store), []);
});
