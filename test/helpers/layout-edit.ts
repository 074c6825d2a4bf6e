/**
 * Tampered copies of an OCI layout for the lazy-pull tests: the last layer's blob and descriptor edited, the
 * manifest and index rewritten to match (so that only what the edit broke is wrong), then pushed byte for byte.
 */
import crypto from 'node:crypto';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestRegistry } from './registry.js';
import { pushImage } from './images.js';

export interface LayerDescriptor { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }

export const sha256Of = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
export const blobPath = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));

/** The manifest of a layout's one image. */
export async function layoutManifest(dir: string): Promise<{ layers: LayerDescriptor[] } & Record<string, unknown>> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  return JSON.parse(await readFile(blobPath(dir, index.manifests[0]!.digest), 'utf8'));
}

/**
 * Copies `layout` (one image tagged v1), lets `edit` change the last layer's blob and descriptor, and pushes the
 * result to `reg` as `<repo>:<tag>`; returns that reference.
 */
export async function pushEditedLayout(layout: string, reg: TestRegistry, repo: string, tag: string,
  edit: (blob: Buffer, layer: LayerDescriptor) => Buffer): Promise<string> {
  const dir = `${layout}-${tag}`;
  await cp(layout, dir, { recursive: true });
  const doc = await layoutManifest(dir);
  const layer = doc.layers[doc.layers.length - 1]!;
  const blob = edit(await readFile(blobPath(dir, layer.digest)), layer);
  await writeFile(blobPath(dir, sha256Of(blob)), blob);
  Object.assign(layer, { digest: sha256Of(blob), size: blob.length });
  const top = Buffer.from(JSON.stringify(doc));
  await writeFile(blobPath(dir, sha256Of(top)), top);
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{
    mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Of(top), size: top.length,
    annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  await pushImage(`oci:${dir}:v1`, reg, `${repo}:${tag}`, { compress: 'keep' });
  return `${reg.host}/${repo}:${tag}`;
}
