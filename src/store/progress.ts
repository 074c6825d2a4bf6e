/**
 * A one-line progress display for long pulls on a terminal: layer, bytes, rate. Off a terminal the extractor's
 * per-layer log line is the whole story.
 */
import type { LayerProgress } from '../extract/extract-image.js';

const MiB = 1024 * 1024;

export function formatProgress(p: LayerProgress, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? p.received / MiB / (elapsedMs / 1000) : 0;
  return `layer ${p.index}/${p.count} ${p.digest.slice(7, 19)}  ${(p.received / MiB).toFixed(1)}/${(p.size / MiB).toFixed(1)} MiB  ${rate.toFixed(1)} MiB/s`;
}

export function progressReporter(out: NodeJS.WriteStream | undefined): { update: (p: LayerProgress) => void; done: () => void } | undefined {
  if (!out?.isTTY) return undefined;
  let layerStart = Date.now();
  let layer = 0;
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (p.index !== layer) {
        layer = p.index;
        layerStart = now;
      }
      if (now - last < 100 && p.received < p.size) return;
      last = now;
      shown = true;
      out.write(`\r\x1b[K${formatProgress(p, now - layerStart)}`);
    },
    done() {
      if (shown) out.write('\r\x1b[K');
    },
  };
}
