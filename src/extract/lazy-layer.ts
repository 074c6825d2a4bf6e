/**
 * A lazy (partial) read of a `zstd:chunked` or eStargz layer for a selective pull: the layer's table of contents
 * (TOC) says where every file's compressed bytes are, so only the selected files are fetched, with HTTP `Range`
 * requests (nearby ranges coalesced), instead of the whole blob.
 *
 * What is proven, in place of the blob digest and the DiffID of a full read: the TOC's sha256 equals the
 * annotation of the (digest-verified) manifest (`manifest-checksum`, or eStargz's `toc.digest`), and every file
 * written equals, in size and sha256, the TOC's entry for it (each chunk its `chunkDigest`, the whole file its
 * `digest`; the last bytes of a file are held back until it matched). Entries come out in
 * the TOC's order as tar entries, so the extractor applies the same path safety and layer semantics as for a
 * tar stream. Not proven: that the TOC describes the same tree as the layer's tar stream (only a full read can
 * show that); see docs/cache.md.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import type { Header } from 'tar-stream';
import { OperationError } from '../errors.js';
import type { Descriptor, ResolvedImage } from '../image/types.js';
import { coalesce, RangeReader, type ByteRange } from '../image/lazy/blob-ranges.js';
import { parseToc, tocLocation } from '../image/lazy/zstd-chunked-toc.js';
import { ESTARGZ_FOOTER_SIZE, estargzTocDigest, estargzTocOffset, parseEstargzToc } from '../image/lazy/estargz-toc.js';
import { MAX_TOC_BYTES, type Toc, type TocEntry, type TocFormat } from '../image/lazy/toc-entries.js';
import { classifyEntryPath, cleanEntryPath } from './entry-path.js';
import type { RawEntryBody } from './layer-entries.js';
import type { PathFilter } from './selection.js';
import type { Logger } from '../log.js';
import { layerName } from './image-layer.js';

/** ranges closer than this are fetched in one request (the bytes between are dropped) */
const GAP = 256 * 1024;
/** one request covers at most this much of the blob, unless a single file is bigger */
const MAX_REQUEST = 32 * 1024 * 1024;
/** the footer after the TOC frame */
const FOOTER = 48;

export interface LazyLayer {
  entries: AsyncGenerator<{ header: Header; stream: RawEntryBody }, void, undefined>;
  /** compressed bytes the registry sent for this layer so far (TOC included) */
  received(): number;
  /** HTTP requests made for this layer so far */
  requests(): number;
  /** sha256 of the TOC, from the manifest */
  tocChecksum: string;
  close(): void;
}

export type LazyOpen = { lazy: LazyLayer } | { fallback: string };

const TAR_TYPES: Record<string, Header['type']> = {
  reg: 'file', dir: 'directory', symlink: 'symlink', hardlink: 'link', char: 'character-device', block: 'block-device', fifo: 'fifo',
};

/** A piece of a file in the blob: a zstd frame (zstd:chunked) or a gzip member (eStargz). */
interface Piece extends ByteRange {
  /** its uncompressed size */
  size: number;
  /** sha256 of its uncompressed bytes, when the TOC gives one */
  digest?: string;
}

interface FilePlan {
  /** compressed pieces, in file order */
  pieces: Piece[];
  size: number;
  digest?: string;
}

/**
 * Opens layer `index` for a lazy read when it can be: a zstd:chunked or eStargz layer (its TOC annotation) from a
 * source that honours `Range`. Otherwise says why not (`fallback`), and the caller reads the layer whole. A TOC
 * that fails its checksum is an error, not a fallback.
 */
export async function openLazyLayer(image: ResolvedImage, index: number, filter: PathFilter, what: string,
  opts: { signal?: AbortSignal; onChunk?: (bytes: number) => void } = {}): Promise<LazyOpen> {
  const desc = image.layers[index]!;
  if (!tocLocation(desc) && !estargzTocDigest(desc)) return { fallback: 'the layer has no zstd:chunked or eStargz table of contents' };
  if (!image.openBlobRange) return { fallback: 'the image source does not read byte ranges' };
  const fetched = { bytes: 0, requests: 0 };
  /** the blob's bytes [start, end), or undefined when the registry ignores Range */
  const fetch = async (start: number, end: number): Promise<Buffer | undefined> => {
    fetched.requests++;
    const answer = await image.openBlobRange!(desc, start, end, { signal: opts.signal });
    if (!answer.partial) {
      answer.cancel();
      return undefined;
    }
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of answer.chunks) {
      n += c.length;
      if (n > end - start) {
        answer.cancel();
        break;
      }
      parts.push(c);
    }
    fetched.bytes += n;
    return Buffer.concat(parts);
  };
  const toc = await readToc(desc, fetch, what);
  if (!toc) return { fallback: 'the registry ignores Range requests' };
  const plans = planFiles(toc.entries, filter, desc);
  if (typeof plans === 'string') return { fallback: plans };
  const ranges = [...plans.values()].map((p) => ({ start: p.pieces[0]!.start, end: p.pieces[p.pieces.length - 1]!.end }));
  const reader = new RangeReader((s, e) => image.openBlobRange!(desc, s, e, { signal: opts.signal }),
    coalesce(ranges, GAP, MAX_REQUEST), what, opts.onChunk);
  return {
    lazy: {
      entries: lazyEntries(toc, plans, reader, what),
      received: () => fetched.bytes + reader.received,
      requests: () => fetched.requests + reader.requests,
      tocChecksum: toc.checksum,
      close: () => reader.close(),
    },
  };
}

