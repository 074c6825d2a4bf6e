/**
 * The entries of a layer's table of contents (TOC), as zstd:chunked and eStargz both write them: one JSON entry
 * per tar entry (eStargz's format, which zstd:chunked took over and extended with `endOffset`), plus one `chunk`
 * entry for each further piece of a large regular file. What a lazy read needs of an entry is checked here,
 * once, before any of it is used.
 */
import { OperationError } from '../../errors.js';

/** a TOC bigger than this (uncompressed) is refused: ~150 bytes per file, so about 400,000 files */
export const MAX_TOC_BYTES = 64 * 1024 * 1024;

export type TocFormat = 'zstd:chunked' | 'eStargz';

export interface TocEntry {
  type: 'reg' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
  name: string;
  linkName?: string;
  mode?: number;
  size?: number;
  /** sha256 of a regular file's whole content (required by zstd:chunked, optional in eStargz) */
  digest?: string;
  /** where a regular file's (or chunk's) compressed data starts in the blob */
  offset?: number;
  /** zstd:chunked: where it ends; for eStargz the reader works it out from the next offset */
  endOffset?: number;
  /** a `chunk` entry: where in the file its data goes */
  chunkOffset?: number;
  /** the uncompressed size of this piece (0 or absent: the rest of the file) */
  chunkSize?: number;
  /** sha256 of this piece's uncompressed data (required by eStargz for every piece) */
  chunkDigest?: string;
  /** later containers/storage: 'data' (a zstd frame) or 'zeros' (a hole, no bytes in the blob) */
  chunkType?: string;
}

export interface Toc {
  format: TocFormat;
  entries: TocEntry[];
  /** what proved it: the manifest annotation's sha256 of the TOC */
  checksum: string;
}

const TYPES = new Set(['reg', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const isCount = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
const isSha256 = (v: unknown) => typeof v === 'string' && /^sha256:[a-f0-9]{64}$/.test(v);

/** Checks `doc` is a version-1 TOC whose every entry a lazy read can use; throws an OperationError naming `what`. */
export function tocEntries(doc: unknown, format: TocFormat, what: string): TocEntry[] {
  const entries = (doc as { entries?: unknown } | null)?.entries;
  if ((doc as { version?: unknown } | null)?.version !== 1 || !Array.isArray(entries)) {
    throw new OperationError(`${what}: the ${format} table of contents is not version 1 with entries`, { located: true });
  }
  for (const e of entries as TocEntry[]) checkEntry(e, format, what);
  return entries as TocEntry[];
}

function checkEntry(e: TocEntry, format: TocFormat, what: string): void {
  const bad = (why: string): never => {
    throw new OperationError(`${what}: ${format} table of contents: entry ${JSON.stringify(String(e?.name)).slice(0, 200)} ${why}`, { located: true });
  };
  if (typeof e !== 'object' || e === null || !TYPES.has(e.type)) bad('has an unknown type');
  if (typeof e.name !== 'string' || e.name === '' || e.name.includes('\0')) bad('has no valid name');
  if (e.linkName !== undefined && typeof e.linkName !== 'string') bad('has a linkName that is not a string');
  for (const k of ['mode', 'size', 'offset', 'endOffset', 'chunkOffset', 'chunkSize'] as const) {
    if (!isCount(e[k])) bad(`has a ${k} that is not a count`);
  }
  for (const k of ['digest', 'chunkDigest'] as const) if (e[k] !== undefined && !isSha256(e[k])) bad(`has a ${k} that is not a sha256 digest`);
  const data = (e.type === 'reg' && (e.size ?? 0) > 0) || e.type === 'chunk';
  if (data && e.offset === undefined) bad('has no offset');
  if (format === 'zstd:chunked' && e.type === 'reg' && (e.size ?? 0) > 0) {
    if (e.digest === undefined) bad('has no sha256 digest');
    if (e.endOffset === undefined || e.endOffset <= e.offset!) bad('has no data range');
  }
  // eStargz proves each piece by its own digest (the whole-file digest is optional there)
  if (format === 'eStargz' && data && e.chunkDigest === undefined) bad('has no chunkDigest');
}
