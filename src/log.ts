import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'pretty';

export interface LogOptions {
  level?: string;
  format?: LogFormat;
  /** where lines go; stderr by default (stdout is for machine output) */
  destination?: DestinationStream;
}

/**
 * Field names whose values are secrets. pino replaces them before serialisation, so a secret handed to
 * the logger by mistake still never reaches a log line.
 */
const REDACT = [
  'password',
  'auth',
  'token',
  'authorization',
  'identitytoken',
  '*.password',
  '*.auth',
  '*.token',
  '*.authorization',
  '*.identitytoken',
  '*.headers.authorization',
];

/**
 * JSON lines to stderr by default; pretty on a TTY or when asked. pino-pretty is loaded only when used and
 * runs in-process (no transport worker), which keeps start-up cheap and lets the last line reach stderr
 * before the process exits.
 */
export async function createLogger(opts: LogOptions = {}): Promise<Logger> {
  const level = opts.level ?? 'info';
  const format = opts.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  if (opts.destination) return pino(base, opts.destination);
  if (format === 'pretty') {
    const { default: pretty } = await import('pino-pretty');
    const stream = pretty({
      destination: 2,
      sync: true,
      colorize: process.stderr.isTTY,
      ignore: 'pid,hostname',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino(base, stream);
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything; for library callers and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
