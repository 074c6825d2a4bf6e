/**
 * A lazy (partial) read of a `zstd:chunked` layer for a selective pull: the layer's table of contents (TOC)
 * says where every file's compressed bytes are, so only the selected files are fetched, with HTTP `Range`
 * requests (nearby ranges coalesced), instead of the whole blob.
 *
 * What is proven, in place of the blob digest and the DiffID of a full read: the TOC's sha256 equals the
 * `manifest-checksum` annotation of the (digest-verified) manifest, and every file written equals, in size and
 * sha256, the TOC's entry for it (the last bytes of a file are held back until it matched). Entries come out in
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
import { parseToc, tocLocation, type TocEntry } from '../image/lazy/zstd-chunked-toc.js';
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

interface FilePlan {
  /** compressed frames, in file order */
  frames: ByteRange[];
  size: number;
  digest?: string;
}

/**
 * Opens layer `index` for a lazy read when it can be: a zstd:chunked layer (TOC annotations) from a source that
 * honours `Range`. Otherwise says why not (`fallback`), and the caller reads the layer whole. A TOC that fails
 * its checksum is an error, not a fallback.
 */
export async function openLazyLayer(image: ResolvedImage, index: number, filter: PathFilter, what: string,
  opts: { signal?: AbortSignal; onChunk?: (bytes: number) => void } = {}): Promise<LazyOpen> {
  const desc = image.layers[index]!;
  const loc = tocLocation(desc);
  if (!loc) return { fallback: 'the layer has no zstd:chunked table of contents' };
  if (!image.openBlobRange) return { fallback: 'the image source does not read byte ranges' };
  const tocEnd = desc.size - (loc.offset + loc.length) === FOOTER ? desc.size : loc.offset + loc.length;
  const answer = await image.openBlobRange(desc, loc.offset, tocEnd, { signal: opts.signal });
  if (!answer.partial) {
    answer.cancel();
    return { fallback: 'the registry ignores Range requests' };
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of answer.chunks) {
    n += c.length;
    if (n > tocEnd - loc.offset) {
      answer.cancel();
      break;
    }
    parts.push(c);
  }
  const toc = parseToc(Buffer.concat(parts), loc, what);
  const plans = planFiles(toc.entries, filter, desc);
  if (typeof plans === 'string') return { fallback: plans };
  const ranges = [...plans.values()].map((p) => ({ start: p.frames[0]!.start, end: p.frames[p.frames.length - 1]!.end }));
  const reader = new RangeReader((s, e) => image.openBlobRange!(desc, s, e, { signal: opts.signal }),
    coalesce(ranges, GAP, MAX_REQUEST), what, opts.onChunk);
  return {
    lazy: {
      entries: lazyEntries(toc.entries, plans, reader, what),
      received: () => n + reader.received,
      requests: () => 1 + reader.requests,
      tocChecksum: toc.checksum,
      close: () => reader.close(),
    },
  };
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
    // the frames of a file: its own, then one per `chunk` entry after it
    const starts = [e.offset!];
    for (let j = i + 1; j < entries.length && entries[j]!.type === 'chunk'; j++) {
      // a hole ('zeros') has no frame to fetch: such files are not planned, the layer is read whole
      if ((entries[j]!.chunkType ?? 'data') !== 'data') return `${e.name} has chunks of type ${entries[j]!.chunkType}`;
      starts.push(entries[j]!.offset!);
    }
    const frames: ByteRange[] = [];
    for (let k = 0; k < starts.length; k++) {
      const start = starts[k]!;
      const end = k + 1 < starts.length ? starts[k + 1]! : e.endOffset!;
      if (end <= start) return `the table of contents of ${e.name} has chunks out of order`;
      frames.push({ start, end });
    }
    if (frames[0]!.start < last || e.endOffset! > desc.size) return 'the table of contents is not in blob order';
    last = e.endOffset!;
    plans.set(i, { frames, size: e.size!, digest: e.digest });
  }
  return plans;
}

async function* lazyEntries(entries: TocEntry[], plans: Map<number, FilePlan>, reader: RangeReader, what: string)
  : AsyncGenerator<{ header: Header; stream: RawEntryBody }, void, undefined> {
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
      yield { header, stream: plan ? fileBody(plan, reader, `${what}: file "${e.name}"`) : emptyBody(e, what) };
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

/** The file's bytes, frame by frame, checked against the TOC; the last frame is given only once all matched. */
function fileBody(plan: FilePlan, reader: RangeReader, what: string): RawEntryBody {
  return {
    async *[Symbol.asyncIterator]() {
      const hash = createHash('sha256');
      let size = 0;
      let held: Buffer | undefined;
      for (const f of plan.frames) {
        const parts: Buffer[] = [];
        for await (const c of reader.read(f.start, f.end)) parts.push(c);
        let out: Buffer;
        try {
          out = zlib.zstdDecompressSync(Buffer.concat(parts), { maxOutputLength: Math.max(1, plan.size - size) });
        } catch (err) {
          throw new OperationError(`${what}: its bytes do not decompress as the table of contents says: ${(err as Error).message}`, { located: true });
        }
        hash.update(out);
        size += out.length;
        if (held) yield held;
        held = out;
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (size !== plan.size || actual !== plan.digest) {
        throw new OperationError(`${what} does not match the table of contents: expected ${plan.size} bytes with ` +
          `${plan.digest}, got ${size} bytes with ${actual}`, { located: true });
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
