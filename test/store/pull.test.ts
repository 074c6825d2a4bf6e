import t from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage, type LayerSpec } from '../helpers/images.js';
import { lookupStored, pullImage } from '../../src/store/pull.js';
import { ImageKmodsSource } from '../../src/worker/image-kmods-source.js';
import { OperationError } from '../../src/errors.js';
import { cli, countRequests, fingerprint, KVER } from './fixtures.js';

const run = promisify(execFile);
const log = pino({ level: 'silent' });
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-store-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const reg = await startRegistry();
t.teardown(() => reg.stop());

const M = `opt/lib/modules/${KVER}`;
const layers = (fw: Buffer): LayerSpec[] => [
  {
    [`${M}/kmm_a.ko`]: '\x7fELF-kmm_a\n',
    [`${M}/kmm_b.ko`]: crypto.randomBytes(100_000),
    [`${M}/modules.dep`]: `/lib/modules/${KVER}/kmm_b.ko: /lib/modules/${KVER}/kmm_a.ko\n/lib/modules/${KVER}/kmm_a.ko:\n`,
    [`${M}/host`]: { symlink: `/lib/modules/${KVER}` },
    'opt/lib/modules/5.10.0-other/other.ko': 'other kernel',
    'usr/share/doc/readme': 'not selected',
  },
  { 'firmware/vendor/fw.bin': fw, 'firmware/README': 'r' },
  { 'firmware/README': { whiteout: true } },
];
const layout = path.join(work, 'layout');
const v1 = await buildLayout({ dir: layout, tag: 'v1', layers: layers(crypto.randomBytes(2_000_000)) });
const v2 = await buildLayout({ dir: layout, tag: 'v2', layers: layers(crypto.randomBytes(1_000)) });
const ref = `${reg.host}/kmod:${KVER}`;
const v1Digest = await pushImage(v1, reg, `kmod:${KVER}`);

// the independent reference tree
const umoci = path.join(work, 'umoci-v1');
await run('umoci', ['raw', 'unpack', '--image', `${layout}:v1`, umoci]);
const selected = async (root: string) => [...(await fingerprint(path.join(root, M))), ...(await fingerprint(path.join(root, 'firmware')))];
const expected = await selected(umoci);

const imagesDir = () => mkdtemp(path.join(work, 'images-'));
const pullArgs = (dir: string, ...more: string[]) =>
  ['image', 'pull', ref, '--kernel', KVER, '--firmware-dir', '/firmware', '--images-dir', dir, '--json', ...more];

t.test('image pull extracts the selected paths, equal to umoci raw unpack', async (t) => {
  const dir = await imagesDir();
  const res = await cli(pullArgs(dir));
  t.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  t.equal(out.reference, ref);
  t.equal(out.digest, v1Digest);
  t.ok(path.isAbsolute(out.root) && out.root.startsWith(dir), 'root is inside the images dir');
  t.equal(out.files, 4, 'kmm_a.ko kmm_b.ko modules.dep fw.bin');
  t.equal(out.bytes, (await stat(path.join(out.root, M, 'kmm_b.ko'))).size + 2_000_000 + 11 + (await stat(path.join(out.root, M, 'modules.dep'))).size);
  t.same(await selected(out.root), expected);
  t.same((await readdir(out.root)).sort(), ['firmware', 'opt']);
  t.same(await readdir(path.join(out.root, 'opt/lib/modules')), [KVER], 'other kernels are not extracted');
  t.match(res.stderr, /"msg":"layer extracted"/, 'a log line per layer off a terminal');
});

t.test('--all extracts the whole image, equal to umoci', async (t) => {
  const dir = await imagesDir();
  const res = await cli(['image', 'pull', ref, '--all', '--images-dir', dir, '--json']);
  t.equal(res.code, 0, res.stderr);
  t.same(await fingerprint(JSON.parse(res.stdout).root), await fingerprint(umoci));
});

t.test('oci: layouts go through the same cache and extractor', async (t) => {
  const dir = await imagesDir();
  const res = await cli(['image', 'pull', `oci:${layout}:v1`, '--all', '--images-dir', dir, '--json']);
  t.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  t.equal(out.reference, `oci:${layout}:v1`);
  t.equal(out.digest, v1.digest);
  t.same(await fingerprint(out.root), await fingerprint(umoci));
  const ls = JSON.parse((await cli(['image', 'ls', '--images-dir', dir, '--json'])).stdout);
  t.same(ls.map((e: { reference: string; digest: string }) => [e.reference, e.digest]), [[`oci:${layout}:v1`, v1.digest]]);
});

