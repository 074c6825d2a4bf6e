/**
 * The one live status line of a terminal (a pull's progress). Log lines are written above it: the line is
 * erased, the log line printed, and the line drawn again, so a log line never lands in the middle of it.
 * log-update does the terminal control; this module only remembers what is shown. log-update is loaded when
 * the first live line opens, not by every command (it costs more start-up time than pino itself).
 */
import type { createLogUpdate } from 'log-update';

type Render = ReturnType<typeof createLogUpdate>;

interface Shown {
  render: Render | undefined;
  text: string;
  closed: boolean;
}

let active: Shown | undefined;
let loading: Promise<typeof import('log-update')> | undefined;

export interface LiveLine {
  /** replaces the text of the line */
  update(text: string): void;
  /** erases the line; the terminal is as if it had never been shown */
  close(): void;
}

/** A live line on `stream` when it is a terminal; undefined otherwise (callers then log instead). */
export function openLiveLine(stream: NodeJS.WriteStream = process.stderr): LiveLine | undefined {
  // a terminal of no size (a pty nobody sized) would swallow every line written through log-update
  if (!stream.isTTY || !stream.rows || !stream.columns) return undefined;
  const mine: Shown = { render: undefined, text: '', closed: false };
  active = mine;
  loading ??= import('log-update');
  loading.then(
    ({ createLogUpdate }) => {
      if (mine.closed) return;
      // the cursor stays visible: hiding it would need a restore hook on every way the process can end
      mine.render = createLogUpdate(stream, { showCursor: true });
      if (mine.text) mine.render(mine.text);
    },
    () => undefined, // no live line then; the log lines still come
  );
  return {
    update(text) {
      if (mine.closed) return;
      mine.text = text;
      mine.render?.(text);
    },
    close() {
      if (mine.closed) return;
      mine.closed = true;
      if (mine.render && mine.text) mine.render.clear();
      mine.render?.done();
      if (active === mine) active = undefined;
    },
  };
}

/**
 * Writes `line` (ending in a newline) above the live line when one is shown, and returns true; returns false
 * when there is none, so the caller writes it its own way.
 */
export function writeAboveLiveLine(line: string): boolean {
  if (!active?.render || !active.text) return false;
  active.render.persist(line.replace(/\n$/, ''));
  active.render(active.text);
  return true;
}
