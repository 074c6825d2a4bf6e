/**
 * The one live status line of a terminal (a pull's progress). Log lines are written above it: the line is
 * erased, the log line printed, and the line drawn again, so a log line never lands in the middle of it.
 * log-update does the terminal control; this module only remembers what is shown.
 */
import { createLogUpdate } from 'log-update';

type Render = ReturnType<typeof createLogUpdate>;

let active: { render: Render; text: string } | undefined;

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
  // the cursor stays visible: hiding it would need a restore hook on every way the process can end
  const render = createLogUpdate(stream, { showCursor: true });
  const mine = { render, text: '' };
  active = mine;
  return {
    update(text) {
      if (active !== mine) return;
      mine.text = text;
      render(text);
    },
    close() {
      if (active !== mine) return;
      if (mine.text) render.clear();
      render.done();
      active = undefined;
    },
  };
}

/**
 * Writes `line` (ending in a newline) above the live line when one is shown, and returns true; returns false
 * when there is none, so the caller writes it its own way.
 */
export function writeAboveLiveLine(line: string): boolean {
  if (!active || !active.text) return false;
  active.render.persist(line.replace(/\n$/, ''));
  active.render(active.text);
  return true;
}