/** Fetches and proves the layer's TOC: zstd:chunked (one request) or eStargz (the footer, then the TOC). */
async function readToc(desc: Descriptor, fetch: (start: number, end: number) => Promise<Buffer | undefined>, what: string)
  : Promise<Toc | undefined> {
  const loc = tocLocation(desc);
  if (loc) {
    const tocEnd = desc.size - (loc.offset + loc.length) === FOOTER ? desc.size : loc.offset + loc.length;
    const bytes = await fetch(loc.offset, tocEnd);
    return bytes && parseToc(bytes, loc, what);
  }
  const digest = estargzTocDigest(desc)!;
  const footerStart = desc.size - ESTARGZ_FOOTER_SIZE;
  const footer = await fetch(footerStart, desc.size);
  if (!footer) return undefined;
  const tocOffset = estargzTocOffset(footer, desc.size, what);
  if (footerStart - tocOffset > MAX_TOC_BYTES) {
    throw new OperationError(`${what}: the eStargz table of contents is over ${MAX_TOC_BYTES} bytes`, { located: true });
  }
  const bytes = await fetch(tocOffset, footerStart);
  return bytes && parseEstargzToc(bytes, digest, tocOffset, what);
}

/** The files whose bytes the extractor will ask for, by TOC index; a reason to read whole when the TOC is odd. */
function planFiles(entries: TocEntry[], filter: PathFilter, desc: Descriptor): Map<number, FilePlan> | string {
  const plans = new Map<number, FilePlan>();
  let last = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.type !== 'reg' || (e.size ?? 0) === 0) continue;
    let path: string;
    try {
      const kind = classifyEntryPath(cleanEntryPath(e.name), e.name);
      if (kind.kind !== 'path') continue;
      path = kind.path;
    } catch {
      continue; // the extractor refuses the name itself, with its own message
    }
    if (filter.classify(path) !== 'inside') continue;
    // the TOC entries of a file's pieces: its own, then one per `chunk` entry after it
    const parts = [e];
    for (let j = i + 1; j < entries.length && entries[j]!.type === 'chunk'; j++) {
      // a hole ('zeros') has no frame to fetch: such files are not planned, the layer is read whole
      if ((entries[j]!.chunkType ?? 'data') !== 'data') return `${e.name} has chunks of type ${entries[j]!.chunkType}`;
      parts.push(entries[j]!);
    }
    const pieces: Piece[] = [];
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k]!;
      const start = p.offset!;
      const end = k + 1 < parts.length ? parts[k + 1]!.offset! : p.endOffset ?? e.endOffset!;
      const from = k === 0 ? 0 : p.chunkOffset ?? -1;
      const to = p.chunkSize ? from + p.chunkSize : k + 1 < parts.length ? parts[k + 1]!.chunkOffset ?? -1 : e.size!;
      if (end <= start || from < 0 || to <= from || to > e.size!) return `the table of contents of ${e.name} has chunks out of order`;
      pieces.push({ start, end, size: to - from, ...(p.chunkDigest ? { digest: p.chunkDigest } : {}) });
    }
    if (pieces[0]!.start < last || pieces[pieces.length - 1]!.end > desc.size) return 'the table of contents is not in blob order';
    last = pieces[pieces.length - 1]!.end;
    if (pieces.reduce((n, f) => n + f.size, 0) !== e.size) return `the chunks of ${e.name} do not add up to its size`;
    plans.set(i, { pieces, size: e.size!, ...(e.digest ? { digest: e.digest } : {}) });
  }
  return plans;
}

async function* lazyEntries(toc: Toc, plans: Map<number, FilePlan>, reader: RangeReader, what: string)
  : AsyncGenerator<{ header: Header; stream: RawEntryBody }, void, undefined> {
  const entries = toc.entries;
  try {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type === 'chunk') continue;
      const header: Header = {
        name: e.name,
        type: TAR_TYPES[e.type]!,
        mode: (e.mode ?? 0o644) & 0o7777,
        size: e.type === 'reg' ? e.size ?? 0 : 0,
        linkname: e.linkName ?? '',
        uid: 0, gid: 0, uname: '', gname: '', devmajor: 0, devminor: 0, mtime: new Date(0), pax: {},
      };
      const plan = plans.get(i);
      yield { header, stream: plan ? fileBody(plan, reader, toc.format, `${what}: file "${e.name}"`) : emptyBody(e, what) };
    }
  } finally {
    reader.close();
  }
}

