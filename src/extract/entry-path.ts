/**
 * Layer entry names → paths relative to the extraction root. Every name is checked here, once, so the writer
 * never sees `..`, and whiteout markers are recognised in one place.
 */
import { OperationError } from '../errors.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/**
 * The entry's path relative to the root ('' = the root itself). A leading `/` or `./` is dropped (absolute
 * names land inside the root, as in docker and containerd); any `..` component is refused outright, because
 * no honest image needs one.
 */
export function cleanEntryPath(name: string, what = 'entry'): string {
  const parts: string[] = [];
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') throw new OperationError(`${what} "${name}" climbs out of the image root with ".."`);
    parts.push(seg);
  }
  return parts.join('/');
}

export type ClassifiedEntry =
  | { kind: 'opaque'; dir: string }
  | { kind: 'whiteout'; target: string }
  | { kind: 'ignore' }
  | { kind: 'path'; path: string };

/** Recognises `.wh.NAME` (delete NAME from lower layers) and `.wh..wh..opq` (hide the dir's lower contents). */
export function classifyEntryPath(path: string, name: string): ClassifiedEntry {
  const slash = path.lastIndexOf('/');
  const base = path.slice(slash + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'path', path };
  const dir = slash < 0 ? '' : path.slice(0, slash);
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir };
  // Other `.wh..wh.*` names are aufs bookkeeping (hardlink dirs), never content.
  if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return { kind: 'ignore' };
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim === '' || victim === '.' || victim === '..') {
    throw new OperationError(`whiteout "${name}" names no file inside its directory`);
  }
  return { kind: 'whiteout', target: dir === '' ? victim : `${dir}/${victim}` };
}

/** True when `path` is `prefix` or below it (both relative, cleaned). */
export function isWithin(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(prefix + '/');
}
