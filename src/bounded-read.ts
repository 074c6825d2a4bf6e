/**
 * Reading the documents a user or an image hands us (configs, auth files, layout index and blobs) without
 * letting the file decide how long we wait or how much memory we take:
 * - only regular files are read: the open uses O_NONBLOCK, so a FIFO does not block the process (and a
 *   thread of the pool) until a writer appears, and fstat then refuses FIFOs, devices (/dev/urandom),
 *   sockets and directories;
 * - at most `maxBytes` are read: a larger file is refused without being read whole;
 * - JSON nesting is bounded before parsing, so a hostile document cannot exhaust the stack.
 */
import { constants, open, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';

export const MiB = 1024 * 1024;
/** ModuleConfig, Module and PreflightValidation files */
export const MAX_CONFIG_BYTES = 1 * MiB;
/** an OCI layout's oci-layout/index.json, an auth file (the same bound as registry manifests) */
export const MAX_INDEX_BYTES = 4 * MiB;
/** nesting of JSON arrays/objects: real manifests and configs stay below 10 */
export const MAX_JSON_DEPTH = 64;

/** An error with a Node-style `code`, so callers that switch on `code` keep working. */
export class FileRefusedError extends Error {
  constructor(
    message: string,
    readonly code: 'ENOTREG' | 'EFBIG' | 'EDEPTH',
  ) {
    super(message);
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Opens `path` for reading if it is a regular file (symlinks are followed); never blocks on a FIFO. */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new FileRefusedError(`is ${kindOf(st)}, not a regular file`, 'ENOTREG');
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** The bytes of a regular file of at most `maxBytes`; anything else is a FileRefusedError (or the open's error). */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const fh = await openRegularFile(path);
  try {
    const st = await fh.stat();
    if (st.size > maxBytes) throw tooLarge(maxBytes);
    // the size may grow between stat and read: read one byte more than allowed to notice
    const buf = Buffer.alloc(Math.min(maxBytes + 1, st.size + 1));
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        if (got > maxBytes) throw tooLarge(maxBytes);
        break;
      }
      const { bytesRead } = await fh.read(buf, got, buf.length - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

function tooLarge(maxBytes: number): FileRefusedError {
  return new FileRefusedError(`is larger than the ${formatBytes(maxBytes)} allowed`, 'EFBIG');
}

function formatBytes(n: number): string {
  return n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

/**
 * The deepest nesting of arrays and objects in JSON `text`, stopping early once past `limit`: the one scanner
 * behind every JSON bound (files here, registry documents in image/bounded-json.ts, image documents in
 * image/manifest.ts). V8's JSON.parse copes with deep nesting, but whatever walks the result recursively
 * (JSON.stringify in a log line, a structured clone) then overflows its stack far from the cause.
 */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++; // skip the escaped character
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return max;
}

/** Throws a FileRefusedError when arrays/objects in JSON `text` nest deeper than `max`. */
export function checkJsonDepth(text: string, max = MAX_JSON_DEPTH): void {
  if (jsonDepth(text, max) > max) throw new FileRefusedError(`nests arrays/objects deeper than ${max} levels`, 'EDEPTH');
}

/** JSON.parse with bounded nesting. */
export function parseBoundedJson(text: string): unknown {
  checkJsonDepth(text);
  return JSON.parse(text);
}
