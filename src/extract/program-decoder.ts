/**
 * A decompressor program (`zstd -d -c`) as a streaming stage: bytes go to its stdin, the uncompressed stream
 * comes from its stdout. Every byte crosses two pipes, which in a whole pull costs more than decoding in the
 * process: zstd uses the program only for what Node cannot decode, and gzip not at all (igzip, 3x faster than
 * zlib at inflating alone, made a whole gzip pull 16% slower: docs/cache.md, "The zstd decoder").
 */
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { OperationError } from '../errors.js';

/**
 * The decompression stage of one layer: bytes go into `input`, the uncompressed stream comes out of `output`,
 * and `done` settles when the decoder has finished (rejecting with the decoder's own words when the data is bad).
 */
export interface Decoder {
  /** undefined: nothing to write to (no decoder) */
  input: NodeJS.WritableStream | undefined;
  output: Readable;
  done: Promise<void>;
  destroy(): void;
}

/** undefined when the program cannot be started (not on PATH). */
export function programDecoder(program: string, args: string[]): Decoder | undefined {
  const child = execa(program, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
    encoding: 'buffer',
    stripFinalNewline: true,
  });
  if (child.pid === undefined) {
    // execa's own verdict (ENOENT) is the caller's business
    child.catch(() => undefined);
    return undefined;
  }
  const input = child.stdin!;
  const output = child.stdout!;
  // a decoder that quits early (bad data) closes its stdin: the EPIPE is reported through the exit status
  input.on('error', () => undefined);
  output.on('error', () => undefined);
  let destroyed = false;
  const done = child.then(
    () => undefined,
    (err: { stderr?: Uint8Array; exitCode?: number; signal?: string; shortMessage?: string }) => {
      if (destroyed) throw new OperationError(`${program} decoder stopped`);
      const said = Buffer.from(err.stderr ?? []).toString('utf8').trim().split('\n').pop()
        ?.replace(new RegExp(`^${program}: (\\/\\*stdin\\*\\\\: )?`), '');
      throw new Error(said || err.shortMessage || `${program} exited with ${err.exitCode ?? err.signal}`);
    },
  );
  done.catch(() => undefined);
  return {
    input,
    output,
    done,
    destroy: () => {
      destroyed = true;
      child.kill();
      output.destroy();
    },
  };
}
