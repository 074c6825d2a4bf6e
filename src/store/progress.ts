/**
 * Progress of a pull, where the user can see it:
 *   on a terminal, one live line (layer i/n, bytes, rate, ETA) that log lines are printed above (live-line.ts);
 *   elsewhere (journald, a pipe, a pod), a progress log line every ~5 s while bytes are still to come, so a long
 *   download or extraction shows it is alive without flooding the log.
 * Bytes are the compressed bytes of the layers: download and extraction are one stream, so they move together.
 */
import type { LayerProgress } from '../extract/extract-image.js';
import type { Logger } from '../log.js';
import { openLiveLine } from '../progress/live-line.js';

const MiB = 1024 * 1024;
/** how often off a terminal; often enough that a stuck pull is noticed, rare enough for journald */
export const LOG_EVERY_MS = 5000;

export interface PullFigures {
  layer: string;
  /** bytes of the whole pull so far and in all */
  received: number;
  total: number;
  /** bytes per second since the pull started */
  rate: number;
  /** seconds left at that rate; undefined before any byte arrived */
  etaSeconds: number | undefined;
}

export function pullFigures(p: LayerProgress, elapsedMs: number): PullFigures {
  const received = (p.before ?? 0) + p.received;
  const total = Math.max(p.total ?? p.size, received);
  const rate = elapsedMs > 0 ? received / (elapsedMs / 1000) : 0;
  const etaSeconds = rate > 0 ? Math.ceil((total - received) / rate) : undefined;
  return { layer: `${p.index}/${p.count}`, received, total, rate, etaSeconds };
}

function duration(s: number | undefined): string {
  if (s === undefined) return '--';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The live line: `<label>  layer 2/3  50.0/150.0 MiB  25.0 MiB/s  ETA 4s`. */
export function formatProgress(p: LayerProgress, elapsedMs: number, label = ''): string {
  const f = pullFigures(p, elapsedMs);
  const parts = [
    `layer ${f.layer}`,
    `${(f.received / MiB).toFixed(1)}/${(f.total / MiB).toFixed(1)} MiB`,
    `${(f.rate / MiB).toFixed(1)} MiB/s`,
    `ETA ${duration(f.etaSeconds)}`,
  ];
  return (label ? [label, ...parts] : parts).join('  ');
}

export interface ProgressReporter {
  update: (p: LayerProgress) => void;
  done: () => void;
}

/**
 * A reporter for one pull: the live line when `out` is a terminal, else periodic log lines on `log` (none
 * without a logger). `label` names the pull (the image reference).
 */
export function progressReporter(out: NodeJS.WriteStream | undefined, log?: Logger, label = '',
  opts: { everyMs?: number } = {}): ProgressReporter | undefined {
  const started = Date.now();
  let latest: LayerProgress | undefined;
  const live = out ? openLiveLine(out) : undefined;
  if (live) {
    let last = 0;
    return {
      update(p) {
        const now = Date.now();
        if (now - last < 100 && p.received < p.size) return;
        last = now;
        live.update(formatProgress(p, now - started, label));
      },
      done: () => live.close(),
    };
  }
  if (!log) return undefined;
  let logged: number | undefined;
  // a timer, not the data events: a pull that stalls keeps reporting (with a falling rate)
  const timer = setInterval(() => {
    if (!latest) return;
    const f = pullFigures(latest, Date.now() - started);
    if (f.received === logged && f.received >= f.total) return;
    logged = f.received;
    log.info({ image: label || undefined, ...f, rate: Math.round(f.rate) }, 'pull in progress');
  }, opts.everyMs ?? LOG_EVERY_MS);
  timer.unref();
  return {
    update(p) {
      latest = p;
    },
    done: () => clearInterval(timer),
  };
}
