/**
 * `day1 pull` and `day1 load` end to end, as the units run them: the real CLI, a real docker-registry on
 * 127.0.0.1, an image built with umoci holding the project's real .ko, a host root, the recording modprobe,
 * and a recording reboot command. The store-only load is proven offline twice over: the registry is stopped and
 * the CLI runs in a fresh network namespace (`unshare --net`) with no route anywhere.
 */
import t from 'tap';
import { runCli, type CliResult } from '../helpers/run-cli.js';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestKmods } from '../kmods/kmods.js';
import { makeHostRoot, type HostRoot } from '../helpers/host-root.js';
import { recordedArgv, recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { freePort, startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage } from '../helpers/images.js';
import { REPO, parseEnvFile, recordingReboot } from './systemd-root.js';


const kmods = await ensureTestKmods();
const kver = kmods.kver;
const work = await mkdtemp(join(tmpdir(), 'kmm-day1-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const registry = await startRegistry();
t.teardown(() => registry.stop());
const firmware = Buffer.from(`firmware for kmm_hello ${Date.now()}\n`);
const modulesDir = `opt/lib/modules/${kver}`;
const good = await buildLayout({
  dir: join(work, 'layout'),
  tag: 'good',
  layers: [
    {
      [`${modulesDir}/extra/kmm_hello.ko`]: await readFile(kmods.ko.kmm_hello!),
      [`${modulesDir}/host`]: { symlink: `/lib/modules/${kver}` },
    },
    { 'firmware/kmm/kmm_fw.bin': firmware },
  ],
});
// the right kernel directory, the wrong module: stored, but useless for this node
const noModule = await buildLayout({
  dir: join(work, 'layout'),
  tag: 'no-module',
  layers: [{ [`${modulesDir}/extra/kmm_standalone.ko`]: await readFile(kmods.ko.kmm_standalone!) }],
});
// the module only as a symlink to a file elsewhere in the image: the load never takes a symlinked .ko
const symlinked = await buildLayout({
  dir: join(work, 'layout'),
  tag: 'symlinked',
  layers: [{
    'opt/payload/kmm_hello.bin': await readFile(kmods.ko.kmm_hello!),
    [`${modulesDir}/extra/kmm_hello.ko`]: { symlink: '../../../../payload/kmm_hello.bin' },
  }],
});
await pushImage(good, registry, `day1/kmod:${kver}`);
await pushImage(symlinked, registry, `day1/symlinked:${kver}`);
await pushImage(noModule, registry, `day1/other:${kver}`);
const repo = `${registry.host}/day1/kmod`;

// The reboot command the pull runs: records its argv, one line per call.
const { script: rebootScript, reboots } = await recordingReboot(work);
const rebootCommand = `${rebootScript} --when now`;

interface Node {
  host: HostRoot;
  imagesDir: string;
  modprobeLog: string;
  run(args: string[], opts?: { env?: Record<string, string>; offline?: boolean }): Promise<CliResult>;
  argv(): Promise<string[][]>;
}

/** A node: its host root (running kernel = the test modules' kernel), its store, its modprobe log. */
async function makeNode(name: string): Promise<Node> {
  const host = await makeHostRoot({ kver });
  t.teardown(() => host.cleanup());
  const imagesDir = join(work, `${name}-images`);
  const modprobeLog = join(work, `${name}-modprobe.log`);
  return {
    host,
    imagesDir,
    modprobeLog,
    async run(args, opts = {}) {
      return runCli(['--log-format', 'json', ...args], {
        ...(opts.offline ? { wrapper: ['unshare', '--net'] } : {}),
        env: {
          KMM_HOST_ROOT: host.root,
          KMM_IMAGES_DIR: imagesDir,
          KMM_MODPROBE: recordingModprobePath,
          KMM_REPORT: 'off',
          ...recordingModprobeEnv(host.root, modprobeLog),
          ...opts.env,
        },
      });
    },
    argv: () => recordedArgv(modprobeLog),
  };
}

const pullArgs = (image = repo) => ['day1', 'pull', '--image', image, '--module', 'kmm_hello', '--firmware-dir', '/firmware', '--reboot-command', rebootCommand];
const loadArgs = (image = repo) => ['day1', 'load', '--image', image, '--module', 'kmm_hello', '--firmware-dir', '/firmware'];

const node = await makeNode('node');

t.test('load before anything is stored: exit 0, says the pull service will fetch it, touches nothing', async (t) => {
  await registry.clearRequests();
  const r = await node.run(loadArgs());
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `${repo}:${kver} is not in the store`);
  t.match(r.stderr, 'kmm-day1-pull.service will fetch it');
  t.same(await node.argv(), [], 'no modprobe');
  t.same(await registry.requests(), [], 'no registry request');
  t.same(await node.host.loadedModules(), []);
});

t.test('a pull of an image without the module for this kernel fails and never reboots', async (t) => {
  const other = await makeNode('other');
  const r = await other.run(pullArgs(`${registry.host}/day1/other`));
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, new RegExp(`has no kmm_hello\\.ko under /opt/lib/modules/${kver.replaceAll('.', '\\.')}`));
  t.same(await reboots(), [], 'no reboot');
});

t.test('a pull agrees with the load: an image whose module .ko is only a symlink is refused, no reboot', async (t) => {
  const other = await makeNode('symlinked');
  const image = `${registry.host}/day1/symlinked`;
  const pull = await other.run(pullArgs(image));
  t.equal(pull.code, 1, pull.stderr);
  t.match(pull.stderr, `no kmm_hello.ko under /opt/lib/modules/${kver}`);
  t.same(await reboots(), [], 'no reboot for an image the load would refuse');
  // what the next boot's load would have said about the stored image
  const load = await other.run(loadArgs(image));
  t.equal(load.code, 1, load.stderr);
  t.match(load.stderr, 'kmm_hello.ko (or .ko.xz/.ko.zst/.ko.gz) is not under');
  t.same(await other.argv(), [], 'no modprobe');
});

t.test('a pull from an unreachable registry fails and never reboots', async (t) => {
  const other = await makeNode('unreachable');
  const unreachable = `127.0.0.1:${await freePort()}/day1/kmod`;
  const r = await other.run(pullArgs(unreachable));
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, /ECONNREFUSED/, 'the cause is named');
  t.same(await reboots(), [], 'no reboot');
  const load = await other.run(loadArgs(unreachable));
  t.equal(load.code, 0, `a later load still sees nothing stored: ${load.stderr}`);
  t.match(load.stderr, 'is not in the store');
  t.same(await other.argv(), []);
});

