/**
 * The kernels and kernel modules an image carries: every `<prefix>/lib/modules/<kver>/...` file that survives the
 * layer stack, read from the layers' tar entries without writing anything to disk.
 */
import { walkMergedView, type NodeKind } from './merged-view.js';
import type { ResolvedImage } from '../image/types.js';
import { isKoFile } from '../kmod/names.js';

const MODULE_PATH = /^(?:(.*)\/)?lib\/modules\/([^/]+)\/(.+)$/;

export interface KernelListing {
  /** kernel release → .ko paths relative to the image root, sorted */
  kernels: Record<string, string[]>;
}

/**
 * Lists `.ko` files per kernel release, for `image inspect`. Reads (and verifies) every layer once, top layer
 * first, through the merged view preflight uses too (merged-view.ts).
 */
export async function listKernelModules(image: ResolvedImage, opts: { signal?: AbortSignal } = {})
  : Promise<KernelListing> {
  // path → kind in the merged view, only for paths below some lib/modules/<kver>/
  const files = new Map<string, NodeKind>();
  // within one layer a later entry for the same path replaces an earlier one
  const own = new Map<string, NodeKind>();
  await walkMergedView(image, opts, ({ path, kind }) => {
    if (MODULE_PATH.test(path)) own.set(path, kind);
  }, () => {
    for (const [p, kind] of own) if (!files.has(p)) files.set(p, kind);
    own.clear();
    return false;
  });
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
