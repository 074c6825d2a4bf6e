/**
 * A local OCI image layout (`oci:PATH[:tag]`, image-spec "image-layout") as a ResolvedImage. The tag is the
 * `org.opencontainers.image.ref.name` annotation of an index.json entry; without a tag, a layout holding one
 * image is that image. Blobs are read from `blobs/<alg>/<hex>` and verified like registry blobs.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { OperationError } from '../errors.js';
import { checkJsonDepth, MAX_INDEX_BYTES, openRegularFile, parseBoundedJson, readRegularFile } from '../bounded-read.js';
import type { Logger } from '../log.js';
import { MAX_MANIFEST_BYTES } from './media-types.js';
import { configDiffIds, once, parseManifest, resolveForPlatform, type Manifest } from './manifest.js';
import { parseReceivedJson } from './bounded-json.js';
import type { LayoutReference } from './reference.js';
import type { Descriptor, Platform, ResolvedImage } from './types.js';
import { checkDigestFormat, readVerified, verifiedStream } from './verify.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

function blobFile(layout: string, digest: string): string {
  return path.join(layout, 'blobs', 'sha256', checkDigestFormat(digest));
}

async function* fileChunks(file: string, what: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let s: fs.ReadStream | undefined;
  try {
    // only a regular file: a FIFO in the layout must not block the pull (issue 14 F4)
    const fh = await openRegularFile(file);
    s = fh.createReadStream({ signal });
    for await (const c of s) yield c as Buffer;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OperationError(`${what} is missing from the layout`);
    if (code === 'ENOTREG') throw new OperationError(`${what} in the layout ${(e as Error).message}`);
    throw e;
  } finally {
    s?.destroy();
  }
}

/** A small JSON file of the layout: a regular file of at most MAX_INDEX_BYTES, with bounded nesting. */
async function readLayoutJson(file: string): Promise<unknown> {
  return parseBoundedJson((await readRegularFile(file, MAX_INDEX_BYTES)).toString('utf8'));
}

async function readBlob(layout: string, desc: Descriptor, what: string): Promise<Buffer> {
  return readVerified(fileChunks(blobFile(layout, desc.digest), `${what} ${desc.digest}`), desc, MAX_MANIFEST_BYTES, what);
}

interface LayoutIndex {
  manifests: Descriptor[];
}

async function readLayoutIndex(ref: LayoutReference): Promise<LayoutIndex> {
  const where = `image ${ref.name}`;
  let marker: { imageLayoutVersion?: unknown };
  try {
    marker = (await readLayoutJson(path.join(ref.path, 'oci-layout'))) as typeof marker;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new OperationError(`${where}: ${ref.path} is not an OCI image layout (no oci-layout file)`);
    }
    throw new OperationError(`${where}: cannot read ${path.join(ref.path, 'oci-layout')}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof marker.imageLayoutVersion !== 'string' || !marker.imageLayoutVersion.startsWith('1.')) {
    throw new OperationError(`${where}: unsupported OCI layout version ${JSON.stringify(marker.imageLayoutVersion)}`);
  }
  let index: unknown;
  try {
    index = await readLayoutJson(path.join(ref.path, 'index.json'));
  } catch (e) {
    throw new OperationError(`${where}: cannot read the layout's index.json: ${(e as Error).message.split('\n')[0]}`);
  }
  const m = parseManifest(Buffer.from(JSON.stringify(index)), undefined, `${where} index.json`);
  if (m.kind !== 'index') throw new OperationError(`${where}: the layout's index.json is not an image index`);
  return { manifests: m.manifests };
}

/** The index.json entry the reference names. */
function pickEntry(ref: LayoutReference, index: LayoutIndex): Descriptor {
  const where = `image ${ref.name}`;
  const tags = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((t): t is string => !!t);
  if (ref.digest) {
    const d = index.manifests.find((m) => m.digest === ref.digest);
    if (!d) throw new OperationError(`${where}: the layout has no entry with digest ${ref.digest}`);
    return d;
  }
  if (ref.tag) {
    const d = index.manifests.find((m) => m.annotations?.[REF_NAME] === ref.tag);
    if (!d) {
      throw new OperationError(`${where}: tag '${ref.tag}' not found in the layout; it has: ${tags.join(', ') || 'no tags'}`);
    }
    return d;
  }
  if (index.manifests.length === 1) return index.manifests[0]!;
  throw new OperationError(
    `${where}: the layout holds ${index.manifests.length} images; name one with oci:PATH:TAG (tags: ${tags.join(', ') || 'none'})`,
  );
}

async function readManifest(ref: LayoutReference, desc: Descriptor): Promise<Manifest> {
  const body = await readBlob(ref.path, desc, `image ${ref.name}: manifest`);
  try {
    checkJsonDepth(body.toString('utf8'));
  } catch (e) {
    throw new OperationError(`image ${ref.name}: manifest ${desc.digest} ${(e as Error).message}`, { located: true });
  }
  return parseManifest(body, desc.mediaType, `image ${ref.name}`);
}

export async function openLayoutImage(ref: LayoutReference, want: Platform, log: Logger): Promise<ResolvedImage> {
  const top = pickEntry(ref, await readLayoutIndex(ref));
  const topManifest = await readManifest(ref, top);
  const configs = new Map<string, () => Promise<Buffer>>();
  const readConfig = (d: Descriptor) => {
    if (!configs.has(d.digest)) configs.set(d.digest, once(() => readBlob(ref.path, d, `image ${ref.name}: config`)));
    return configs.get(d.digest)!();
  };
  const { image, manifestDigest, platforms } = await resolveForPlatform({
    name: ref.name,
    top: topManifest,
    topDigest: top.digest,
    want,
    log,
    readManifest: async (d) => ({ manifest: await readManifest(ref, d), digest: d.digest }),
    readConfig,
  });
  return {
    reference: ref.name,
    digest: top.digest,
    mediaType: topManifest.mediaType,
    manifestDigest,
    platforms,
    config: image.config,
    layers: image.layers,
    diffIds: once(async () => configDiffIds(await readConfig(image.config), image.layers.length, `image ${ref.name}`)),
    async openBlob(desc: Descriptor, o?: { signal?: AbortSignal }): Promise<Readable> {
      const file = blobFile(ref.path, desc.digest);
      await fsp.access(file).catch(() => {
        throw new OperationError(`image ${ref.name}: blob ${desc.digest} is missing from the layout`, { located: true });
      });
      return verifiedStream(fileChunks(file, `blob ${desc.digest}`, o?.signal), desc, `image ${ref.name}: blob`);
    },
  };
}

/** The digest of what the reference names in the layout (no blob is read). */
export async function resolveLayoutDigest(ref: LayoutReference): Promise<string> {
  return pickEntry(ref, await readLayoutIndex(ref)).digest;
}
