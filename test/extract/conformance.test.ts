/**
 * The conformance corpus: one source tree, made into images by the tools people use (buildah, podman, skopeo,
 * pzstd, pigz) in every layer encoding they write, each pulled with `image pull --all` by the real CLI and
 * compared with the source tree file by file. Plus the same image with a config whose DiffID lies.
 * Built once for the whole file: FROM scratch (no registry needed), vfs storage in a private root.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { startRegistry } from '../helpers/registry.js';
import { cli, fingerprint } from '../store/fixtures.js';
import { errorLine } from '../image/cli.js';

const exec = promisify(execFile);
async function run(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  try {
    if (input === undefined) return (await exec(cmd, args, { encoding: 'buffer', maxBuffer: 256 << 20 })).stdout;
    return await new Promise<Buffer>((resolve, reject) => {
      const child = execFile(cmd, args, { encoding: 'buffer', maxBuffer: 256 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      child.stdin!.end(input);
    });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')}: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
  }
}

const KV = '6.1.0-conformance';
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-conformance-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());

// The source tree. kmm_big.ko (3 MiB, incompressible) spans pzstd's 2 MiB frames at level 1, so a frame
// boundary falls inside that tar entry.
const tree = path.join(work, 'tree');
const mods = path.join(tree, 'opt/lib/modules', KV);
await mkdir(mods, { recursive: true });
await mkdir(path.join(tree, 'firmware/vendor'), { recursive: true });
await writeFile(path.join(mods, 'kmm_big.ko'), crypto.randomBytes(3 << 20));
await writeFile(path.join(mods, 'kmm_small.ko'), '\x7fELF-small\n');
await writeFile(path.join(mods, 'modules.dep'), `/lib/modules/${KV}/kmm_big.ko:\n/lib/modules/${KV}/kmm_small.ko:\n`);
await symlink(`/lib/modules/${KV}`, path.join(mods, 'host'));
await writeFile(path.join(tree, 'firmware/vendor/fw.bin'), crypto.randomBytes(200_000));
await writeFile(path.join(tree, 'firmware/vendor/tables.txt'), 'abcdefgh'.repeat(50_000));
const expected = await fingerprint(tree);

// buildah and podman share one private vfs store
const store = ['--root', path.join(work, 'storage'), '--runroot', path.join(work, 'run'), '--storage-driver', 'vfs'];
await writeFile(path.join(work, 'Containerfile'), 'FROM scratch\nCOPY tree/ /\n');
for (const format of ['oci', 'docker']) {
  await run('buildah', [...store, 'bud', '-q', '--isolation', 'chroot', '--format', format, '-t', `conformance-${format}`,
    '-f', path.join(work, 'Containerfile'), work]);
}
const layout = (name: string) => path.join(work, name);
// buildah's own OCI image, gzip, into a layout
await run('buildah', [...store, 'push', '-q', 'localhost/conformance-oci', `oci:${layout('buildah-oci')}:v1`]);
// buildah's Docker-format image, as Docker schema 2 to the registry
await run('buildah', [...store, 'push', '-q', '--tls-verify=false', 'localhost/conformance-docker', `docker://${reg.host}/conformance:docker`]);
// podman: zstd and zstd:chunked, each into a fresh layout (an existing one would get the gzip blob again)
await run('podman', [...store, 'push', '-q', '--compression-format', 'zstd', 'localhost/conformance-oci', `oci:${layout('podman-zstd')}:v1`]);
await run('podman', [...store, 'push', '-q', '--compression-format', 'zstd:chunked', 'localhost/conformance-oci',
  `oci:${layout('podman-zstd-chunked')}:v1`]);
// skopeo's zstd
await run('skopeo', ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${layout('buildah-oci')}:v1`, `oci:${layout('skopeo-zstd')}:v1`]);

interface Doc {
  mediaType?: string;
  config: { digest: string; size: number; mediaType: string };
  layers: { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[];
}
const blobPath = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));
const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

async function manifestOf(dir: string): Promise<{ doc: Doc; config: { rootfs: { diff_ids: string[] } } }> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const doc = JSON.parse(await readFile(blobPath(dir, index.manifests[0]!.digest), 'utf8')) as Doc;
  return { doc, config: JSON.parse(await readFile(blobPath(dir, doc.config.digest), 'utf8')) };
}

/**
 * buildah's layout with every layer re-encoded by `encode` (given the uncompressed tar), and optionally a
 * config edited by `editConfig`: the tools' own bytes where a tool makes them (pzstd, pigz, zstd).
 */
