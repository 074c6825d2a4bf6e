/**
 * Streams a blob while checking it against its descriptor. The last chunk is held back until the whole blob
 * has been hashed, so a consumer of a bad blob never even sees all of its bytes: the stream errors instead of
 * ending, naming the digest.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { OperationError } from '../errors.js';
import type { Descriptor } from './types.js';

export class DigestMismatchError extends OperationError {
  override name = 'DigestMismatchError';
  override readonly code = 'KMM_DIGEST_MISMATCH';
}

export function checkDigestFormat(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new OperationError(`unsupported or malformed digest '${digest}' (only sha256 is supported)`);
  return m[1]!;
}

/** sha256:<hex> of a buffer. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function* verifying(chunks: AsyncIterable<Buffer>, desc: Descriptor, what: string): AsyncGenerator<Buffer> {
  const want = checkDigestFormat(desc.digest);
  const hash = createHash('sha256');
  let size = 0;
  let held: Buffer | undefined;
  for await (const chunk of chunks) {
    size += chunk.length;
    if (size > desc.size) {
      throw new DigestMismatchError(`${what} ${desc.digest}: more bytes than the ${desc.size} its descriptor says`, { located: true });
    }
    hash.update(chunk);
    if (held) yield held;
    held = chunk;
  }
  if (size !== desc.size) {
    throw new DigestMismatchError(`${what} ${desc.digest}: got ${size} bytes, its descriptor says ${desc.size}`, { located: true });
  }
  const got = hash.digest('hex');
  if (got !== want) {
    throw new DigestMismatchError(`${what} ${desc.digest}: content does not match its digest (got sha256:${got})`, { located: true });
  }
  if (held) yield held;
}

/** A Readable of `chunks` that errors unless they are exactly the descriptor's size and sha256; `what` names the image (`image X: blob`). */
export function verifiedStream(chunks: AsyncIterable<Buffer>, desc: Descriptor, what: string): Readable {
  return Readable.from(verifying(chunks, desc, what), { objectMode: false });
}

/** Reads a small verified blob (manifest, config) whole, refusing more than `limit` bytes. */
export async function readVerified(chunks: AsyncIterable<Buffer>, desc: Descriptor, limit: number, what = 'blob')
  : Promise<Buffer> {
  if (desc.size > limit) throw new OperationError(`${what} ${desc.digest} is ${desc.size} bytes, more than ${limit} allowed`);
  const parts: Buffer[] = [];
  for await (const c of verifying(chunks, desc, what)) parts.push(c);
  return Buffer.concat(parts);
}
