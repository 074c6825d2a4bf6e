/**
 * The one way tests run the real CLI (`node bin/kmm-worker.js`, Node 24 from node_modules): every suite's
 * runner is this with its own defaults. Exit code and signal, both output streams, and stderr's JSON log lines
 * parsed (the CLI logs JSON when stderr is no terminal).
 */
import { execa, type ResultPromise } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/kmm-worker.js');

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface CliResult {
  /** the exit code; null when a signal ended the process */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stderr's JSON log lines, in order */
  logs: LogLine[];
}

export interface RunCliOptions {
  /** added to (or, with extendEnv false, instead of) the test's environment; undefined removes a variable */
  env?: Record<string, string | undefined>;
  /** default true */
  extendEnv?: boolean;
  /** stdin; none: stdin is empty */
  input?: string;
  /** killed (SIGKILL unless killSignal) after this long; default 120 s; 0: never */
  timeoutMs?: number;
  killSignal?: NodeJS.Signals;
  /** false: stdout and stderr exactly as written (default: one final newline dropped) */
  stripFinalNewline?: boolean;
  /** run the CLI through another program, e.g. ['unshare', '--net'] */
  wrapper?: string[];
}

/** The CLI as a running process, to signal it or read it while it runs; `runCli` when only the result matters. */
export function startCli(args: string[], o: RunCliOptions = {}): ResultPromise<{ reject: false }> {
  const argv = [process.execPath, CLI_BIN, ...args];
  const [file, ...rest] = o.wrapper ? [...o.wrapper, ...argv] : argv;
  return execa(file!, rest, {
    reject: false,
    env: o.env ?? {},
    extendEnv: o.extendEnv ?? true,
    input: o.input ?? '',
    timeout: o.timeoutMs ?? 120_000,
    killSignal: o.killSignal ?? 'SIGKILL',
    // the signal is the test's choice: never escalated to SIGKILL behind its back
    forceKillAfterDelay: false,
    maxBuffer: 64 << 20,
    stripFinalNewline: o.stripFinalNewline ?? true,
  }) as ResultPromise<{ reject: false }>;
}

export function parseLogs(stderr: string): LogLine[] {
  const logs: LogLine[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as LogLine;
      if (typeof o.level === 'number') logs.push(o);
    } catch {
      // not a log line
    }
  }
  return logs;
}

export async function cliResult(running: ResultPromise<{ reject: false }>): Promise<CliResult> {
  const r = await running;
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  return {
    code: r.exitCode ?? null,
    signal: (r.signal as NodeJS.Signals | undefined) ?? null,
    stdout,
    stderr,
    logs: parseLogs(stderr),
  };
}

export function runCli(args: string[], o: RunCliOptions = {}): Promise<CliResult> {
  return cliResult(startCli(args, o));
}
