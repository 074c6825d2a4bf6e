/**
 * The table of contents (TOC) of an eStargz layer (stargz-snapshotter's `ctr-remote images convert --estargz`):
 * a tar+gzip blob in which every regular file's data (or each chunk of a large one) starts a gzip member of its
 * own, whose last tar entry is `stargz.index.json` (the TOC), and which ends with a 51-byte footer, an empty
 * gzip member whose extra field holds the TOC's offset. Trust chain: the manifest (verified against its digest)
 * carries the sha256 of the TOC's JSON in the layer descriptor's `containerd.io/snapshot/stargz/toc.digest`
 * annotation; the JSON must hash to it; each piece of a file must then hash to its `chunkDigest`.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { OperationError } from '../../errors.js';
import type { Descriptor } from '../types.js';
import { MAX_TOC_BYTES, tocEntries, type Toc } from './toc-entries.js';

const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';
export const ESTARGZ_FOOTER_SIZE = 51;
const TOC_NAME = 'stargz.index.json';
const EMPTY_MEMBER_END = Buffer.from([1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
const TAR_BLOCK = 512;

/** The TOC's sha256 from a layer descriptor; undefined when the layer is not eStargz. */
export function estargzTocDigest(desc: Descriptor): string | undefined {
  const digest = desc.annotations?.[TOC_DIGEST];
  if (!desc.mediaType.endsWith('+gzip') || digest === undefined || !/^sha256:[a-f0-9]{64}$/.test(digest)) return undefined;
  return desc.size > ESTARGZ_FOOTER_SIZE ? digest : undefined;
}

/**
 * The TOC's offset from the footer (the blob's last 51 bytes): a gzip header with an extra field made of the
 * subfield `SG`, 22 bytes long, holding `%016xSTARGZ`. Throws when the footer is not that, or points outside.
 */
export function estargzTocOffset(footer: Buffer, blobSize: number, what: string): number {
  const bad = (): never => {
    throw new OperationError(`${what}: the eStargz footer is not valid (the manifest's toc.digest annotation says the layer is eStargz)`, { located: true });
  };
  const FEXTRA = 4;
  if (footer.length !== ESTARGZ_FOOTER_SIZE || footer[0] !== 0x1f || footer[1] !== 0x8b || footer[2] !== 8) bad();
  if ((footer[3]! & FEXTRA) === 0 || footer.readUInt16LE(10) !== 26) bad();
  if (footer.toString('latin1', 12, 14) !== 'SG' || footer.readUInt16LE(14) !== 22) bad();
  const m = /^([0-9a-f]{16})STARGZ$/.exec(footer.toString('latin1', 16, 38));
  // then an empty stored block and the empty member's CRC-32 and size, all zero
  if (!m || !footer.subarray(38).equals(EMPTY_MEMBER_END)) bad();
  const offset = Number.parseInt(m![1]!, 16);
  if (!Number.isSafeInteger(offset) || offset >= blobSize - ESTARGZ_FOOTER_SIZE) bad();
  return offset;
}

/**
 * Proves and parses the TOC. `bytes` are the blob from the TOC's offset to the footer: a gzip member holding the
 * tar entry `stargz.index.json`. Throws an OperationError (naming `what`) when the digest or the JSON is wrong.
 * Each data entry gets `endOffset`: where the next piece's data starts (the TOC's offset for the last one).
 */
export function parseEstargzToc(bytes: Buffer, tocDigest: string, tocOffset: number, what: string): Toc {
  const fail = (why: string): never => {
    throw new OperationError(`${what}: the eStargz table of contents ${why}`, { located: true });
  };
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(bytes, { maxOutputLength: MAX_TOC_BYTES + 4 * TAR_BLOCK });
  } catch (err) {
    return fail(`does not decompress: ${(err as Error).message}`);
  }
  const name = tar.toString('utf8', 0, 100).replace(/\0.*$/s, '');
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/[\0 ]+$/, ''), 8);
  const type = tar.toString('latin1', 156, 157);
  if (tar.length < TAR_BLOCK || name !== TOC_NAME || !(type === '0' || type === '\0') || !Number.isSafeInteger(size)
    || TAR_BLOCK + size > tar.length) {
    fail(`is not a tar entry named ${TOC_NAME} at offset ${tocOffset}`);
  }
  const json = tar.subarray(TAR_BLOCK, TAR_BLOCK + size);
  const actual = `sha256:${createHash('sha256').update(json).digest('hex')}`;
  if (actual !== tocDigest) fail(`does not match its digest in the manifest (expected ${tocDigest}, got ${actual})`);
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    return fail(`is not JSON: ${(err as Error).message}`);
  }
  const entries = tocEntries(doc, 'eStargz', what);
  // data pieces follow each other in the blob: each ends where the next begins, the last where the TOC does
  let next = tocOffset;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.offset === undefined || !(e.type === 'chunk' || (e.type === 'reg' && (e.size ?? 0) > 0))) continue;
    if (e.offset >= next) fail(`lists the data of ${JSON.stringify(e.name).slice(0, 200)} out of blob order`);
    e.endOffset = next;
    next = e.offset;
  }
  return { format: 'eStargz', entries, checksum: tocDigest };
}