async function reencoded(name: string, encode: (tar: Buffer) => Promise<{ data: Buffer; mediaType: string }>,
  editConfig?: (c: { rootfs: { diff_ids: string[] } }) => void): Promise<string> {
  const src = layout('buildah-oci');
  const out = layout(name);
  await mkdir(path.join(out, 'blobs', 'sha256'), { recursive: true });
  const put = async (data: Buffer) => {
    await writeFile(blobPath(out, sha(data)), data);
    return { digest: sha(data), size: data.length };
  };
  const { doc, config } = await manifestOf(src);
  for (const l of doc.layers) {
    const tar = zlib.gunzipSync(await readFile(blobPath(src, l.digest)));
    const { data, mediaType } = await encode(tar);
    Object.assign(l, await put(data), { mediaType });
  }
  editConfig?.(config);
  Object.assign(doc.config, await put(Buffer.from(JSON.stringify(config))));
  const top = await put(Buffer.from(JSON.stringify(doc)));
  await writeFile(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(path.join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...top, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  return `oci:${out}:v1`;
}

const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const skippable = (data: Buffer, nibble: number) => {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + nibble, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data]);
};

/** The zstd frames of a blob (skippable ones counted apart), read from their headers. */
function zstdFrames(blob: Buffer): { data: number; skippable: number } {
  const out = { data: 0, skippable: 0 };
  for (let i = 0; i < blob.length; ) {
    const magic = blob.readUInt32LE(i);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      out.skippable++;
      i += 8 + blob.readUInt32LE(i + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) throw new Error(`no zstd frame at ${i}`);
    out.data++;
    // Frame_Header_Descriptor: content-size field size, single-segment, checksum, dictionary id
    const fhd = blob[i + 4]!;
    const fcs = [fhd & 0x20 ? 1 : 0, 2, 4, 8][fhd >> 6]!;
    const did = [0, 1, 2, 4][fhd & 3]!;
    i += 5 + (fhd & 0x20 ? 0 : 1) + did + fcs;
    for (let last = 0; !last; ) {
      const bh = blob.readUIntLE(i, 3);
      last = bh & 1;
      const type = (bh >> 1) & 3;
      i += 3 + (type === 1 ? 1 : bh >> 3);
    }
    if (fhd & 4) i += 4;
  }
  return out;
}

const cases: { name: string; ref: string; frames?: (blob: Buffer) => void }[] = [
  { name: 'buildah bud --format oci (gzip)', ref: `oci:${layout('buildah-oci')}:v1` },
  { name: 'buildah bud --format docker, Docker schema 2 from a registry', ref: `${reg.host}/conformance:docker` },
  { name: 'podman push --compression-format zstd', ref: `oci:${layout('podman-zstd')}:v1` },
  { name: 'podman push --compression-format zstd:chunked', ref: `oci:${layout('podman-zstd-chunked')}:v1` },
  { name: 'skopeo copy --dest-compress-format zstd', ref: `oci:${layout('skopeo-zstd')}:v1` },
  {
    name: 'pzstd -1: 2 MiB frames each behind a skippable frame, a boundary inside kmm_big.ko',
    ref: await reencoded('pzstd', async (tar) => ({ data: await run('pzstd', ['-q', '-1', '-p', '2', '-c'], tar), mediaType: ZSTD })),
  },
  {
    name: 'zstd with skippable frames before and after the data',
    ref: await reencoded('zstd-skippable', async (tar) => ({
      data: Buffer.concat([skippable(Buffer.from('before'), 0), await run('zstd', ['-q', '-c'], tar), skippable(Buffer.alloc(100), 15)]),
      mediaType: ZSTD,
    })),
  },
  {
    name: 'pigz: two gzip members',
    ref: await reencoded('pigz', async (tar) => ({
      data: Buffer.concat([await run('pigz', ['-c'], tar.subarray(0, 1_500_000)), await run('pigz', ['-c'], tar.subarray(1_500_000))]),
      mediaType: GZIP,
    })),
  },
  {
    name: 'an uncompressed layer',
    ref: await reencoded('plain', async (tar) => ({ data: tar, mediaType: 'application/vnd.oci.image.layer.v1.tar' })),
  },
];

