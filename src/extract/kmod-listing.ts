/**
 * The kernels and kernel modules an image carries: every `<prefix>/lib/modules/<kver>/...` file that survives the
 * layer stack, read from the layers' tar entries without writing anything to disk.
 */
import { openImageLayer } from './image-layer.js';
import { rawLayerEntries } from './layer-entries.js';
import { entryKind, LayerChanges, UpperLayers, type EntryKind } from '../image/merged-listing.js';
import type { ResolvedImage } from '../image/types.js';
import { isKoFile } from '../kmod/names.js';

const MODULE_PATH = /^(?:(.*)\/)?lib\/modules\/([^/]+)\/(.+)$/;

export interface KernelListing {
  /** kernel release → .ko paths relative to the image root, sorted */
  kernels: Record<string, string[]>;
}

/**
 * Lists `.ko` files per kernel release, for `image inspect`. Reads (and verifies) every layer once, top layer
 * first, with the same merged-view rules as preflight (merged-listing.ts).
 */
export async function listKernelModules(image: ResolvedImage, opts: { signal?: AbortSignal } = {})
  : Promise<KernelListing> {
  const upper = new UpperLayers();
  // path → kind in the merged view, only for paths below some lib/modules/<kver>/
  const files = new Map<string, EntryKind>();
  for (let i = image.layers.length - 1; i >= 0; i--) {
    const changes = new LayerChanges();
    // within one layer a later entry for the same path replaces an earlier one
    const own = new Map<string, EntryKind>();
    // every layer is read to its end, so each is checked against its digest and its DiffID
    const { blob, mediaType, read } = await openImageLayer(image, i, opts);
    for await (const { header, stream } of rawLayerEntries(blob, mediaType, read)) {
      await stream.skip();
      const kind = entryKind(header.type);
      const p = changes.record(header.name, kind);
      if (p !== undefined && MODULE_PATH.test(p)) own.set(p, kind);
    }
    for (const [p, kind] of own) if (!files.has(p) && !upper.hides(p, kind)) files.set(p, kind);
    upper.absorb(changes);
  }
  const kernels: Record<string, string[]> = {};
  for (const [p, kind] of files) {
    const m = MODULE_PATH.exec(p)!;
    const list = (kernels[m[2]!] ??= []);
    if (kind === 'file' && isKoFile(m[3]!)) list.push(p);
  }
  const sorted: Record<string, string[]> = {};
  for (const k of Object.keys(kernels).sort()) sorted[k] = kernels[k]!.sort();
  return { kernels: sorted };
}