t.test('IfNotPresent: a cached image is used with zero network requests (registry stopped)', async (t) => {
  const dir = await imagesDir();
  const first = await cli(pullArgs(dir));
  t.equal(first.code, 0, first.stderr);
  await reg.clearRequests();
  await reg.stop();
  try {
    const again = await cli(pullArgs(dir));
    t.equal(again.code, 0, again.stderr);
    const out = JSON.parse(again.stdout);
    t.equal(out.fromCache, true);
    t.equal(out.root, JSON.parse(first.stdout).root);
    t.same(await selected(out.root), expected);
  } finally {
    await reg.start();
  }
  // (the helper's own readiness probe of /v2/ on restart is the only request allowed)
  t.same((await reg.requests()).filter((r) => r.path !== '/v2/'), [], 'the registry saw no request from the agent');
});

t.test('Never: fails clearly when absent, uses the cache when present', async (t) => {
  const dir = await imagesDir();
  const miss = await cli(pullArgs(dir, '--pull-policy', 'Never'));
  t.equal(miss.code, 1);
  t.match(miss.stderr, new RegExp(`image ${ref.replace(/[.]/g, '\\.')} is not in the cache .* pull policy is Never`));
  t.equal(await lookupStored(ref, dir, { dirName: '/opt', kernelVersion: KVER, firmwarePath: '/firmware' }), undefined);
  t.equal((await cli(pullArgs(dir))).code, 0);
  const hit = await cli(pullArgs(dir, '--pull-policy', 'Never'));
  t.equal(hit.code, 0, hit.stderr);
  t.equal(JSON.parse(hit.stdout).fromCache, true);
});

t.test('Always: one manifest request when unchanged; re-pulls when the tag moved; prune drops the old entry', async (t) => {
  const dir = await imagesDir();
  t.equal((await cli(pullArgs(dir))).code, 0);
  await reg.clearRequests();
  const same = await cli(pullArgs(dir, '--pull-policy', 'Always'));
  t.equal(same.code, 0, same.stderr);
  t.equal(JSON.parse(same.stdout).fromCache, true);
  const reqs = await reg.requests();
  t.same(countRequests(reqs.filter((r) => r.path !== '/v2/')), { blobs: 0, manifests: 1, all: 1 }, 'exactly one manifest request, no blob');

  const v2Digest = await pushImage(v2, reg, `kmod:${KVER}`);
  const moved = await cli(pullArgs(dir, '--pull-policy', 'Always'));
  t.equal(moved.code, 0, moved.stderr);
  const out = JSON.parse(moved.stdout);
  t.equal(out.digest, v2Digest);
  t.equal(out.fromCache, false);
  t.equal((await stat(path.join(out.root, 'firmware/vendor/fw.bin'))).size, 1_000);

  const ls = await cli(['image', 'ls', '--images-dir', dir, '--json']);
  t.equal(ls.code, 0, ls.stderr);
  const listed = JSON.parse(ls.stdout);
  t.equal(listed.length, 2);
  for (const e of listed) {
    t.same(Object.keys(e).slice(0, 5), ['reference', 'digest', 'root', 'bytes', 'lastUsed']);
    t.ok(!Number.isNaN(Date.parse(e.lastUsed)));
  }
  t.same(listed.map((e: { digest: string }) => e.digest).sort(), [v1Digest, v2Digest].sort());

  const pruned = await cli(['image', 'prune', '--images-dir', dir, '--json']);
  t.equal(pruned.code, 0, pruned.stderr);
  const removed = JSON.parse(pruned.stdout);
  t.same(removed.map((r: { digest: string; reason: string }) => [r.digest, r.reason]), [[v1Digest, 'unreferenced']]);
  const after = JSON.parse((await cli(['image', 'ls', '--images-dir', dir, '--json'])).stdout);
  t.same(after.map((e: { digest: string }) => e.digest), [v2Digest]);
  await pushImage(v1, reg, `kmod:${KVER}`); // restore for the other tests
});

