/**
 * Reads a layer blob as a sequence of tar entries without touching the disk: picks the decompressor from the
 * layer's media type and streams with backpressure end to end (blob → gunzip/zstd → tar parser → consumer).
 */
import { Readable, type Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { Header } from 'tar-stream';
import { OperationError } from '../errors.js';
import { readTar } from './tar-reader.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** tar-stream's entry header (name, type, mode, size, linkname, ...). */
export type Headers = Header;

export interface LayerEntry {
  header: Header;
  /** the entry's bytes; drain it (or `resume()` it) — an undrained entry is drained when the next one is asked for */
  stream: Readable;
}

const COMPRESSION_BY_MEDIA_TYPE: Record<string, LayerCompression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

/** The compression of a layer media type; an unknown type is an OperationError naming it. */
export function layerCompression(mediaType: string): LayerCompression {
  const kind = COMPRESSION_BY_MEDIA_TYPE[mediaType];
  if (kind === undefined) throw new OperationError(`unsupported layer media type "${mediaType}"`);
  return kind;
}

function decompressor(kind: LayerCompression): Transform | undefined {
  // 256 KiB output chunks instead of zlib's 16 KiB: a quarter of the thread-pool round trips and of the tar
  // parser's calls per MiB. Measured on the 540 MiB bench image (oci: layout, tmpfs): 10-25% less wall time
  // and ~10% less CPU than 64 KiB, at the same peak RSS.
  const chunkSize = 256 * 1024;
  if (kind === 'gzip') return zlib.createGunzip({ chunkSize });
  if (kind === 'zstd') return zlib.createZstdDecompress({ chunkSize });
  return undefined;
}

function describe(kind: LayerCompression, err: unknown): Error {
  if (err instanceof OperationError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const what = kind === 'none' ? 'tar' : `tar+${kind}`;
  return new OperationError(`layer is not a valid ${what} stream: ${msg}`, { cause: err });
}

/**
 * The tar entries of one layer blob, in order. Errors of the blob (e.g. a digest mismatch), of decompression
 * and of the tar parser surface as the iterator's rejection; breaking out of the loop stops the stream.
 */
export function layerEntries(
  blob: Readable,
  mediaType: string,
  opts: { signal?: AbortSignal } = {},
): AsyncGenerator<LayerEntry, void, undefined> {
  // tar-stream's entries are streamx streams; outside consumers get a real Node Readable.
  return entriesOf(blob, mediaType, opts, (entry) => {
    const stream = Readable.from(entry, { objectMode: false, highWaterMark: 64 * 1024 });
    return { stream, drain: () => drain(stream) };
  });
}

/** An entry's bytes for the extractor: iterate it to the end exactly once, or call `skip()`. */
export interface RawEntryBody extends AsyncIterable<Buffer> {
  skip(): Promise<void>;
}

/**
 * The extractor's cheaper view: the entry body without a Node stream around it (a tar bomb of tiny files
 * pays per entry). The body must be consumed to the end or skipped before asking for the next entry.
 */
export function rawLayerEntries(
  blob: Readable,
  mediaType: string,
  opts: { signal?: AbortSignal } = {},
): AsyncGenerator<{ header: Header; stream: RawEntryBody }, void, undefined> {
  return entriesOf(blob, mediaType, opts, (entry) => {
    let state: 'new' | 'reading' | 'done' = 'new';
    const body: RawEntryBody = {
      async *[Symbol.asyncIterator]() {
        state = 'reading';
        for await (const chunk of entry) yield chunk;
        state = 'done';
      },
      async skip() {
        if (state !== 'new') return;
        state = 'reading';
        for await (const _ of entry);
        state = 'done';
      },
    };
    return { stream: body, drain: () => body.skip() };
  });
}

async function* entriesOf<S>(
  blob: Readable,
  mediaType: string,
  opts: { signal?: AbortSignal },
  wrap: (entry: AsyncIterable<Buffer>) => { stream: S; drain: () => Promise<void> },
): AsyncGenerator<{ header: Header; stream: S }, void, undefined> {
  const kind = layerCompression(mediaType);
  const signal = opts.signal;
  signal?.throwIfAborted();

  const decomp = decompressor(kind);
  const source: Readable = decomp ? blob.pipe(decomp) : blob;
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    source.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  blob.on('error', (err) => {
    // The blob's own errors (digest/size mismatch, network) are already meaningful: keep them as they are.
    failure ??= err;
    decomp?.destroy(err);
  });
  decomp?.on('error', (err) => fail(describe(kind, err)));
  const onAbort = () => fail(signal?.reason ?? new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });

  let previous: (() => Promise<void>) | undefined;
  let completed = false;
  try {
    // our own tar reader, not tar-stream: see tar-reader.ts for the differentials it closes
    const it = readTar(source);
    for (;;) {
      if (previous) await previous().catch((err) => { throw failure ?? describe(kind, err); });
      let next: IteratorResult<{ header: Header; stream: AsyncIterable<Buffer> }>;
      try {
        next = await it.next();
      } catch (err) {
        throw failure ?? describe(kind, err);
      }
      if (failure) throw failure;
      if (next.done) {
        completed = true;
        break;
      }
      const wrapped = wrap(next.value.stream);
      previous = wrapped.drain;
      yield { header: next.value.header, stream: wrapped.stream };
    }
    if (failure) throw failure;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!completed) {
      // Stopped early (break, error, abort): tear the chain down so the blob's socket/file is released.
      source.destroy();
      decomp?.destroy();
      blob.destroy();
    }
  }
}

async function drain(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return;
  stream.resume();
  await finished(stream).catch(() => undefined);
}
