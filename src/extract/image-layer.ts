/**
 * One layer of an image, opened for reading: its verified blob, and what the reader checks and names on the
 * way (the layer's DiffID from the image config; `image <ref>: layer <digest>` in every failure).
 */
import type { Readable } from 'node:stream';
import type { ResolvedImage } from '../image/types.js';
import type { LayerReadOptions } from './layer-entries.js';

export interface OpenedLayer {
  blob: Readable;
  mediaType: string;
  /** pass to layerEntries / rawLayerEntries */
  read: LayerReadOptions;
}

export async function openImageLayer(image: ResolvedImage, index: number, opts: { signal?: AbortSignal } = {})
  : Promise<OpenedLayer> {
  const layer = image.layers[index]!;
  const diffId = (await image.diffIds())[index]!;
  const blob = await image.openBlob(layer, { signal: opts.signal });
  return {
    blob,
    mediaType: layer.mediaType,
    read: { signal: opts.signal, diffId, what: layerName(image, index) },
  };
}

export function layerName(image: ResolvedImage, index: number): string {
  return `image ${image.reference}: layer ${image.layers[index]!.digest}`;
}