function emptyBody(e: TocEntry, what: string): RawEntryBody {
  return {
    async *[Symbol.asyncIterator]() {
      // an empty file read anyway: its digest, when the TOC gives one, must be the empty file's
      if (e.type === 'reg' && (e.size ?? 0) === 0 && e.digest !== undefined && e.digest !== EMPTY_SHA256) {
        throw new OperationError(`${what}: file "${e.name}" does not match the digest in the table of contents`, { located: true });
      }
    },
    skip: async () => undefined,
  };
}

const EMPTY_SHA256 = `sha256:${createHash('sha256').digest('hex')}`;

/**
 * A piece's bytes. A zstd:chunked frame holds exactly the piece. An eStargz member starts with the piece but may
 * go on with the tar padding and the next entry's header (the format only fixes where members start), so only
 * the piece's own bytes are kept.
 */
function decompressPiece(bytes: Buffer, piece: Piece, format: TocFormat): Buffer {
  if (format === 'zstd:chunked') return zlib.zstdDecompressSync(bytes, { maxOutputLength: Math.max(1, piece.size) });
  return zlib.gunzipSync(bytes, { maxOutputLength: piece.size + TAR_TAIL }).subarray(0, piece.size);
}

/** what may follow a piece inside its eStargz member: padding and headers (long names, xattrs) of the next entry */
const TAR_TAIL = 1024 * 1024;

/** The file's bytes, piece by piece, checked against the TOC; the last piece is given only once all matched. */
function fileBody(plan: FilePlan, reader: RangeReader, format: TocFormat, what: string): RawEntryBody {
  return {
    async *[Symbol.asyncIterator]() {
      const hash = createHash('sha256');
      let size = 0;
      let held: Buffer | undefined;
      for (const [k, piece] of plan.pieces.entries()) {
        const parts: Buffer[] = [];
        for await (const c of reader.read(piece.start, piece.end)) parts.push(c);
        let out: Buffer;
        try {
          out = decompressPiece(Buffer.concat(parts), piece, format);
        } catch (err) {
          throw new OperationError(`${what}: its bytes do not decompress as the table of contents says: ${(err as Error).message}`, { located: true });
        }
        const pieceDigest = piece.digest && `sha256:${createHash('sha256').update(out).digest('hex')}`;
        if (out.length !== piece.size || pieceDigest !== piece.digest) {
          throw new OperationError(`${what} does not match the table of contents: chunk ${k + 1} of ${plan.pieces.length} ` +
            `should be ${piece.size} bytes${piece.digest ? ` with ${piece.digest}` : ''}, got ${out.length} bytes` +
            `${pieceDigest ? ` with ${pieceDigest}` : ''}`, { located: true });
        }
        hash.update(out);
        size += out.length;
        if (held) yield held;
        held = out;
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (size !== plan.size || (plan.digest !== undefined && actual !== plan.digest)) {
        throw new OperationError(`${what} does not match the table of contents: expected ${plan.size} bytes with ` +
          `${plan.digest ?? 'no file digest'}, got ${size} bytes with ${actual}`, { located: true });
      }
      if (held) yield held;
    },
    // a planned file the extractor does not write after all: its range is simply passed over
    skip: async () => undefined,
  };
}

/** What a lazily read layer's cache entry records in place of its DiffID check. */
export interface LazyLayerRecord {
  digest: string;
  /** the TOC's sha256 (the manifest annotation it matched) */
  toc: string;
  /** compressed bytes the registry sent for it */
  received: number;
  requests: number;
}

/**
 * extractImage's hook: the layer opened lazily, or undefined (read it whole). The first reason for reading a
 * layer whole is logged once per pull, at info.
 */
export async function lazyLayer(image: ResolvedImage, index: number, filter: PathFilter,
  opts: { log: Logger; signal?: AbortSignal; onChunk?: (bytes: number) => void }, fallbacks: Set<string>)
  : Promise<LazyLayer | undefined> {
  const what = layerName(image, index);
  const r = await openLazyLayer(image, index, filter, what, { signal: opts.signal, onChunk: opts.onChunk });
  if ('lazy' in r) return r.lazy;
  if (fallbacks.size === 0) {
    opts.log.info({ image: image.reference, layer: image.layers[index]!.digest, reason: r.fallback },
      'selective pull: reading whole layers (no lazy pull)');
  }
  fallbacks.add(r.fallback);
  return undefined;
}
