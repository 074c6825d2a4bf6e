/**
 * The kernels and kernel modules an image carries: every `<prefix>/lib/modules/<kver>/...` file that survives the
 * layer stack, read from the layers' tar entries without writing anything to disk. Whiteouts apply in layer
 * order as in an overlay mount: `.wh.NAME` hides NAME (and everything below it) from lower layers,
 * `.wh..wh..opq` hides a directory's lower contents, and a non-directory replacing a directory hides its tree.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import { OperationError } from '../errors.js';
import { rawLayerEntries } from '../extract/layer-entries.js';
import type { ResolvedImage } from './types.js';

const MODULE_PATH = /^(?:(.*)\/)?lib\/modules\/([^/]+)\/(.+)$/;
const KO = /\.ko(?:\.(?:xz|zst|gz))?$/;

/** A tar entry name as a clean path relative to the image root ('' for the root itself). */
export function entryPath(name: string): string {
  const p = path.posix.normalize(`/${name}`).replace(/\/+$/, '');
  return p.replace(/^\/+/, '');
}

function dropTree(files: Map<string, string>, p: string, self: boolean): void {
  const prefix = p === '' ? '' : `${p}/`;
  for (const k of files.keys()) {
    if ((self && k === p) || k.startsWith(prefix)) files.delete(k);
  }
}

function ancestors(files: Map<string, string>): Set<string> {
  const out = new Set<string>(['']);
  for (const k of files.keys()) {
    for (let i = k.indexOf('/'); i > 0; i = k.indexOf('/', i + 1)) out.add(k.slice(0, i));
  }
  return out;
}

export interface KernelListing {
  /** kernel release → .ko paths relative to the image root, sorted */
  kernels: Record<string, string[]>;
}

/** Lists `.ko` files per kernel release, for `image inspect`. Reads (and verifies) every layer once. */
export async function listKernelModules(image: ResolvedImage, opts: { signal?: AbortSignal } = {})
  : Promise<KernelListing> {
  // path → tar entry type, only for paths below some lib/modules/<kver>/ (keeps whiteout handling cheap)
  const files = new Map<string, string>();
  for (const layer of image.layers) {
    const blob = await image.openBlob(layer, { signal: opts.signal });
    const hidden: Array<{ path: string; self: boolean }> = [];
    const added: Array<[string, string]> = [];
    try {
      await readLayer(blob, layer.mediaType, hidden, added, opts.signal);
    } catch (e) {
      // the blob's own errors already name the image and digest; parser errors do not
      if (e instanceof OperationError && !/^(image|registry) /.test(e.message)) {
        throw new OperationError(`image ${image.reference}: layer ${layer.digest}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    // whiteouts hide lower layers only, never entries of their own layer; a file replacing a directory
    // matters only when that directory holds something tracked
    const dirs = ancestors(files);
    for (const h of hidden) if (h.self || dirs.has(h.path)) dropTree(files, h.path, h.self);
    for (const [p, type] of added) files.set(p, type);
  }
  const kernels: Record<string, string[]> = {};
  for (const [p, type] of files) {
    const m = MODULE_PATH.exec(p)!;
    const kver = m[2]!;
    kernels[kver] ??= [];
    const isFile = type === 'file' || type === 'contiguous-file' || type === 'link';
    if (isFile && KO.test(m[3]!)) kernels[kver].push(p);
  }
  const sorted: Record<string, string[]> = {};
  for (const k of Object.keys(kernels).sort()) sorted[k] = kernels[k]!.sort();
  return { kernels: sorted };
}

async function readLayer(blob: Readable, mediaType: string, hidden: Array<{ path: string; self: boolean }>,
  added: Array<[string, string]>, signal?: AbortSignal): Promise<void> {
  for await (const { header, stream } of rawLayerEntries(blob, mediaType, { signal })) {
    await stream.skip();
    const p = entryPath(header.name);
    if (p === '') continue;
    const base = path.posix.basename(p);
    const dir = path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p);
    if (base === '.wh..wh..opq') hidden.push({ path: dir, self: false });
    else if (base.startsWith('.wh.')) hidden.push({ path: dir ? `${dir}/${base.slice(4)}` : base.slice(4), self: true });
    else {
      const type = header.type ?? 'file';
      // a file or link where a lower layer had a directory hides that directory's contents
      if (type !== 'directory') hidden.push({ path: p, self: false });
      if (MODULE_PATH.test(p)) added.push([p, type]);
    }
  }
}
