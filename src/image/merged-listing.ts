/**
 * The file list of an image's merged filesystem, built from its layers' tar headers without writing anything
 * to disk. Layers are read top-down: the first layer that names a path decides it, and whiteouts (`.wh.NAME`,
 * `.wh..wh..opq`), non-directories and directories of upper layers hide what lower layers hold at and under
 * those paths (OCI image-spec "Representing Changes").
 */
import { posix } from 'node:path';

/** An image path in canonical form: relative to the image root, no `.`/`..`/empty parts ('' = the root). */
export function canonicalPath(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

export type EntryKind = 'file' | 'directory' | 'symlink' | 'other';

/** What the layers above the one being read hide. */
export class UpperLayers {
  /** a path whose whole subtree (itself included) is hidden below */
  private readonly removed = new Set<string>();
  /** a directory whose lower contents are hidden (its own entry stays) */
  private readonly opaque = new Set<string>();
  /** a path that is a directory above: a lower non-directory there is hidden */
  private readonly dirs = new Set<string>();

  hides(path: string, kind: EntryKind): boolean {
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
  record(rawName: string, kind: EntryKind): string | undefined {
    const path = canonicalPath(rawName);
    const base = posix.basename(path);
    const parent = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    if (base === '.wh..wh..opq') {
      this.opaque.add(parent);
      return undefined;
    }
    if (base.startsWith('.wh.')) {
      this.removed.add(parent ? `${parent}/${base.slice(4)}` : base.slice(4));
      return undefined;
    }
    if (kind === 'directory') this.dirs.add(path);
    else this.removed.add(path);
    return path;
  }
}

export function entryKind(type: string | null | undefined): EntryKind {
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
