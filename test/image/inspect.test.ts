/**
 * `kmm-worker image inspect` against a real registry, with images made by umoci and pushed by skopeo in every
 * supported form: OCI and Docker schema 2 manifests, an OCI index and a Docker manifest list, gzip, zstd and
 * uncompressed layers; and against `oci:` layouts.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, startRegistry } from '../helpers/registry.js';
import { buildIndex, buildLayout, pushImage, type LayerSpec } from '../helpers/images.js';
import { cli, errorLine } from './cli.js';

const KVER = '6.1.0-test';
const M = `opt/lib/modules/${KVER}`;

function layers(arch: string): LayerSpec[] {
  return [
    {
      [`${M}/kmm_${arch}.ko`]: `\x7fELF-${arch}\n`,
      [`${M}/extra/kmm_dep.ko.xz`]: 'xz',
      [`${M}/modules.dep`]: `kmm_${arch}.ko:\n`,
      [`${M}/host`]: { symlink: `/lib/modules/${KVER}` },
      'opt/lib/modules/5.14.0-other/old.ko': 'old',
    },
    { 'firmware/vendor/fw.bin': Buffer.alloc(2048, 7) },
  ];
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-inspect-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const reg = await startRegistry();
t.teardown(() => reg.stop());
const layout = path.join(work, 'oci');
const amd = await buildLayout({ dir: layout, tag: 'amd64', layers: layers('amd64') });
await buildLayout({ dir: layout, tag: 'arm64', arch: 'arm64', layers: layers('arm64') });
const index = await buildIndex({ dir: layout, tag: 'multi', images: [
  { tag: 'amd64', platform: 'linux/amd64' }, { tag: 'arm64', platform: 'linux/arm64/v8' }] });
// layer 3 deletes a module and (opaquely, via umoci's whiteouts) a whole kernel tree
const wh = await buildLayout({ dir: layout, tag: 'whiteout', layers: [...layers('amd64'),
  { [`${M}/extra/kmm_dep.ko.xz`]: { whiteout: true }, 'opt/lib/modules/5.14.0-other': { whiteout: true } }] });

const expectKernels = (arch: string) => ({
  [KVER]: [`${M}/extra/kmm_dep.ko.xz`, `${M}/kmm_${arch}.ko`],
  '5.14.0-other': ['opt/lib/modules/5.14.0-other/old.ko'],
});

async function manifestOf(tag: string): Promise<{ mediaType: string; body: { layers: unknown[] } }> {
  const r = await fetch(`${reg.url}/v2/kmod/manifests/${tag}`, { headers: { accept:
    'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
  return { mediaType: r.headers.get('content-type')!, body: (await r.json()) as { layers: unknown[] } };
}

t.test('single-platform images in every form', async (t) => {
  const forms = [
    { tag: 'oci-gzip', opts: {}, mt: 'application/vnd.oci.image.manifest.v1+json', layer: /tar\+gzip$/ },
    { tag: 'v2s2', opts: { format: 'v2s2' as const }, mt: 'application/vnd.docker.distribution.manifest.v2+json',
      layer: /^application\/vnd\.docker\.image\.rootfs\.diff\.tar\.gzip$/ },
    { tag: 'oci-zstd', opts: { compress: 'zstd' as const }, mt: 'application/vnd.oci.image.manifest.v1+json', layer: /tar\+zstd$/ },
    { tag: 'oci-plain', opts: { compress: 'none' as const }, mt: 'application/vnd.oci.image.manifest.v1+json', layer: /layer\.v1\.tar$/ },
  ];
  for (const f of forms) {
    const digest = await pushImage(amd, reg, `kmod:${f.tag}`, f.opts);
    const r = await cli(['image', 'inspect', `${reg.host}/kmod:${f.tag}`, '--json']);
    t.equal(r.code, 0, `${f.tag}: exit 0 (${errorLine(r.stderr)})`);
    const out = JSON.parse(r.stdout);
    const m = await manifestOf(f.tag);
    t.equal(out.reference, `${reg.host}/kmod:${f.tag}`, `${f.tag}: reference`);
    t.equal(out.digest, digest, `${f.tag}: the digest skopeo pushed`);
    t.equal(out.mediaType, f.mt, `${f.tag}: media type`);
    t.same(out.platforms, ['linux/amd64'], `${f.tag}: platforms`);
    t.same(out.layers, m.body.layers.map((l) => {
      const { digest, size, mediaType } = l as Record<string, unknown>;
      return { digest, size, mediaType };
    }), `${f.tag}: layers as in the manifest`);
    t.match(out.layers[0].mediaType, f.layer, `${f.tag}: layer media type`);
    t.same(out.kernels, expectKernels('amd64'), `${f.tag}: kernels and .ko files`);
  }
});

t.test('multi-arch: an OCI index and a Docker manifest list', async (t) => {
  for (const [tag, format, mt] of [['index', undefined, 'application/vnd.oci.image.index.v1+json'],
    ['list', 'v2s2', 'application/vnd.docker.distribution.manifest.list.v2+json']] as const) {
    const digest = await pushImage(index, reg, `kmod:${tag}`, { format });
    const amd = JSON.parse((await cli(['image', 'inspect', `${reg.host}/kmod:${tag}`, '--json', '--platform', 'linux/amd64'])).stdout);
    t.equal(amd.digest, digest, `${tag}: digest of the index`);
    t.equal(amd.mediaType, mt, `${tag}: media type`);
    t.same(amd.platforms, ['linux/amd64', 'linux/arm64/v8'], `${tag}: platforms`);
    t.not(amd.manifestDigest, digest, `${tag}: a platform manifest was selected`);
    t.same(amd.kernels, expectKernels('amd64'), `${tag}: amd64 modules`);
    const arm = JSON.parse((await cli(['image', 'inspect', `${reg.host}/kmod:${tag}`, '--json', '--platform', 'linux/arm64'])).stdout);
    t.same(arm.kernels, expectKernels('arm64'), `${tag}: arm64 modules with --platform linux/arm64`);
    t.not(arm.manifestDigest, amd.manifestDigest);
    const hr = await cli(['image', 'inspect', `${reg.host}/kmod:${tag}`, '--json']);
    t.equal(hr.code, 0, `${tag}: no --platform: ${errorLine(hr.stderr)}`);
    const host = JSON.parse(hr.stdout || '{}');
    t.same(host.kernels, expectKernels(process.arch === 'arm64' ? 'arm64' : 'amd64'), `${tag}: the host's platform by default`);

    const r = await cli(['image', 'inspect', `${reg.host}/kmod:${tag}`, '--platform', 'linux/s390x']);
    t.equal(r.code, 1, `${tag}: unknown platform exits 1`);
    t.equal(errorLine(r.stderr), `image ${reg.host}/kmod:${tag} has no image for linux/s390x; it has: linux/amd64, linux/arm64/v8`);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
});

t.test('whiteouts: deleted files are not listed', async (t) => {
  await pushImage(wh, reg, 'kmod:whiteout');
  const out = JSON.parse((await cli(['image', 'inspect', `${reg.host}/kmod:whiteout`, '--json'])).stdout);
  t.equal(out.layers.length, 3);
  t.same(out.kernels, { [KVER]: [`${M}/kmm_amd64.ko`] });
});

t.test('oci: layouts, tags and digests', async (t) => {
  const r = await cli(['image', 'inspect', `oci:${layout}:multi`, '--json', '--platform', 'linux/arm64']);
  t.equal(r.code, 0, errorLine(r.stderr));
  const out = JSON.parse(r.stdout);
  t.equal(out.reference, `oci:${layout}:multi`);
  t.equal(out.digest, index.digest);
  t.same(out.kernels, expectKernels('arm64'));
  const byDigest = JSON.parse((await cli(['image', 'inspect', `oci:${layout}@${amd.digest}`, '--json'])).stdout);
  t.same(byDigest.kernels, expectKernels('amd64'));
  const other = process.arch === 'arm64' ? 'amd64' : 'arm64';
  const single = await cli(['image', 'inspect', `oci:${layout}:${other}`, '--json']);
  t.equal(single.code, 0, 'a single-platform image for another platform is still read');
  t.same(JSON.parse(single.stdout).platforms, [`linux/${other}`]);
  t.match(single.stderr, /the image is built for another platform; its modules may not load on this node/);
  const missing = await cli(['image', 'inspect', `oci:${layout}:nope`]);
  t.equal(missing.code, 1);
  t.match(errorLine(missing.stderr), /^image oci:.*:nope: tag 'nope' not found in the layout; it has: amd64, arm64, multi, whiteout$/);
  const notLayout = await cli(['image', 'inspect', `oci:${work}/none:x`]);
  t.equal(notLayout.code, 1);
  t.match(errorLine(notLayout.stderr), /is not an OCI image layout/);
});

t.test('human output', async (t) => {
  const r = await cli(['image', 'inspect', `${reg.host}/kmod:oci-gzip`]);
  t.equal(r.code, 0);
  t.match(r.stdout, `Reference:  ${reg.host}/kmod:oci-gzip`);
  t.match(r.stdout, /Platforms: {2}linux\/amd64/);
  t.match(r.stdout, new RegExp(`${KVER}: 2 modules\\n    ${M}/extra/kmm_dep.ko.xz\\n    ${M}/kmm_amd64.ko`));
});

t.test('failures: one line, exit 1 (operation) or 2 (usage)', async (t) => {
  const cases: Array<[string[], number, string | RegExp]> = [
    [['image', 'inspect', `${reg.host}/kmod:missing-tag`], 1,
      new RegExp(`^image ${reg.host}/kmod:missing-tag: tag 'missing-tag' not found on registry ${reg.host}; the repository has: .*oci-gzip`)],
    // distribution answers MANIFEST_UNKNOWN for an unknown repository too; the tag list tells them apart
    [['image', 'inspect', `${reg.host}/nothere:v1`], 1, `image ${reg.host}/nothere:v1: repository nothere not found on registry ${reg.host}; check the image name`],
    [['image', 'inspect', `${reg.host}/Kmod:v1`], 2, /invalid repository name 'Kmod'/],
    [['image', 'inspect', `${reg.host}/kmod:oci-gzip`, '--platform', 'linux'], 2, /--platform 'linux' is not os\/arch/],
  ];
  const dead = await freePort();
  cases.push([['image', 'inspect', `127.0.0.1:${dead}/kmod:v1`], 1,
    `registry 127.0.0.1:${dead}: ping /v2/ failed after 4 tries: connect ECONNREFUSED 127.0.0.1:${dead}`]);
  for (const [args, code, msg] of cases) {
    const r = await cli(args);
    t.equal(r.code, code, `${args[2]}: exit ${code}`);
    if (typeof msg === 'string') t.equal(errorLine(r.stderr), msg);
    else t.match(errorLine(r.stderr), msg);
  }
});
