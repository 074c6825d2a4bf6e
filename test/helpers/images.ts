/**
 * Test kmod images made by independent producers: umoci builds OCI layouts (one `umoci repack` per layer, so
 * the tests decide where layer boundaries are), skopeo pushes them to a test registry in OCI or Docker schema 2
 * form with gzip or zstd layers. Uncompressed layers cannot leave skopeo for a registry (its docker transport
 * always compresses), so `compress: 'none'` pushes with a small distribution-spec uploader here instead.
 *
 *   const img = await buildLayout({ dir, tag: 'v1', layers: [{ 'opt/lib/modules/6.1.0/a.ko': 'x' }] });
 *   const digest = await pushImage(img, reg, 'kmod:6.1.0', { format: 'v2s2' });
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Agent, fetch as ufetch } from 'undici';
import type { TestRegistry } from './registry.js';

const exec = promisify(execFile);

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** One layer: paths relative to the image root (e.g. "opt/lib/modules/6.1.0/a.ko") → what to put there. */
export type LayerSpec = Record<string, string | Buffer | { symlink: string } | { whiteout: true } | { dir: true }>;

export interface BuiltImage {
  /** the OCI layout directory */
  dir: string;
  tag: string;
  /** "oci:<dir>:<tag>" — a reference kmm-worker accepts */
  ref: string;
  /** digest of the manifest (or index) the tag names in the layout */
  digest: string;
  mediaType: string;
}

export interface BuildLayoutOptions {
  dir: string;
  tag: string;
  /** GOARCH-style: amd64 (default), arm64, ... */
  arch?: string;
  os?: string;
  layers: LayerSpec[];
  /** config labels */
  labels?: Record<string, string>;
}

interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string>;
    platform?: { os: string; architecture: string; variant?: string } }>;
}

const REF_NAME = 'org.opencontainers.image.ref.name';

async function readIndex(dir: string): Promise<OciIndex> {
  return JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as OciIndex;
}

/** The descriptor a tag names in an OCI layout. */
export async function layoutTag(dir: string, tag: string): Promise<BuiltImage> {
  const idx = await readIndex(dir);
  const d = idx.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
  if (!d) throw new Error(`layout ${dir} has no tag ${tag}`);
  return { dir, tag, ref: `oci:${dir}:${tag}`, digest: d.digest, mediaType: d.mediaType };
}

export async function readBlob(dir: string, digest: string): Promise<Buffer> {
  const [alg, hex] = digest.split(':');
  return fs.readFile(path.join(dir, 'blobs', alg!, hex!));
}

async function writeBlob(dir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = crypto.createHash('sha256').update(data).digest('hex');
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

async function applyLayer(rootfs: string, layer: LayerSpec): Promise<void> {
  for (const [rel, what] of Object.entries(layer)) {
    const p = path.join(rootfs, rel);
    if (!p.startsWith(rootfs + path.sep)) throw new Error(`layer path escapes the root: ${rel}`);
    if (typeof what === 'object' && !Buffer.isBuffer(what) && 'whiteout' in what) {
      // umoci turns a deletion into a .wh.<name> entry in the next layer
      await fs.rm(p, { recursive: true, force: true });
      continue;
    }
    if (typeof what === 'object' && !Buffer.isBuffer(what) && 'dir' in what) {
      await fs.mkdir(p, { recursive: true, mode: 0o755 });
      continue;
    }
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.rm(p, { recursive: true, force: true });
    if (typeof what === 'object' && !Buffer.isBuffer(what) && 'symlink' in what) {
      await fs.symlink(what.symlink, p);
    } else {
      await fs.writeFile(p, what as string | Buffer, { mode: 0o644 });
    }
  }
}

/**
 * Builds `dir:tag` with umoci: a blank image for `linux/<arch>`, then one layer per entry of `layers`.
 * The layout may already exist (several tags in one layout).
 */
export async function buildLayout(opts: BuildLayoutOptions): Promise<BuiltImage> {
  const { dir, tag } = opts;
  const image = `${dir}:${tag}`;
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const exists = await fs.stat(path.join(dir, 'index.json')).then(() => true, () => false);
  if (!exists) await run('umoci', ['init', '--layout', dir]);
  await run('umoci', ['new', '--image', image]);
  const cfg = ['config', '--image', image, '--os', opts.os ?? 'linux', '--architecture', opts.arch ?? 'amd64'];
  for (const [k, v] of Object.entries(opts.labels ?? {})) cfg.push('--config.label', `${k}=${v}`);
  await run('umoci', cfg);
  const bundle = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-bundle-'));
  try {
    await fs.rm(bundle, { recursive: true });
    await run('umoci', ['unpack', '--image', image, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    for (const [i, layer] of opts.layers.entries()) {
      await applyLayer(rootfs, layer);
      await run('umoci', ['repack', '--refresh-bundle', '--history.comment', `layer ${i}`, '--image', image, bundle]);
    }
  } finally {
    await fs.rm(bundle, { recursive: true, force: true });
  }
  return layoutTag(dir, tag);
}

/**
 * Writes an OCI image index tagged `tag` into the layout `dir`, pointing at existing tags of that layout with
 * the given platforms ("linux/arm64/v8").
 */
export async function buildIndex(opts: {
  dir: string; tag: string; images: Array<{ tag: string; platform: string }>;
}): Promise<BuiltImage> {
  const idx = await readIndex(opts.dir);
  const manifests = [];
  for (const { tag, platform } of opts.images) {
    const d = idx.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
    if (!d) throw new Error(`layout ${opts.dir} has no tag ${tag}`);
    const [o, architecture, variant] = platform.split('/');
    manifests.push({ mediaType: d.mediaType, digest: d.digest, size: d.size,
      platform: { os: o!, architecture: architecture!, ...(variant ? { variant } : {}) } });
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests }));
  const blob = await writeBlob(opts.dir, body);
  idx.manifests = idx.manifests.filter((m) => m.annotations?.[REF_NAME] !== opts.tag);
  idx.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', ...blob,
    annotations: { [REF_NAME]: opts.tag } });
  await fs.writeFile(path.join(opts.dir, 'index.json'), JSON.stringify(idx));
  return layoutTag(opts.dir, opts.tag);
}