t.test('the corpus is what the tools were asked for', async (t) => {
  const docker = await run('curl', ['-sf', '-H', 'Accept: application/vnd.docker.distribution.manifest.v2+json',
    `${reg.url}/v2/conformance/manifests/docker`]);
  t.equal(JSON.parse(docker.toString()).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  const chunked = (await manifestOf(layout('podman-zstd-chunked'))).doc.layers[0]!;
  t.equal(chunked.mediaType, ZSTD);
  t.ok(chunked.annotations?.['io.containers.zstd-chunked.manifest-checksum'], 'a zstd:chunked layer (TOC annotations)');
  t.ok(zstdFrames(await readFile(blobPath(layout('podman-zstd-chunked'), chunked.digest))).data > 2, 'zstd:chunked: many frames');
  const pz = (await manifestOf(layout('pzstd'))).doc.layers[0]!;
  const frames = zstdFrames(await readFile(blobPath(layout('pzstd'), pz.digest)));
  t.ok(frames.data >= 2 && frames.skippable === frames.data, `pzstd: ${frames.data} frames, each behind a skippable frame`);
});

for (const c of cases) {
  t.test(`${c.name}: image pull --all gives the source tree`, async (t) => {
    const dir = await mkdtemp(path.join(work, 'images-'));
    const res = await cli(['image', 'pull', c.ref, '--all', '--images-dir', dir, '--json']);
    t.equal(res.code, 0, res.stderr);
    if (res.code !== 0) return;
    t.same(await fingerprint(JSON.parse(res.stdout).root), expected);
    const inspect = await cli(['image', 'inspect', c.ref, '--json']);
    t.equal(inspect.code, 0, inspect.stderr);
    t.same(JSON.parse(inspect.stdout).kernels, { [KV]: [`opt/lib/modules/${KV}/kmm_big.ko`, `opt/lib/modules/${KV}/kmm_small.ko`] });
  });
}

t.test('a config whose DiffID lies: exit 1 naming image, layer, expected and actual DiffID; nothing trusted', async (t) => {
  const lie = sha(Buffer.from('not this layer'));
  const ref = await reencoded('lying', async (tar) => ({ data: await run('zstd', ['-q', '-c'], tar), mediaType: ZSTD }), (c) => {
    c.rootfs.diff_ids[0] = lie;
  });
  const { doc } = await manifestOf(layout('lying'));
  const { config } = await manifestOf(layout('buildah-oci'));
  const dir = await mkdtemp(path.join(work, 'images-'));
  for (const args of [['--all'], ['--kernel', KV]]) {
    const res = await cli(['image', 'pull', ref, ...args, '--images-dir', dir, '--json']);
    t.equal(res.code, 1);
    t.equal(res.stdout, '');
    t.equal(errorLine(res.stderr), `image ${ref.replace(/^oci:/, 'oci:')}: layer ${doc.layers[0]!.digest}: uncompressed content does not ` +
      `match the DiffID of the image config: expected ${lie}, got ${config.rootfs.diff_ids[0]}`);
    t.same(await readdir(path.join(dir, 'entries')), [], 'no cache entry');
    t.same(await readdir(path.join(dir, 'tmp')), [], 'no debris');
  }
  const inspect = await cli(['image', 'inspect', ref, '--json']);
  t.equal(inspect.code, 1);
  t.match(errorLine(inspect.stderr), `expected ${lie}, got ${config.rootfs.diff_ids[0]}`);
});

t.test('without the zstd program: a one-frame zstd layer still pulls; one of several frames fails with one line saying so', async (t) => {
  const env = { PATH: path.join(work, 'no-such-bin') };
  const dir = await mkdtemp(path.join(work, 'images-'));
  const { doc } = await manifestOf(layout('podman-zstd-chunked'));
  const res = await cli(['image', 'pull', `oci:${layout('podman-zstd-chunked')}:v1`, '--all', '--images-dir', dir], { env });
  t.equal(res.code, 1);
  t.equal(errorLine(res.stderr), `image oci:${layout('podman-zstd-chunked')}:v1: layer ${doc.layers[0]!.digest}: cannot read a ` +
    'tar+zstd layer of several frames: the zstd program is not installed (install the zstd package)');
  t.same(await readdir(path.join(dir, 'entries')), []);
  // podman's plain zstd and skopeo's are one frame each: Node's own decoder reads them
  for (const name of ['podman-zstd', 'skopeo-zstd', 'buildah-oci']) {
    const ok = await cli(['image', 'pull', `oci:${layout(name)}:v1`, '--all', '--images-dir', dir, '--json'], { env });
    t.equal(ok.code, 0, `${name}: ${ok.stderr}`);
  }
  t.equal((await readdir(path.join(dir, 'entries'))).length, 3, 'three trusted entries');
});
