import { pino, type Logger, type DestinationStream } from 'pino';
import { defaultLogFormat, logDestination, type LogFormat } from './log-format.js';

export type { Logger, LogFormat };

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
 * Lines to stderr in the format chosen by context (see log-format.ts) unless one is asked for. pino-pretty is
 * loaded only when used and runs in-process (no transport worker), which keeps start-up cheap and lets the
 * last line reach stderr before the process exits.
 */
export async function createLogger(opts: LogOptions = {}): Promise<Logger> {
  const level = opts.level ?? 'info';
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  if (opts.destination) return pino(base, opts.destination);
  return pino(base, await logDestination(opts.format ?? defaultLogFormat()));
}

/** A logger that drops everything; for library callers and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
