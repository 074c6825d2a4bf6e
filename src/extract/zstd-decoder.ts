/**
 * zstd as RFC 8878 defines it (any number of frames, skippable frames anywhere), at in-process speed for the
 * layers most tools write. Node's zlib decodes the first frame; it stops there (Node 24 ends its stream at a
 * frame's end and drops what follows). When input is left after that frame, the stream has more frames (pzstd,
 * zstd:chunked) or began with a skippable one, and the rest, from the exact byte zlib stopped at
 * (`bytesWritten`), goes through the `zstd` program. A one-frame layer (skopeo's, podman's plain zstd, buildah's)
 * therefore needs no second process and no pipe copies; figures in docs/cache.md ("The zstd decoder").
 */
import { PassThrough, Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { OperationError } from '../errors.js';
import { programDecoder, type Decoder } from './program-decoder.js';

const CHUNK = 256 * 1024;

export function zstdDecoder(): Decoder {
  const output = new PassThrough({ highWaterMark: CHUNK });
  // its reader, while there is one, gets the error through its own listener; after a teardown there is none
  output.on('error', () => undefined);
  const z = zlib.createZstdDecompress({ chunkSize: CHUNK });
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  let destroyed = false;
  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    const why = destroyed ? new OperationError('zstd decoder stopped') : err;
    settle.reject(why);
    // the reader sees the decoder's own words, not a "premature close"
    output.destroy(why instanceof Error ? why : new Error(String(why)));
  };

  const finish = () => {
    output.end();
    settle.resolve();
  };

  // input written to zlib that it may not have consumed yet, from stream offset `pendingStart`
  let pending: Buffer[] = [];
  let pendingStart = 0;
  let firstFrameOver = false;
  let inputEnded = false;
  let rest: ReturnType<typeof restDecoder> | undefined;
  let waiting: (() => void) | undefined;

  const trim = () => {
    while (pending.length > 0 && pendingStart + pending[0]!.length <= z.bytesWritten) {
      pendingStart += pending.shift()!.length;
    }
  };
  const leftover = (): Buffer => {
    trim();
    const all = Buffer.concat(pending);
    pending = [];
    return all.subarray(z.bytesWritten - pendingStart);
  };
  const startRest = (): ReturnType<typeof restDecoder> => (rest = restDecoder(output, finish, fail));
  /** the input is over: done, or the rest goes through the program */
  const lastFrames = () => {
    const more = leftover();
    if (more.length === 0) return finish();
    const r = startRest();
    r.write(more, () => undefined);
    r.end();
  };

  z.on('error', fail);
  z.pipe(output, { end: false });
  z.on('end', () => {
    firstFrameOver = true;
    // zlib would go on to read what it still holds beyond the frame, as garbage: the program decodes that part
    z.off('error', fail);
    z.on('error', () => undefined);
    z.destroy();
    if (inputEnded) lastFrames();
    const cb = waiting;
    waiting = undefined;
    cb?.();
  });

  const accept = (chunk: Buffer, cb: () => void): void => {
    if (failed) return cb();
    if (rest) return rest.write(chunk, cb);
    if (firstFrameOver) return startRest().write(Buffer.concat([leftover(), chunk]), cb);
    pending.push(chunk);
    trim();
    // The next chunk waits until zlib has decoded this one: a chunk queued inside zlib when the frame ends
    // would be decoded as a new frame and fail. When the frame ends, the 'end' handler calls back instead.
    waiting = cb;
    if (frameDecoded(z)) return; // the frame is over, its last output on its way out: this chunk stays in `pending`
    z.write(chunk, () => {
      if (waiting !== cb) return;
      waiting = undefined;
      cb();
    });
  };

  const input = new Writable({
    highWaterMark: CHUNK,
    write: (chunk: Buffer, _enc, cb) => accept(chunk, cb),
    // what arrived while zlib worked on the previous chunk goes in as one write: one thread-pool round trip
    writev: (chunks, cb) => accept(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb),
    final(cb) {
      inputEnded = true;
      if (failed) return cb();
      if (rest) rest.end();
      else if (firstFrameOver) lastFrames();
      else if (!frameDecoded(z)) z.end();
      // else: the frame is decoded and 'end' is on its way; its handler sees `inputEnded`
      cb();
    },
  });
  // a decoder that failed stops reading its input: what is still written is dropped, the failure is in `done`
  input.on('error', () => undefined);

  return {
    input,
    output,
    done,
    destroy: () => {
      destroyed = true;
      z.destroy();
      rest?.kill();
      fail(new OperationError('zstd decoder stopped'));
    },
  };
}

/**
 * Whether zlib has decoded its frame to the end: from then on its output waits to be read and 'end' comes
 * after it, but a chunk written in between would be decoded as a new frame and fail. Node has no public flag
 * for "push(null) was called"; `_readableState.ended` has been that flag since streams began.
 */
function frameDecoded(z: zlib.ZstdDecompress): boolean {
  return (z as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}

/**
 * The frames after the first, through the `zstd` program (the reference decoder), streaming through a pipe;
 * its output is appended to `output`, and `finish` is called once all of it is there.
 */
function restDecoder(output: PassThrough, finish: () => void, fail: (err: unknown) => void) {
  const program = programDecoder('zstd', ['-d', '-c', '-q']);
  if (!program) {
    fail(new OperationError('cannot read a tar+zstd layer of several frames: the zstd program is not installed (install the zstd package)'));
    return { write: (_chunk: Buffer, cb: () => void) => cb(), end: () => undefined, kill: () => undefined };
  }
  const stdin = program.input!;
  const stdout = program.output;
  stdout.pipe(output, { end: false });
  let exited = false;
  program.done.then(
    () => {
      exited = true;
      // everything the program wrote is in `output` once its stdout has ended
      if (stdout.readableEnded) finish();
      else stdout.once('end', finish);
    },
    (err: unknown) => {
      exited = true;
      fail(err);
    },
  );
  return {
    write(chunk: Buffer, cb: () => void) {
      if (exited) return cb();
      if (stdin.write(chunk)) cb();
      else stdin.once('drain', cb);
    },
    end() {
      stdin.end();
    },
    kill() {
      program.destroy();
    },
  };
}
