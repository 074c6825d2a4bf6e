/**
 * Manifest documents (OCI manifest/index, Docker schema 2 manifest/list): parsing, and choosing the image for a
 * platform out of an index. Source-independent: registry and layout both feed bytes in here.
 */
import { OperationError } from '../errors.js';
import {
  DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, isImageManifestType, isIndexType,
} from './media-types.js';
import type { Logger } from '../log.js';
import { formatPlatform, platformScore, warnOtherPlatform } from './platform.js';
import type { Descriptor, Platform } from './types.js';
import { parseReceivedJson } from './bounded-json.js';

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

export type Manifest = ImageManifest | IndexManifest;

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number' ||
    typeof d.mediaType !== 'string' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new Error(`${where} is not a valid descriptor`);
  }
  return d as Descriptor;
}

/**
 * Parses a manifest. `contentType` is the registry's Content-Type (or the layout descriptor's media type);
 * the document's own `mediaType` field is used when that is absent or generic.
 */
export function parseManifest(body: Buffer, contentType: string | undefined, what: string): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = parseReceivedJson(body.toString('utf8'), `${what}: the manifest`) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof OperationError) throw e;
    throw new OperationError(`${what}: the manifest is not valid JSON`);
  }
  const ct = contentType?.split(';')[0]?.trim();
  let mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (ct && (isIndexType(ct) || isImageManifestType(ct))) mediaType = ct;
  if (!mediaType) mediaType = Array.isArray(doc.manifests) ? OCI_INDEX : OCI_MANIFEST;
  if (doc.schemaVersion === 1 || mediaType.includes('distribution.manifest.v1')) {
    throw new OperationError(`${what}: Docker schema 1 manifests are not supported (push the image again with a current tool)`);
  }
  try {
    if (isIndexType(mediaType)) {
      if (!Array.isArray(doc.manifests)) throw new Error('an index without "manifests"');
      return { kind: 'index', mediaType, manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)) };
    }
    if (isImageManifestType(mediaType)) {
      if (!Array.isArray(doc.layers)) throw new Error('a manifest without "layers"');
      return {
        kind: 'manifest',
        mediaType,
        config: descriptor(doc.config, 'config'),
        layers: doc.layers.map((l, i) => descriptor(l, `layers[${i}]`)),
      };
    }
  } catch (e) {
    if (e instanceof OperationError) throw e;
    throw new OperationError(`${what}: malformed manifest: ${(e as Error).message}`);
  }
  throw new OperationError(
    `${what}: unsupported manifest media type '${mediaType}' (supported: ${[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ')})`,
  );
}

/** Platforms of an index, as "os/arch[/variant]", leaving out attestation entries (unknown/unknown). */
export function indexPlatforms(index: IndexManifest): string[] {
  const out: string[] = [];
  for (const m of index.manifests) {
    if (!m.platform || m.platform.os === 'unknown') continue;
    const p = formatPlatform(m.platform);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** The index entry for `want`; none → an error listing what the index has. */
export function selectPlatform(index: IndexManifest, want: Platform, what: string): Descriptor {
  let best: Descriptor | undefined;
  let bestScore = 0;
  for (const m of index.manifests) {
    if (!isImageManifestType(m.mediaType) && m.mediaType !== '') continue;
    const s = platformScore(want, m.platform);
    if (s > bestScore) {
      best = m;
      bestScore = s;
    }
  }
  if (!best) {
    const have = indexPlatforms(index);
    throw new OperationError(`${what} has no image for ${formatPlatform(want)}; it has: ${have.join(', ') || 'no platforms'}`);
  }
  return best;
}

/**
 * The `rootfs.diff_ids` of an image config (OCI and Docker schema 2 configs alike): one sha256 per layer, in
 * layer order.
 */
export function configDiffIds(config: Buffer, layerCount: number, what: string): string[] {
  let ids: unknown;
  try {
    ids = (parseReceivedJson(config.toString('utf8'), `${what}: the image config`) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  } catch (e) {
    if (e instanceof OperationError) throw e;
    throw new OperationError(`${what}: the image config is not valid JSON`);
  }
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new OperationError(`${what}: the image config has no valid rootfs.diff_ids (sha256 DiffIDs of the layers)`);
  }
  if (ids.length !== layerCount) {
    throw new OperationError(`${what}: the image config lists ${ids.length} DiffIDs for ${layerCount} layers`);
  }
  return ids as string[];
}

/** A function that runs `fn` once and then returns its first promise. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/** The platform an image's config declares. */
export function configPlatform(config: Buffer): Platform | undefined {
  try {
    const c = parseReceivedJson(config.toString('utf8'), 'the image config') as { os?: unknown; architecture?: unknown; variant?: unknown };
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined;
    return { os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * What every image source does once it holds the top manifest: pick the platform's image manifest out of an
 * index, and learn the image's platforms (from the index, else from the single image's config).
 */
export async function resolveForPlatform(opts: {
  name: string;
  top: Manifest;
  topDigest: string;
  want: Platform;
  log: Logger;
  readManifest(desc: Descriptor): Promise<{ manifest: Manifest; digest: string }>;
  readConfig(desc: Descriptor): Promise<Buffer>;
}): Promise<{ image: ImageManifest; manifestDigest: string; platforms: string[] }> {
  const { name, want, log } = opts;
  // an image without an index names its platform in its config only
  const fromConfig = async (image: ImageManifest, manifestDigest: string) => {
    const p = configPlatform(await opts.readConfig(image.config));
    warnOtherPlatform(log, name, p, want);
    return { image, manifestDigest, platforms: p ? [formatPlatform(p)] : [] };
  };
  if (opts.top.kind === 'manifest') return fromConfig(opts.top, opts.topDigest);
  const platforms = indexPlatforms(opts.top);
  const entry = selectPlatform(opts.top, want, `image ${name}`);
  const { manifest, digest } = await opts.readManifest(entry);
  if (manifest.kind !== 'manifest') {
    throw new OperationError(`image ${name}: the ${formatPlatform(want)} entry is itself an index (nested indexes are not supported)`, { located: true });
  }
  log.debug({ image: name, platform: formatPlatform(want), digest }, 'selected platform');
  if (platforms.length > 0) return { image: manifest, manifestDigest: digest, platforms };
  return fromConfig(manifest, digest);
}