t.test('prune --older-than removes entries unused for that long, keeps recent ones', async (t) => {
  const dir = await imagesDir();
  t.equal((await cli(pullArgs(dir))).code, 0);
  const kept = await cli(['image', 'prune', '--older-than', '1h', '--images-dir', dir, '--json']);
  t.same(JSON.parse(kept.stdout), []);
  const [key] = await readdir(path.join(dir, 'used'));
  const old = new Date(Date.now() - 2 * 3_600_000);
  await utimes(path.join(dir, 'used', key!), old, old);
  const human = await cli(['image', 'prune', '--older-than', '1h', '--images-dir', dir]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /removed .*kmod.* \(unused\)\n1 entry removed/);
  t.same(await readdir(path.join(dir, 'entries')), []);
  t.same(await readdir(path.join(dir, 'refs')), [], 'references to removed entries are dropped');
  const pull = await cli(pullArgs(dir, '--pull-policy', 'Never'));
  t.equal(pull.code, 1, 'a pruned image is gone for Never');
});

t.test('bad input: exit 2, one line, nothing written', async (t) => {
  const dir = path.join(work, 'never-created');
  const cases: [string[], RegExp][] = [
    [['image', 'pull', 'UPPER/Case:tag', '--kernel', KVER, '--images-dir', dir], /image reference/],
    [pullArgs(dir, '--pull-policy', 'Sometimes'), /--pull-policy must be one of IfNotPresent, Always, Never; got 'Sometimes'/],
    [['image', 'pull', ref, '--all', '--kernel', KVER, '--images-dir', dir], /--all and --kernel exclude each other/],
    [['image', 'pull', ref, '--kernel', KVER, '--dir-name', '../..', '--images-dir', dir], /dirName "\.\.\/\.\." must not contain "\.\."/],
    [['image', 'prune', '--older-than', 'soon', '--images-dir', dir], /--older-than 'soon' is not a duration/],
    [['image', 'pull', ref, '--images-dir', dir, '--host-root', path.join(work, 'no-such-host')],
      /^--kernel not given and cannot read the running kernel from .*no-such-host\/proc\/sys\/kernel\/osrelease: ENOENT; give --kernel KVER or --all$/],
  ];
  for (const [args, msg] of cases) {
    const res = await cli(args);
    t.equal(res.code, 2, args.join(' '));
    const lines = res.stderr.trim().split('\n');
    t.equal(lines.length, 1, 'one line');
    t.match(JSON.parse(lines[0]!).msg, msg);
  }
  await t.rejects(stat(dir), { code: 'ENOENT' }, 'the images dir was not even created');
});

t.test('a blob corrupted in the registry fails the pull and leaves nothing trusted', async (t) => {
  const bad = await buildLayout({ dir: layout, tag: 'bad', layers: [{ [`${M}/x.ko`]: crypto.randomBytes(50_000) }] });
  await pushImage(bad, reg, 'corrupt:1');
  const manifest = JSON.parse((await readFile(path.join(layout, 'blobs/sha256', bad.digest.slice(7)))).toString());
  const blob = reg.blobPath(manifest.layers[0].digest);
  const data = await readFile(blob);
  data[data.length - 100] ^= 0xff;
  await writeFile(blob, data);
  const dir = await imagesDir();
  const res = await cli(['image', 'pull', `${reg.host}/corrupt:1`, '--kernel', KVER, '--images-dir', dir, '--json']);
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(manifest.layers[0].digest.slice(0, 20)), 'the message names the blob');
  t.same(await readdir(path.join(dir, 'entries')), []);
  t.same(await readdir(path.join(dir, 'refs')), []);
  t.same(await readdir(path.join(dir, 'tmp')), [], 'the partial tree was removed');
});

t.test('a kernel the image does not carry: exit 1, the kernels it carries and the dirName it uses, no cache entry', async (t) => {
  const rootMods = await buildLayout({ dir: layout, tag: 'rootmods', layers: [{ [`lib/modules/${KVER}/kmm_a.ko`]: 'x',
    'lib/modules/6.2.0-9/kmm_a.ko': 'y' }] });
  const cases: [string[], string][] = [
    [['image', 'pull', `oci:${layout}:v1`, '--kernel', '6.1.0-99-amd64'], `image oci:${layout}:v1 has no /opt/lib/modules/6.1.0-99-amd64; ` +
      `it carries kernels 5.10.0-other (dirName /opt), ${KVER} (dirName /opt)`],
    [['image', 'pull', rootMods.ref, '--kernel', '6.2.0-9'], `image ${rootMods.ref} has no /opt/lib/modules/6.2.0-9; it carries kernels ` +
      `${KVER} (dirName /), 6.2.0-9 (dirName /); kernel 6.2.0-9 is there under dirName /: set modprobe.dirName (--dir-name) to /`],
    [['image', 'pull', rootMods.ref, '--kernel', '6.9.9'], `image ${rootMods.ref} has no /opt/lib/modules/6.9.9; it carries kernels ` +
      `${KVER} (dirName /), 6.2.0-9 (dirName /); the image seems to use dirName: /`],
  ];
  for (const [args, msg] of cases) {
    const dir = await imagesDir();
    const res = await cli([...args, '--images-dir', dir, '--json']);
    t.equal(res.code, 1, res.stderr);
    t.match(res.stderr, msg);
    t.equal(res.stdout, '', 'no result printed');
    t.same(await readdir(path.join(dir, 'entries')), [], 'no cache entry');
    t.same(await readdir(path.join(dir, 'refs')), []);
    t.same(await readdir(path.join(dir, 'tmp')), []);
  }
});

