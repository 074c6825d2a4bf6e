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
import { MAX_TOC_BYTES, tocEntries, type Toc } from './toc-entries.js';

/** both spellings: podman 4 writes io.containers.*, later containers/storage io.github.containers.* */
const PREFIXES = ['io.github.containers.zstd-chunked.', 'io.containers.zstd-chunked.'];
const FOOTER_SIZE = 48;
const SKIPPABLE_MAGIC = 0x184d2a50;
const FOOTER_MAGIC = Buffer.from('GnUlInUx');
export interface TocLocation {
  offset: number;
  length: number;
  uncompressedLength: number;
  /** sha256:… of the compressed TOC bytes, from the manifest */
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
  return { format: 'zstd:chunked', entries: tocEntries(doc, 'zstd:chunked', what), checksum: loc.checksum };
}

function checkFooter(footer: Buffer, loc: TocLocation, what: string): void {
  const ok = footer.readUInt32LE(0) === SKIPPABLE_MAGIC && footer.readUInt32LE(4) === FOOTER_SIZE - 8
    && Number(footer.readBigUInt64LE(8)) === loc.offset && Number(footer.readBigUInt64LE(16)) === loc.length
    && Number(footer.readBigUInt64LE(24)) === loc.uncompressedLength && footer.subarray(40).equals(FOOTER_MAGIC);
  if (!ok) throw new OperationError(`${what}: the zstd:chunked footer does not agree with the manifest's TOC position`, { located: true });
}