export interface PushOptions {
  format?: 'oci' | 'v2s2';
  /** 'none': gzip layers pushed decompressed; 'keep': every blob and manifest pushed byte for byte */
  compress?: 'gzip' | 'zstd' | 'none' | 'keep';
}

function layoutOf(layoutRef: string | BuiltImage): { dir: string; tag: string } {
  if (typeof layoutRef !== 'string') return { dir: layoutRef.dir, tag: layoutRef.tag };
  const s = layoutRef.replace(/^oci:/, '');
  const i = s.lastIndexOf(':');
  return i > 0 && !s.slice(i).includes('/') ? { dir: s.slice(0, i), tag: s.slice(i + 1) } : { dir: s, tag: 'latest' };
}

/**
 * Pushes a layout tag (an image or an index, all its images) to `registry` as `repo:tag`; returns the digest
 * the registry stores for it (what `image inspect` must print).
 */
export async function pushImage(layoutRef: string | BuiltImage, registry: TestRegistry, repoTag: string,
  opts: PushOptions = {}): Promise<string> {
  const src = layoutOf(layoutRef);
  const compress = opts.compress ?? 'gzip';
  if (compress === 'keep') return pushLayoutRaw(src.dir, await layoutTag(src.dir, src.tag), registry, repoTag);
  if (compress === 'none') {
    if (opts.format === 'v2s2') throw new Error('pushImage: uncompressed layers are pushed as OCI only');
    const plain = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-plain-'));
    try {
      const top = await decompressLayout(src.dir, src.tag, plain);
      return await pushLayoutRaw(plain, top, registry, repoTag);
    } finally {
      await fs.rm(plain, { recursive: true, force: true });
    }
  }
  let from = `oci:${src.dir}:${src.tag}`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-push-'));
  try {
    const top = await layoutTag(src.dir, src.tag);
    const all = top.mediaType.includes('index') ? ['--all'] : [];
    if (compress === 'zstd') {
      // skopeo recompresses on the way into a layout; to a registry it then keeps the zstd blobs
      await run('skopeo', ['copy', '-q', ...all, '--dest-compress-format', 'zstd', from, `oci:${tmp}/z:${src.tag}`]);
      from = `oci:${tmp}/z:${src.tag}`;
    }
    const args = ['copy', '-q', ...all, '--digestfile', `${tmp}/digest`, '--dest-tls-verify=false'];
    if (opts.format) args.push('--format', opts.format);
    if (registry.username && registry.password) args.push('--dest-creds', `${registry.username}:${registry.password}`);
    args.push(from, `docker://${registry.host}/${repoTag}`);
    await run('skopeo', args);
    return (await fs.readFile(`${tmp}/digest`, 'utf8')).trim();
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Copies `dir:tag` to a new layout `out` with every gzip layer stored uncompressed; returns the new top. */
async function decompressLayout(dir: string, tag: string, out: string): Promise<BuiltImage> {
  await fs.mkdir(out, { recursive: true });
  await fs.writeFile(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const top = await layoutTag(dir, tag);
  const convert = async (digest: string, mediaType: string): Promise<{ digest: string; size: number }> => {
    const doc = JSON.parse((await readBlob(dir, digest)).toString()) as {
      manifests?: Array<{ digest: string; mediaType: string; size: number }>;
      config?: { digest: string }; layers?: Array<{ digest: string; mediaType: string; size: number }>;
    };
    if (mediaType.includes('index')) {
      for (const m of doc.manifests ?? []) Object.assign(m, await convert(m.digest, m.mediaType));
    } else {
      await writeBlob(out, await readBlob(dir, doc.config!.digest));
      for (const l of doc.layers ?? []) {
        let data = await readBlob(dir, l.digest);
        if (l.mediaType.endsWith('+gzip')) {
          data = zlib.gunzipSync(data);
          l.mediaType = l.mediaType.replace(/\+gzip$/, '');
        }
        Object.assign(l, await writeBlob(out, data));
      }
    }
    return writeBlob(out, Buffer.from(JSON.stringify(doc)));
  };
  const blob = await convert(top.digest, top.mediaType);
  await fs.writeFile(path.join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [
    { mediaType: top.mediaType, ...blob, annotations: { [REF_NAME]: tag } }] }));
  return layoutTag(out, tag);
}

/** A minimal distribution-spec uploader (monolithic blob uploads, manifests by digest then by tag). */
async function pushLayoutRaw(dir: string, top: BuiltImage, reg: TestRegistry, repoTag: string): Promise<string> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  let authz: string | undefined;
  if (reg.auth === 'basic') authz = `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString('base64')}`;
  if (reg.auth === 'token') {
    const u = new URL(reg.tokenServer!.realm);
    u.searchParams.set('service', reg.tokenServer!.service);
    u.searchParams.set('scope', `repository:${repo}:pull,push`);
    const r = await ufetch(u, { headers: {
      authorization: `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString('base64')}` } });
    authz = `Bearer ${((await r.json()) as { token: string }).token}`;
  }
  const headers = (extra: Record<string, string> = {}) => ({ ...(authz ? { authorization: authz } : {}), ...extra });
  const base = `${reg.url}/v2/${repo}`;
  const putBlob = async (digest: string) => {
    const data = await readBlob(dir, digest);
    const post = await ufetch(`${base}/blobs/uploads/`, { method: 'POST', headers: headers(), dispatcher });
    await post.arrayBuffer();
    if (post.status !== 202) throw new Error(`blob upload start: HTTP ${post.status}`);
    const loc = new URL(post.headers.get('location')!, reg.url);
    loc.searchParams.set('digest', digest);
    const put = await ufetch(loc, { method: 'PUT', body: data, dispatcher,
      headers: headers({ 'content-type': 'application/octet-stream' }) });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`blob upload ${digest}: HTTP ${put.status}`);
  };
  const putManifest = async (ref: string, digest: string, mediaType: string) => {
    const r = await ufetch(`${base}/manifests/${ref}`, { method: 'PUT', body: await readBlob(dir, digest), dispatcher,
      headers: headers({ 'content-type': mediaType }) });
    await r.arrayBuffer();
    if (r.status !== 201) throw new Error(`manifest ${ref}: HTTP ${r.status}`);
  };
  const push = async (digest: string, mediaType: string) => {
    const doc = JSON.parse((await readBlob(dir, digest)).toString()) as {
      manifests?: Array<{ digest: string; mediaType: string }>; config?: { digest: string };
      layers?: Array<{ digest: string }>;
    };
    for (const m of doc.manifests ?? []) await push(m.digest, m.mediaType);
    if (doc.config) await putBlob(doc.config.digest);
    for (const l of doc.layers ?? []) await putBlob(l.digest);
    await putManifest(digest, digest, mediaType);
  };
  try {
    await push(top.digest, top.mediaType);
    await putManifest(tag, top.digest, top.mediaType);
  } finally {
    await dispatcher.close();
  }
  return top.digest;
}

/** A typical small kmod image: modules (+ modules.dep and the `host` symlink) in one layer, firmware in another. */
export function kmodLayers(kver: string, opts: { dirName?: string; modules?: Record<string, string | Buffer> } = {})
  : LayerSpec[] {
  const d = (opts.dirName ?? '/opt').replace(/^\/+/, '');
  const m = `${d ? d + '/' : ''}lib/modules/${kver}`;
  const mods = opts.modules ?? { 'kmm_a.ko': '\x7fELF-fake-kmm_a\n', 'kmm_b.ko': '\x7fELF-fake-kmm_b\n' };
  const layer1: LayerSpec = {};
  for (const [name, body] of Object.entries(mods)) layer1[`${m}/${name}`] = body;
  layer1[`${m}/host`] = { symlink: `/lib/modules/${kver}` };
  return [layer1, { 'firmware/vendor/fw.bin': crypto.randomBytes(4096) }];
}