t.test('pull stores <repo>:<running kernel> and runs the reboot command exactly once', async (t) => {
  const r = await node.run(pullArgs());
  t.equal(r.code, 0, r.stderr);
  t.same(await reboots(), ['--when now'], 'one reboot, with the configured arguments');
  t.match(r.stderr, `stored ${repo}:${kver}@sha256:`);
});

t.test('a second pull finds the image stored: exit 0, no reboot, no network', async (t) => {
  await registry.clearRequests();
  const r = await node.run(pullArgs());
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, 'already in the store');
  t.same(await reboots(), ['--when now'], 'still the one reboot of the first pull');
  t.same(await registry.requests(), [], 'no registry request');
});

t.test('load from the store with the registry stopped and no network at all', async (t) => {
  await registry.stop();
  t.teardown(() => registry.start());
  // settings as the unit passes them: the shipped environment file, edited as a user would, no flags
  const shipped = parseEnvFile(await readFile(join(REPO, 'systemd', 'kmm-day1.env'), 'utf8'));
  const env = { ...shipped, KMM_DAY1_IMAGE: repo, KMM_DAY1_MODULE: 'kmm_hello', KMM_DAY1_FIRMWARE_DIR: '/firmware' };
  const r = await node.run(['day1', 'load'], { env, offline: true });
  t.equal(r.code, 0, r.stderr);
  const argv = await node.argv();
  t.equal(argv.length, 1, 'one modprobe');
  t.same(argv[0]!.slice(0, 2), ['-v', '-d']);
  t.equal(argv[0]!.at(-1), 'kmm_hello');
  t.equal((await readFile(join(node.host.sysModule('kmm_hello'), 'initstate'), 'utf8')).trim(), 'live');
  t.same(await readFile(node.host.path('/var/lib/firmware/kmm/kmm_fw.bin')), firmware, 'firmware copied to the host');
  t.equal(await node.host.firmwareClassPath(), '/var/lib/firmware', 'the kernel looks there');
});

t.test('in-tree modules are removed before the load', async (t) => {
  const n = await makeNode('in-tree');
  await n.host.addLoadedModule('kmm_intree');
  const r = await n.run([...loadArgs(), '--in-tree-modules', 'kmm_intree', '--images-dir', node.imagesDir], { offline: true });
  t.equal(r.code, 0, r.stderr);
  const argv = await n.argv();
  t.same(argv[0], ['-r', '-v', 'kmm_intree'], 'one modprobe -r of the in-tree module first');
  t.equal(argv[1]!.at(-1), 'kmm_hello');
  t.notOk(existsSync(n.host.sysModule('kmm_intree')), 'the in-tree module is gone');
});

