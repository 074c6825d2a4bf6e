/**
 * The merged view of an image's layers, read from their tar headers without writing anything to disk, for
 * `image inspect` (kmod-listing.ts) and preflight (find-kmod.ts). Layers are read top-down: the first layer
 * that names a path decides it, and whiteouts (`.wh.NAME`, `.wh..wh..opq`), non-directories and directories
 * of upper layers hide what lower layers hold at and under those paths (OCI image-spec "Representing
 * Changes"). Entry names and whiteouts are read by entry-path.ts, the same rules the extraction applies.
 */
import type { ResolvedImage } from '../image/types.js';
import { classifyEntryPath, cleanEntryPath } from './entry-path.js';
import { openImageLayer } from './image-layer.js';
import { rawLayerEntries, type RawEntryBody } from './layer-entries.js';

/**
 * A path inside the image with `.` and `..` resolved lexically and clamped at the root (as a symlink target is
 * resolved inside a container); '' = the root. Entry NAMES never get here: cleanEntryPath refuses their `..`.
 */
export function canonicalPath(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

/** What a merged-view entry is (an entry name's whiteout meaning is entry-path.ts's ClassifiedEntry). */
export type NodeKind = 'file' | 'directory' | 'symlink' | 'other';

/** What the layers above the one being read hide. */
export class UpperLayers {
  /** a path whose whole subtree (itself included) is hidden below */
  private readonly removed = new Set<string>();
  /** a directory whose lower contents are hidden (its own entry stays) */
  private readonly opaque = new Set<string>();
  /** a path that is a directory above: a lower non-directory there is hidden */
  private readonly dirs = new Set<string>();

  hides(path: string, kind: NodeKind): boolean {
    if (kind !== 'directory' && this.dirs.has(path)) return true;
    if (this.removed.has(path)) return true;
    for (let i = path.lastIndexOf('/'); ; i = path.lastIndexOf('/', i - 1)) {
      const ancestor = i < 0 ? '' : path.slice(0, i);
      if (this.removed.has(ancestor) || this.opaque.has(ancestor)) return true;
      if (i <= 0) return false;
    }
  }

  /** Folds one fully read layer (its own changes) into what hides the layers below it. */
  absorb(layer: LayerChanges): void {
    for (const p of layer.removed) this.removed.add(p);
    for (const p of layer.opaque) this.opaque.add(p);
    for (const p of layer.dirs) this.dirs.add(p);
  }
}

/** The changes one layer makes to the layers below it, gathered while its entries are read. */
export class LayerChanges {
  readonly removed = new Set<string>();
  readonly opaque = new Set<string>();
  readonly dirs = new Set<string>();

  /**
   * Records one tar entry; returns the path it adds to the merged view, or undefined for a whiteout marker.
   */
  record(rawName: string, kind: NodeKind): string | undefined {
    const entry = classifyEntryPath(cleanEntryPath(rawName), rawName);
    if (entry.kind === 'opaque') this.opaque.add(entry.dir);
    if (entry.kind === 'whiteout') this.removed.add(entry.target);
    if (entry.kind !== 'path') return undefined;
    const path = entry.path;
    if (kind === 'directory') this.dirs.add(path);
    else this.removed.add(path);
    return path;
  }
}

export function entryKind(type: string | null | undefined): NodeKind {
  switch (type) {
    case 'file':
    case 'contiguous-file':
    case 'link': // a hardlink is another name for a regular file of the same layer
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    default:
      return 'other';
  }
}

/**
 * Resolves a path of the merged view through its symlinks (absolute targets are relative to the image root,
 * as inside a container). Returns the path unchanged when no symlink is involved.
 */
export function resolveInImage(path: string, symlinks: ReadonlyMap<string, string>): string {
  let remaining = canonicalPath(path).split('/').filter(Boolean);
  let resolved: string[] = [];
  let hops = 0;
  while (remaining.length > 0) {
    const part = remaining.shift()!;
    const candidate = [...resolved, part].join('/');
    const target = symlinks.get(candidate);
    if (target === undefined) {
      resolved.push(part);
      continue;
    }
    if (++hops > 40) return [...resolved, part, ...remaining].join('/'); // a loop: give up resolving
    const base = target.startsWith('/') ? [] : resolved;
    remaining = [...canonicalPath([...base, target].join('/')).split('/').filter(Boolean), ...remaining];
    resolved = [];
  }
  return resolved.join('/');
}

export interface MergedEntry {
  /** relative to the image root, cleaned */
  path: string;
  kind: NodeKind;
  /** a symlink's target, as the entry gives it */
  linkname: string | undefined;
  /** the entry's bytes: read them in the visit, or leave them (they are skipped) */
  body: RawEntryBody;
}

/**
 * The one walk over the merged view: reads the layers top-down and calls `visit` with every entry a layer
 * adds to the merged view (not hidden by the layers above it; whiteout markers are applied, not visited).
 * Every layer read is read to its end, so it is checked against its digest and its DiffID. After each layer
 * `layerDone()` may return true: the layers below are then not read at all.
 */
export async function walkMergedView(
  image: ResolvedImage,
  opts: { signal?: AbortSignal },
  visit: (entry: MergedEntry) => void | Promise<void>,
  layerDone: () => boolean = () => false,
): Promise<void> {
  const upper = new UpperLayers();
  for (let i = image.layers.length - 1; i >= 0; i--) {
    opts.signal?.throwIfAborted();
    const changes = new LayerChanges();
    const { blob, mediaType, read } = await openImageLayer(image, i, opts);
    for await (const { header, stream } of rawLayerEntries(blob, mediaType, read)) {
      const kind = entryKind(header.type);
      const path = changes.record(header.name, kind);
      if (path !== undefined && !upper.hides(path, kind)) {
        await visit({ path, kind, linkname: header.linkname ?? undefined, body: stream });
      }
      await stream.skip();
    }
    upper.absorb(changes);
    if (layerDone()) return;
  }
}
