/**
 * Reads a layer blob as a sequence of tar entries without touching the disk: picks the decompressor from the
 * layer's media type and streams with backpressure end to end (blob → gunzip/zstd → tar parser → consumer).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { Header } from 'tar-stream';
import { OperationError, errorMessage, withContext } from '../errors.js';
import { readTar } from './tar-reader.js';
import type { Decoder } from './program-decoder.js';
import { zstdDecoder } from './zstd-decoder.js';

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

function zlibDecoder(kind: 'gzip'): Decoder {
  // 256 KiB output chunks instead of zlib's 16 KiB: a quarter of the thread-pool round trips and of the tar
  // parser's calls per MiB. Measured on the 540 MiB bench image (oci: layout, tmpfs): 10-25% less wall time
  // and ~10% less CPU than 64 KiB, at the same peak RSS. Node's gunzip reads every member of a multi-member
  // gzip (pigz, estargz).
  const z = zlib.createGunzip({ chunkSize: 256 * 1024 });
  return described(kind, { input: z, output: z, done: finished(z, { writable: false }), destroy: () => z.destroy() });
}

/** The decoder's failures as `layer is not a valid tar+<kind> stream: <its words>`. */
function described(kind: LayerCompression, d: Decoder): Decoder {
  const done = d.done.catch((err: unknown) => {
    throw describe(kind, err);
  });
  done.catch(() => undefined);
  return { ...d, done };
}

function plainDecoder(blob: Readable): Decoder {
  return { input: undefined, output: blob, done: Promise.resolve(), destroy: () => undefined };
}

function describe(kind: LayerCompression, err: unknown): Error {
  if (err instanceof OperationError) return err;
  const msg = errorMessage(err);
  const what = kind === 'none' ? 'tar' : `tar+${kind}`;
  return new OperationError(`layer is not a valid ${what} stream: ${msg}`, { cause: err });
}

export class DiffIdMismatchError extends OperationError {
  override name = 'DiffIdMismatchError';
  override readonly code = 'KMM_DIFFID_MISMATCH';
}

export interface LayerReadOptions {
  signal?: AbortSignal;
  /**
   * the config's `rootfs.diff_ids[i]`: the sha256 of the whole uncompressed stream must equal it, or the
   * iterator rejects at its end instead of finishing
   */
  diffId?: string;
  /** how failures name the layer, e.g. `image quay.io/x:1: layer sha256:...` */
  what?: string;
}

/**
 * The tar entries of one layer blob, in order. Errors of the blob (e.g. a digest mismatch), of decompression,
 * of the tar parser and of the DiffID check surface as the iterator's rejection, the blob's own verdict first;
 * breaking out of the loop stops the stream. The iterator finishes only once the whole uncompressed stream
 * has been read and (with `diffId`) matched its DiffID, and the blob has ended verified.
 */
export function layerEntries(
  blob: Readable,
  mediaType: string,
  opts: LayerReadOptions = {},
): AsyncGenerator<LayerEntry, void, undefined> {
  // tar-stream's entries are streamx streams; outside consumers get a real Node Readable.
  return entriesOf(blob, mediaType, opts, (entry) => {
    const stream = Readable.from(entry, { objectMode: false, highWaterMark: 64 * 1024 });
    return {
      stream,
      drain: () => drain(stream),
      // the chain is torn down under an entry nobody reads any more: its error has no one to go to
      dispose: () => {
        stream.on('error', () => undefined);
        stream.destroy();
      },
    };
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
  opts: LayerReadOptions = {},
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
    return { stream: body, drain: () => body.skip(), dispose: () => undefined };
  });
}

/** The blob's own errors (digest, size, network) already name the image and the blob: they stay as they are. */
function named(err: unknown, what: string | undefined): unknown {
  if (!what || !(err instanceof OperationError) || err.located) return err;
  return withContext(err, what, { located: true });
}

