/**
 * Test-only image sources for the extractor: a ResolvedImage over an OCI layout (what umoci built) or over
 * in-memory layer blobs (hand-written hostile tar streams), with the same verify-while-streaming contract.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import tar from 'tar-stream';
import type { Descriptor, ResolvedImage } from '../../src/image/types.js';

export const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

function verifying(desc: Descriptor): Transform {
  const hash = crypto.createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = `sha256:${hash.digest('hex')}`;
      if (size !== desc.size || got !== desc.digest) cb(new Error(`blob ${desc.digest} failed verification (got ${got}, ${size} bytes)`));
      else cb();
    },
  });
}

function resolved(reference: string, digest: string, layers: Descriptor[], open: (d: Descriptor) => Readable,
  diffIds: () => Promise<string[]>): ResolvedImage {
  return {
    reference,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    manifestDigest: digest,
    platforms: ['linux/amd64'],
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + '0'.repeat(64), size: 2 },
    layers,
    diffIds,
    async openBlob(desc) {
      const v = verifying(desc);
      const src = open(desc);
      src.on('error', (e) => v.destroy(e));
      return src.pipe(v);
    },
  };
}

/** A ResolvedImage over `dir:tag` of an OCI layout. */
export async function layoutImage(dir: string, tag: string): Promise<ResolvedImage> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
  const top = index.manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const blobPath = (d: string) => path.join(dir, 'blobs', ...d.split(':'));
  const manifest = JSON.parse(await readFile(blobPath(top.digest), 'utf8'));
  const config = JSON.parse(await readFile(blobPath(manifest.config.digest), 'utf8'));
  return resolved(`oci:${dir}:${tag}`, top.digest, manifest.layers, (d) => createReadStream(blobPath(d.digest)),
    async () => config.rootfs.diff_ids);
}

/** A ResolvedImage over in-memory layer blobs (each given with its media type). */
export function memoryImage(
  layers: { mediaType: string; blob: Buffer; /** bytes served instead of `blob` (a tampered registry) */ served?: Buffer;
    /** the config's DiffID for this layer; default: the true one */ diffId?: string }[],
  reference = 'test/memory:latest',
): ResolvedImage {
  const blobs = new Map<string, Buffer>();
  const descs = layers.map(({ mediaType, blob, served }) => {
    const digest = `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`;
    blobs.set(digest, served ?? blob);
    return { mediaType, digest, size: blob.length };
  });
  const digest = `sha256:${crypto.createHash('sha256').update(descs.map((d) => d.digest).join()).digest('hex')}`;
  const diffIds = layers.map(({ mediaType, blob, diffId }) => diffId ?? sha256(uncompressed(mediaType, blob)));
  return resolved(reference, digest, descs, (d) => Readable.from([blobs.get(d.digest)!]), async () => diffIds);
}

function sha256(data: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
}

function uncompressed(mediaType: string, blob: Buffer): Buffer {
  try {
    if (mediaType.endsWith('gzip')) return zlib.gunzipSync(blob);
    if (mediaType.endsWith('zstd')) return execFileSync('zstd', ['-dcq'], { input: blob, maxBuffer: 1 << 30 });
  } catch {
    // a deliberately broken blob: its DiffID does not matter, it never decodes
  }
  return blob;
}

export type TarEntry = Partial<tar.Header> & { name: string; body?: string | Buffer };

/** A hand-written tar stream: any names, types and modes, exactly as given. */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const { body, ...header } of entries) {
    const type = header.type ?? 'file';
    if (type === 'file') pack.entry({ mode: 0o644, ...header, type }, body ?? '');
    else pack.entry({ mode: type === 'directory' ? 0o755 : 0o644, ...header, type });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
