/**
 * How log lines look, chosen by where they go (README.md "Logs and progress": logs go to stderr):
 *   pretty — a person at a terminal: colours, local time;
 *   json   — a pod, where Kubernetes log pipelines parse one JSON object per line;
 *   text   — journald and pipes (ssh, tee, cron): `LEVEL message key=value ...`, one line per event.
 * Every format renders the object pino has already redacted, so a secret never reaches any of them.
 */
import { fstatSync } from 'node:fs';
import { pino, type DestinationStream } from 'pino';
import { writeAboveLiveLine } from './progress/live-line.js';

export type LogFormat = 'json' | 'pretty' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty', 'text'];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** sd-daemon(3) priority prefixes: journald files the line under this priority (journalctl -p) */
const SYSLOG_PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/**
 * True when fd 2 is the journal stream systemd connected (JOURNAL_STREAM names its device:inode, see
 * systemd.exec(5)); a JOURNAL_STREAM inherited by a shell whose stderr is elsewhere does not count.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  try {
    const st = fstatSync(2);
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** The format when --log-format is not given. A terminal wins: someone is reading it, even in a pod. */
export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env, stderrIsTTY = Boolean(process.stderr.isTTY)): LogFormat {
  if (stderrIsTTY) return 'pretty';
  if (env.KUBERNETES_SERVICE_HOST) return 'json';
  return 'text';
}

const BARE = /^[^\s"=\\]+$/;

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return BARE.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (v && typeof v === 'object' && 'message' in v && 'type' in v) {
    // a serialised error: its message; the stack is in the JSON format and at --log-level debug
    return fieldValue((v as { message: unknown }).message);
  }
  return JSON.stringify(v);
}

/** One parsed pino record as `LEVEL message key=value ...` (no newline). */
export function formatTextLine(rec: Record<string, unknown>, o: { journald: boolean }): string {
  const { level, time, msg, pid: _pid, hostname: _host, ...fields } = rec;
  const n = typeof level === 'number' ? level : 30;
  const name = LEVEL_NAMES[n] ?? String(level);
  const message = String(msg ?? '').replace(/\r?\n/g, '\\n');
  let line = o.journald ? `<${SYSLOG_PRIORITY[n] ?? 6}>${name} ${message}` : `${name.padEnd(5)} ${message}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${fieldValue(v)}`;
  }
  // journald stamps each line itself; elsewhere (a file from tee, cron mail) the time is part of the story
  if (!o.journald && typeof time === 'number') line += ` time=${new Date(time).toISOString()}`;
  return line;
}

/**
 * The stream pino writes to: renders each JSON record in `format` and writes it synchronously to stderr
 * (the last line must reach it before the process exits), above the live progress line when one is shown.
 */
export async function logDestination(format: LogFormat, env: NodeJS.ProcessEnv = process.env): Promise<DestinationStream> {
  const sink = pino.destination({ dest: 2, sync: true });
  const emit = (line: string) => {
    if (!writeAboveLiveLine(line)) sink.write(line);
  };
  if (format === 'json') return { write: emit };
  if (format === 'pretty') {
    const { prettyFactory } = await import('pino-pretty');
    const pretty = prettyFactory({
      colorize: Boolean(process.stderr.isTTY),
      ignore: 'pid,hostname',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return { write: (s: string) => emit(pretty(s)) };
  }
  const journald = stderrIsJournal(env);
  return {
    write(s: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(s) as Record<string, unknown>;
      } catch {
        emit(s);
        return;
      }
      emit(formatTextLine(rec, { journald }) + '\n');
    },
  };
}