t.test('an index.json nested 100,000 levels deep: one line naming the layout, not a stack overflow', async (t) => {
  const deep = path.join(work, 'deep-layout');
  await mkdir(deep, { recursive: true });
  await writeFile(path.join(deep, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(path.join(deep, 'index.json'), `{"schemaVersion":2,"manifests":[],"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  const dir = await imagesDir();
  const res = await cli(['image', 'pull', `oci:${deep}`, '--all', '--images-dir', dir]);
  t.equal(res.code, 1);
  t.match(res.stderr, `"msg":"image oci:${deep}: cannot read the layout's index.json: nests arrays/objects deeper than 64 levels"`);
  t.notMatch(res.stderr, /call stack/);
});

t.test('a blob corrupted at its start: the digest mismatch is the failure, naming the image and the blob', async (t) => {
  const bad = await buildLayout({ dir: layout, tag: 'bad-start', layers: [{ [`${M}/x.ko`]: crypto.randomBytes(2_000_000) }] });
  await pushImage(bad, reg, 'corrupt:start');
  const manifest = JSON.parse((await readFile(path.join(layout, 'blobs/sha256', bad.digest.slice(7)))).toString());
  const digest = manifest.layers[0].digest as string;
  const blob = reg.blobPath(digest);
  const data = await readFile(blob);
  data[0] ^= 0xff; // no longer gzip's magic: the decoder fails on the first bytes, long before the digest is known
  await writeFile(blob, data);
  const dir = await imagesDir();
  for (const args of [['--all'], ['--kernel', KVER]]) {
    const res = await cli(['image', 'pull', `${reg.host}/corrupt:start`, ...args, '--images-dir', dir]);
    t.equal(res.code, 1);
    t.match(res.stderr, new RegExp(`"msg":"image ${reg.host}/corrupt:start: blob ${digest}: content does not match its digest \\(got sha256:[0-9a-f]{64}\\)"`));
    t.notMatch(res.stderr, /incorrect header check/);
    t.same(await readdir(path.join(dir, 'entries')), []);
  }
});

t.test('ImageKmodsSource pulls containerImage with the config policy and points at the modules', async (t) => {
  const dir = await imagesDir();
  const source = new ImageKmodsSource({ imagesDir: dir, log });
  const config = {
    kernelVersion: KVER,
    containerImage: ref,
    imagePullPolicy: 'IfNotPresent',
    insecurePull: false,
    inTreeModulesToRemove: [],
    modprobe: { moduleName: 'kmm_a', dirName: '/opt', firmwarePath: '/firmware', parameters: [], modulesLoadingOrder: [] },
  } as never;
  const loc = await source.locate(config, {});
  t.ok(loc);
  t.equal(loc!.modulesRoot, path.join(loc!.imageRoot, 'opt'));
  t.ok((await stat(path.join(loc!.modulesRoot, 'lib/modules', KVER, 'kmm_a.ko'))).isFile());
  t.ok((await stat(path.join(loc!.imageRoot, 'firmware/vendor/fw.bin'))).isFile());
  t.match(loc!.origin, ref);
  const wrongKernel = { ...(config as object), kernelVersion: '9.9.9' } as never;
  await t.rejects(source.locate(wrongKernel, {}), { constructor: OperationError, message: /has no \/opt\/lib\/modules\/9\.9\.9/ });
  // the library API: Never on a missing entry
  await t.rejects(pullImage(ref, { imagesDir: await imagesDir(), policy: 'Never', selection: 'all', log }), OperationError);
});