async function* entriesOf<S>(
  blob: Readable,
  mediaType: string,
  opts: LayerReadOptions,
  wrap: (entry: AsyncIterable<Buffer>) => { stream: S; drain: () => Promise<void>; dispose: () => void },
): AsyncGenerator<{ header: Header; stream: S }, void, undefined> {
  const kind = layerCompression(mediaType);
  const signal = opts.signal;
  signal?.throwIfAborted();

  const decoder = kind === 'gzip' ? zlibDecoder(kind) : kind === 'zstd' ? described('zstd', zstdDecoder()) : plainDecoder(blob);
  const source = decoder.output;
  // The DiffID covers every uncompressed byte, the padding after the tar's end-of-archive marker included
  // (the tar reader drains the stream past the marker through this same iterable).
  const diff = createHash('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      diff.update(chunk);
      yield chunk;
    }
  }
  let blobError: unknown;
  let failure: unknown;
  let blobEnded = false;
  const fail = (err: unknown) => {
    failure ??= err;
    source.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  blob.on('error', (err) => {
    blobError ??= err;
    // the blob's error first: the readers downstream must see it, not the "premature close" of a torn-down decoder
    fail(err);
    decoder.destroy();
  });
  blob.on('end', () => (blobEnded = true));
  if (decoder.input) blob.pipe(decoder.input);
  decoder.done.catch((err: unknown) => fail(err));
  const onAbort = () => fail(signal?.reason ?? new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });

  /**
   * After a decoding or parsing failure, the rest of the blob is read (its size is bounded by the descriptor)
   * to learn the digest's verdict: a corrupted blob is reported as one, not as the garbage it decodes to.
   */
  const blobVerdict = async (): Promise<unknown> => {
    if (blobError || blobEnded || blob.destroyed || signal?.aborted) return blobError;
    if (decoder.input) blob.unpipe(decoder.input);
    blob.resume();
    // an interrupted pull does not wait for the rest of a stalled blob
    await finished(blob, signal ? { signal } : {}).catch(() => undefined);
    return blobError;
  };

  let previous: (() => Promise<void>) | undefined;
  let current: (() => void) | undefined;
  let completed = false;
  try {
    // our own tar reader, not tar-stream: see tar-reader.ts for the differentials it closes
    const it = readTar(hashed());
    for (;;) {
      if (previous) await previous().catch((err) => { throw failure ?? describe(kind, err); });
      let next: IteratorResult<{ header: Header; stream: AsyncIterable<Buffer> }>;
      try {
        next = await it.next();
      } catch (err) {
        throw failure ?? describe(kind, err);
      }
      if (failure) throw failure;
      if (next.done) break;
      const wrapped = wrap(next.value.stream);
      previous = wrapped.drain;
      current = wrapped.dispose;
      yield { header: next.value.header, stream: wrapped.stream };
    }
    current = undefined;
    // the tar reader has read the stream to its end; the decoder and the blob must end cleanly too
    await Promise.all([decoder.done.catch(fail), finished(blob).catch(fail)]);
    if (failure) throw failure;
    const actual = `sha256:${diff.digest('hex')}`;
    if (opts.diffId !== undefined && actual !== opts.diffId) {
      throw new DiffIdMismatchError(
        `uncompressed content does not match the DiffID of the image config: expected ${opts.diffId}, got ${actual}`,
      );
    }
    completed = true;
  } catch (err) {
    if (signal?.aborted) throw signal.reason ?? err;
    current?.();
    current = undefined;
    const verdict = await blobVerdict();
    if (signal?.aborted) throw signal.reason ?? err;
    throw named(verdict ?? err, opts.what);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!completed) {
      // Stopped early (break, error, abort): tear the chain down so the blob's socket/file is released.
      current?.();
      source.destroy();
      decoder.destroy();
      blob.destroy();
    }
  }
}

async function drain(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return;
  stream.resume();
  await finished(stream).catch(() => undefined);
}
