import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, buildIndex, pushImage, kmodLayers } from '../helpers/images.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, ' +
  'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json';

t.test('test helpers: build with umoci, push with skopeo, the registry logs requests', async (t) => {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-helpers-'));
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const layout = path.join(work, 'oci');
  const img = await buildLayout({ dir: layout, tag: 'amd', layers: kmodLayers('6.1.0-test') });
  await buildLayout({ dir: layout, tag: 'arm', arch: 'arm64', layers: kmodLayers('6.1.0-test') });
  const idx = await buildIndex({ dir: layout, tag: 'multi', images: [
    { tag: 'amd', platform: 'linux/amd64' }, { tag: 'arm', platform: 'linux/arm64/v8' }] });
  for (const [tag, opts, mt] of [
    ['oci', {}, 'application/vnd.oci.image.manifest.v1+json'],
    ['v2s2', { format: 'v2s2' }, 'application/vnd.docker.distribution.manifest.v2+json'],
    ['zstd', { compress: 'zstd' }, 'application/vnd.oci.image.manifest.v1+json'],
    ['plain', { compress: 'none' }, 'application/vnd.oci.image.manifest.v1+json'],
  ] as const) {
    const digest = await pushImage(img, reg, `kmod:${tag}`, opts);
    const r = await request(`${reg.url}/v2/kmod/manifests/${tag}`, { headers: { accept: ACCEPT } });
    const body = await r.body.json() as { mediaType: string; layers: Array<{ mediaType: string }> };
    t.equal(r.statusCode, 200, tag);
    t.equal(r.headers['docker-content-digest'], digest, `${tag} digest`);
    t.equal(r.headers['content-type'], mt, `${tag} media type`);
    const want = tag === 'zstd' ? /\+zstd$/ : tag === 'plain' ? /tar$/ : /gzip$/;
    t.match(body.layers[0]!.mediaType, want, `${tag} layer type`);
  }
  for (const [tag, format, mt] of [['multi', undefined, 'application/vnd.oci.image.index.v1+json'],
    ['list', 'v2s2', 'application/vnd.docker.distribution.manifest.list.v2+json']] as const) {
    const digest = await pushImage(idx, reg, `kmod:${tag}`, { format });
    const r = await request(`${reg.url}/v2/kmod/manifests/${tag}`, { headers: { accept: ACCEPT } });
    const body = await r.body.json() as { mediaType: string; manifests: unknown[] };
    t.equal(r.headers['docker-content-digest'], digest);
    t.equal(r.headers['content-type'], mt);
    t.equal(body.manifests.length, 2);
  }
  const reqs = await reg.requests();
  t.ok(reqs.some((q) => q.method === 'GET' && q.path === '/v2/kmod/manifests/list' && q.status === 200));
  await reg.stop();
  await reg.start();
  const r = await request(`${reg.url}/v2/kmod/manifests/oci`, { headers: { accept: ACCEPT } });
  await r.body.dump();
  t.equal(r.statusCode, 200, 'data survives a restart');
});

t.test('basic+TLS and token registries', async (t) => {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-helpers-'));
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));
  const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'x', layers: kmodLayers('6.1.0-test') });
  for (const auth of ['basic', 'token'] as const) {
    const reg = await startRegistry({ auth, tls: auth === 'basic' });
    t.teardown(() => reg.stop());
    t.ok(reg.password && reg.username);
    await pushImage(img, reg, 'kmod:1');
    await pushImage(img, reg, 'kmod:plain', { compress: 'none' });
    const reqs = await reg.requests();
    t.ok(reqs.some((q) => q.status === 401), `${auth}: challenges`);
    t.ok(reqs.some((q) => q.method === 'PUT' && q.path === '/v2/kmod/manifests/plain' && q.status === 201));
  }
});
