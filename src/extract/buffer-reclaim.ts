/**
 * Keeps the agent inside a worker pod's 128 MiB limit while hundreds of MiB stream through it.
 *
 * Every chunk of a layer (socket read, gunzip output, tar body) is a fresh Buffer whose memory lives outside
 * the V8 heap. The small JS handles of those buffers fill the young generation so slowly that scavenges are
 * rare, and tens of MiB of dead chunks wait for the next collection (measured: ~40 MiB of dead ArrayBuffers
 * at peak on a gzip pull). A young-generation collection every few MiB streamed frees them while they are
 * young; it costs well under a millisecond each. A chunk that waits in a queue (the decoder's input, the
 * stream between decoder and tar parser) across two of them is promoted to the old generation, where only a full
 * collection frees it: one every 64 MiB (a few ms on the agent's ~15 MiB heap) took the live ArrayBuffers of a
 * zstd pull from 16 to 7 MiB and its peak RSS from 103-105 to 94-96 MiB. Without a `gc` handle this is a no-op.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFn = (opts?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => void;

let gc: GcFn | undefined | null = null;

function handle(): GcFn | undefined {
  if (gc === null) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as GcFn;
    } catch {
      gc = undefined;
    }
  }
  return gc;
}

export interface BufferReclaimer {
  /** a chunk of `bytes` was streamed */
  streamed(bytes: number): void;
  /** a tar entry was read */
  entry(): void;
}

/**
 * Collects young garbage every `everyBytes` streamed, and all garbage every `fullEveryBytes` streamed or every
 * `fullEveryEntries` tar entries. Per entry, the tar reader, the extractor and their promises leave objects that
 * live across an await or two and so reach the old generation: a layer of 10^5 empty files grew the heap to
 * 41 MiB and the peak RSS to 121-124 MiB (tmpfs, where files are made fastest). A full collection every 5,000
 * entries held it at 88-91 MiB, for 0.1-0.2 s more on that layer (2,000: 85 MiB, 1 s more; 10,000: 101 MiB).
 */
export function bufferReclaimer(everyBytes = 8 * 1024 * 1024, fullEveryBytes = 64 * 1024 * 1024, fullEveryEntries = 5000)
  : BufferReclaimer {
  const collect = handle();
  if (!collect) return { streamed: () => undefined, entry: () => undefined };
  let since = 0;
  let sinceFull = 0;
  let entries = 0;
  const full = () => {
    sinceFull = 0;
    entries = 0;
    collect({ type: 'major' });
  };
  return {
    streamed(bytes) {
      since += bytes;
      if (since < everyBytes) return;
      sinceFull += since;
      since = 0;
      if (sinceFull >= fullEveryBytes) full();
      else collect({ type: 'minor' });
    },
    entry() {
      if (++entries >= fullEveryEntries) full();
    },
  };
}
