/**
 * The table of contents (TOC) of a `zstd:chunked` layer (containers/storage, podman push --compression-format
 * zstd:chunked): where it is, reading it, and proving it. The TOC is a zstd frame near the end of the blob
 * holding JSON, one entry per tar entry, with the compressed byte range and sha256 of every regular file.
 * Trust chain: the manifest (verified against its digest) carries the TOC's position and sha256 in the layer
 * descriptor's annotations; the TOC bytes must hash to that sha256; each file must then hash to the TOC's digest.
 * The blob ends with a 48-byte skippable frame (the footer) repeating the position: it must agree.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { OperationError } from '../../errors.js';
import type { Descriptor } from '../types.js';

/** both spellings: podman 4 writes io.containers.*, later containers/storage io.github.containers.* */
const PREFIXES = ['io.github.containers.zstd-chunked.', 'io.containers.zstd-chunked.'];
const FOOTER_SIZE = 48;
const SKIPPABLE_MAGIC = 0x184d2a50;
const FOOTER_MAGIC = Buffer.from('GnUlInUx');
/** a TOC bigger than this (uncompressed) is refused: ~150 bytes per file, so about 400,000 files */
export const MAX_TOC_BYTES = 64 * 1024 * 1024;

export interface TocLocation {
  offset: number;
  length: number;
  uncompressedLength: number;
  /** sha256:… of the compressed TOC bytes, from the manifest */
  checksum: string;
}

export interface TocEntry {
  type: 'reg' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
  name: string;
  linkName?: string;
  mode?: number;
  size?: number;
  digest?: string;
  /** compressed range of a regular file's data in the blob: [offset, endOffset) */
  offset?: number;
  endOffset?: number;
  /** a `chunk` entry: where in the file its frame's data goes */
  chunkOffset?: number;
  chunkSize?: number;
  /** later containers/storage: 'data' (a zstd frame) or 'zeros' (a hole, no bytes in the blob) */
  chunkType?: string;
}

export interface Toc {
  entries: TocEntry[];
  /** what proved it: the manifest annotation's sha256 of the TOC */
  checksum: string;
}

/** The TOC's place and checksum from a layer descriptor; undefined when the layer is not zstd:chunked. */
export function tocLocation(desc: Descriptor): TocLocation | undefined {
  if (!desc.mediaType.endsWith('+zstd')) return undefined;
  const a = desc.annotations ?? {};
  for (const p of PREFIXES) {
    const position = a[`${p}manifest-position`];
    const checksum = a[`${p}manifest-checksum`];
    if (position === undefined || checksum === undefined) continue;
    const m = /^(\d+):(\d+):(\d+):1$/.exec(position);
    if (!m || !/^sha256:[a-f0-9]{64}$/.test(checksum)) return undefined;
    const [offset, length, uncompressedLength] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (!Number.isSafeInteger(offset + length) || length === 0 || offset + length > desc.size) return undefined;
    if (uncompressedLength > MAX_TOC_BYTES) return undefined;
    return { offset, length, uncompressedLength, checksum };
  }
  return undefined;
}

/**
 * Proves and parses the TOC. `bytes` are the blob from `loc.offset` to its end: the TOC frame, then the footer.
 * Throws an OperationError (naming `what`) when the checksum, the footer or the JSON is wrong.
 */
export function parseToc(bytes: Buffer, loc: TocLocation, what: string): Toc {
  const raw = bytes.subarray(0, loc.length);
  const actual = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  if (raw.length !== loc.length || actual !== loc.checksum) {
    throw new OperationError(`${what}: the zstd:chunked table of contents does not match its checksum in the manifest ` +
      `(expected ${loc.checksum}, got ${actual})`, { located: true });
  }
  const footer = bytes.subarray(loc.length);
  if (footer.length === FOOTER_SIZE) checkFooter(footer, loc, what);
  let json: Buffer;
  try {
    json = zlib.zstdDecompressSync(raw, { maxOutputLength: MAX_TOC_BYTES });
  } catch (err) {
    throw new OperationError(`${what}: the zstd:chunked table of contents does not decompress: ${(err as Error).message}`, { located: true });
  }
  if (json.length !== loc.uncompressedLength) {
    throw new OperationError(`${what}: the zstd:chunked table of contents is ${json.length} bytes, the manifest says ${loc.uncompressedLength}`, { located: true });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new OperationError(`${what}: the zstd:chunked table of contents is not JSON: ${(err as Error).message}`, { located: true });
  }
  const entries = (doc as { entries?: unknown }).entries;
  if ((doc as { version?: unknown }).version !== 1 || !Array.isArray(entries)) {
    throw new OperationError(`${what}: the zstd:chunked table of contents is not version 1 with entries`, { located: true });
  }
  for (const e of entries as TocEntry[]) checkEntry(e, what);
  return { entries: entries as TocEntry[], checksum: loc.checksum };
}

function checkFooter(footer: Buffer, loc: TocLocation, what: string): void {
  const ok = footer.readUInt32LE(0) === SKIPPABLE_MAGIC && footer.readUInt32LE(4) === FOOTER_SIZE - 8
    && Number(footer.readBigUInt64LE(8)) === loc.offset && Number(footer.readBigUInt64LE(16)) === loc.length
    && Number(footer.readBigUInt64LE(24)) === loc.uncompressedLength && footer.subarray(40).equals(FOOTER_MAGIC);
  if (!ok) throw new OperationError(`${what}: the zstd:chunked footer does not agree with the manifest's TOC position`, { located: true });
}

const TYPES = new Set(['reg', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const isCount = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);

function checkEntry(e: TocEntry, what: string): void {
  const bad = (why: string): never => {
    throw new OperationError(`${what}: zstd:chunked table of contents: entry ${JSON.stringify(String(e?.name)).slice(0, 200)} ${why}`, { located: true });
  };
  if (typeof e !== 'object' || e === null || !TYPES.has(e.type)) bad('has an unknown type');
  if (typeof e.name !== 'string' || e.name === '' || e.name.includes('\0')) bad('has no valid name');
  if (e.linkName !== undefined && typeof e.linkName !== 'string') bad('has a linkName that is not a string');
  for (const k of ['mode', 'size', 'offset', 'endOffset', 'chunkOffset', 'chunkSize'] as const) {
    if (!isCount(e[k])) bad(`has a ${k} that is not a count`);
  }
  if (e.type === 'reg' && (e.size ?? 0) > 0) {
    if (typeof e.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(e.digest)) bad('has no sha256 digest');
    if (e.offset === undefined || e.endOffset === undefined || e.endOffset <= e.offset) bad('has no data range');
  }
  if (e.type === 'chunk' && e.offset === undefined) bad('has no offset');
}
