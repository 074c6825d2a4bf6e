/**
 * Reads chosen byte ranges of one blob, in ascending order, with as few HTTP `Range` requests as is sensible:
 * ranges closer than `gap` bytes are fetched in one request (the bytes between are read and dropped), as long
 * as the request stays under `maxRequest` bytes. Each request is streamed: nothing larger than one asked-for
 * range is held in memory.
 */
import { OperationError } from '../../errors.js';

/** [start, end) in the blob */
export interface ByteRange {
  start: number;
  end: number;
}

/** The answer to one Range request: `partial` false when the source ignored the range (HTTP 200). */
export interface RangeAnswer {
  partial: boolean;
  chunks: AsyncIterable<Buffer>;
  /** releases the connection of an answer not read to its end */
  cancel(): void;
}

export type FetchRange = (start: number, end: number) => Promise<RangeAnswer>;

export class RangeIgnoredError extends OperationError {
  override name = 'RangeIgnoredError';
}

/** Groups sorted ranges into requests. */
export function coalesce(ranges: ByteRange[], gap: number, maxRequest: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r.start >= last.end && r.start - last.end <= gap && r.end - last.start <= maxRequest) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}

export class RangeReader {
  /** bytes the source sent (response bodies), for the pull's figures */
  received = 0;
  requests = 0;
  private next = 0;
  private current?: { req: ByteRange; it: AsyncIterator<Buffer>; answer: RangeAnswer; pos: number; pending?: Buffer };

  constructor(private readonly fetch: FetchRange, private readonly requestsPlan: ByteRange[], private readonly what: string,
    /** sees the size of every chunk received (the extractor's buffer reclaimer) */
    private readonly onChunk?: (bytes: number) => void) {}

  /** The bytes of [start, end): must lie inside one planned request, and come after what was read before. */
  async *read(start: number, end: number): AsyncGenerator<Buffer> {
    const cur = await this.requestFor(start, end);
    while (cur.pos < end) {
      let chunk = cur.pending;
      cur.pending = undefined;
      if (!chunk) {
        const r = await cur.it.next();
        if (r.done) throw new OperationError(`${this.what}: the registry's answer to a Range request ended at byte ${cur.pos} of ${cur.req.end}`, { located: true });
        chunk = r.value;
        this.received += chunk.length;
        this.onChunk?.(chunk.length);
      }
      const from = cur.pos;
      const to = from + chunk.length;
      if (to <= start) {
        cur.pos = to;
        continue;
      }
      const lo = Math.max(start, from) - from;
      const hi = Math.min(end, to) - from;
      if (hi < chunk.length) cur.pending = chunk.subarray(hi);
      cur.pos = from + hi;
      yield chunk.subarray(lo, hi);
    }
  }

  close(): void {
    this.current?.answer.cancel();
    this.current = undefined;
  }

  private async requestFor(start: number, end: number) {
    if (this.current && start >= this.current.pos && end <= this.current.req.end) return this.current;
    while (this.next < this.requestsPlan.length && this.requestsPlan[this.next]!.end < end) this.next++;
    const req = this.requestsPlan[this.next];
    if (!req || start < req.start) throw new Error(`range ${start}-${end} is not in the request plan`);
    this.next++;
    this.close();
    this.requests++;
    const answer = await this.fetch(req.start, req.end);
    if (!answer.partial) {
      answer.cancel();
      throw new RangeIgnoredError(`${this.what}: the registry ignored a Range request`, { located: true });
    }
    this.current = { req, it: answer.chunks[Symbol.asyncIterator](), answer, pos: req.start };
    return this.current;
  }
}