t.test('a load that fails makes the command (and the unit) fail', async (t) => {
  const n = await makeNode('fails');
  const r = await n.run([...loadArgs(), '--images-dir', node.imagesDir], { env: { RECORDING_MODPROBE_FAIL: 'kmm_hello' }, offline: true });
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, "could not insert 'kmm_hello'");
});

t.test('bad settings: exit 2 naming the flag, nothing touched', async (t) => {
  const n = await makeNode('bad');
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['empty image variable', ['day1', 'load', '--module', 'kmm_hello'], { KMM_DAY1_IMAGE: '' }, /--image \(KMM_DAY1_IMAGE\) is required/],
    ['image with a tag', ['day1', 'load', '--image', `${repo}:latest`, '--module', 'kmm_hello'], {}, /--image .*without a tag/],
    ['bad module name', ['day1', 'pull', '--image', repo, '--module', 'kmm hello'], {}, /--module must be a kernel module name/],
    ['relative dir name', ['day1', 'load', '--image', repo, '--module', 'kmm_hello', '--dir-name', 'opt'], {}, /--dir-name/],
  ];
  for (const [what, args, env, message] of cases) {
    const r = await n.run(args, { env });
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(r.stderr, message, what);
  }
  t.same(await n.argv(), [], 'no modprobe ran');
  t.same(await reboots(), ['--when now'], 'no reboot');
});

t.test('a partial or corrupt store entry is treated as absent and never loaded', async (t) => {
  const entries = join(node.imagesDir, 'entries');
  const [key] = await readdir(entries);
  t.ok(key, 'the pull left one entry');
  const variants: Array<[string, (store: string) => Promise<void>]> = [
    // the writer died before renaming its work into place
    ['interrupted write', async (store) => {
      await mkdir(join(store, 'tmp'), { recursive: true });
      await rename(join(store, 'entries', key!), join(store, 'tmp', `${key}.crashed`));
    }],
    ['entry without its metadata', (store) => rm(join(store, 'entries', key!, 'meta.json'))],
    ['truncated metadata', (store) => writeFile(join(store, 'entries', key!, 'meta.json'), '{"reference": "')],
  ];
  for (const [what, damage] of variants) {
    const n = await makeNode(`damaged-${what.replaceAll(' ', '-')}`);
    await cp(node.imagesDir, n.imagesDir, { recursive: true, verbatimSymlinks: true });
    await damage(n.imagesDir);
    const r = await n.run(loadArgs(), { offline: true });
    t.equal(r.code, 0, `${what}: exit 0`);
    t.match(r.stderr, 'is not in the store', `${what}: reported as not stored`);
    t.same(await n.argv(), [], `${what}: no modprobe`);
  }
});

t.test('a pull whose blob fails verification stores nothing, never reboots, and the load loads nothing', async (t) => {
  const image = await buildLayout({
    dir: join(work, 'layout'),
    tag: 'corrupt',
    layers: [{ [`${modulesDir}/extra/kmm_hello.ko`]: await readFile(kmods.ko.kmm_hello!), 'unique': `${Math.random()}` }],
  });
  await pushImage(image, registry, `day1/corrupt:${kver}`);
  const res = await fetch(`${registry.url}/v2/day1/corrupt/manifests/${kver}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  const manifest = (await res.json()) as { layers: Array<{ digest: string }> };
  const blob = registry.blobPath(manifest.layers[0]!.digest);
  const bytes = await readFile(blob);
  bytes[bytes.length >> 1]! ^= 0xff;
  await writeFile(blob, bytes);

  const n = await makeNode('corrupt');
  const before = await reboots();
  const pull = await n.run(pullArgs(`${registry.host}/day1/corrupt`));
  t.equal(pull.code, 1, 'the pull fails');
  t.match(pull.stderr, /sha256|digest/i, 'naming the verification failure');
  t.same(await reboots(), before, 'no reboot');
  const load = await n.run(loadArgs(`${registry.host}/day1/corrupt`), { offline: true });
  t.equal(load.code, 0);
  t.match(load.stderr, 'is not in the store');
  t.same(await n.argv(), [], 'nothing loaded');
});

t.test('--dry-run pull says what it would do and does none of it', async (t) => {
  const n = await makeNode('dry-run');
  const before = await reboots();
  await registry.clearRequests();
  const r = await n.run(['--dry-run', ...pullArgs()]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `# dry run: would pull ${repo}:${kver} into ${n.imagesDir}, then run: ${rebootCommand}`, "one plan line (execa strips the final newline)");
  t.same(await reboots(), before, 'no reboot');
  t.same(await registry.requests(), [], 'no registry request');
  t.notOk(existsSync(join(n.imagesDir, 'entries')), 'nothing stored');
});
