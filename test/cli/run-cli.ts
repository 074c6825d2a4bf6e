/**
 * Runs the built CLI the three ways a host admin meets it: in a pipe, on a terminal (a real pseudo-terminal
 * from util-linux `script`), and as a systemd service whose stderr is the journal stream (JOURNAL_STREAM names
 * the device:inode of stderr; here a file stands in for the journal's socket).
 */
import { execa } from 'execa';
import { CLI_BIN, parseLogs, runCli, type CliResult } from '../helpers/run-cli.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync, fstatSync, readFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIN = CLI_BIN;

export interface Ran extends Omit<CliResult, 'code'> {
  code: number;
}

/** The environment of a user's shell: none of the test harness's format choices or the CI's pod markers. */
export function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(KMM_|JOURNAL_STREAM$|KUBERNETES_)/.test(k)) continue;
    env[k] = v;
  }
  env.KMM_PULL_SECRETS_DIR = '/nonexistent-kmm-secrets';
  return { ...env, ...extra };
}

/** stdout and stderr are pipes (`ssh node kmm-worker ...`, `| tee`). */
export async function inPipe(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const r = await runCli(args, { env: userEnv(env), extendEnv: false });
  return { ...r, code: r.code ?? -1 };
}

/** On a terminal: what the user's screen receives (stdout and stderr both go to the pty), raw bytes included. */
export async function onTerminal(args: string[], env: Record<string, string> = {}): Promise<{ code: number; screen: string }> {
  // a terminal window has a size; the pty `script` makes has none until told
  const cmd = 'stty rows 40 cols 160; ' + [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = await execa('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
    reject: false,
    env: { ...userEnv(env), COLUMNS: '120', LINES: '40', TERM: 'xterm' },
    extendEnv: false,
    stdin: 'ignore',
    timeout: 120_000,
  });
  return { code: r.exitCode ?? -1, screen: String(r.stdout) };
}

/** As a systemd service: stderr is the journal stream and JOURNAL_STREAM says so. */
export async function underJournald(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kmm-journal-'));
  const file = path.join(dir, 'journal');
  // the file exists before the child opens it, so its device:inode is known in advance
  const fd = openSync(file, 'w');
  try {
    const st = fstatSync(fd);
    // node's own spawn hands the fd itself to the child (execa would put a pipe in between)
    const child = spawn(process.execPath, [BIN, ...args], {
      env: userEnv({ JOURNAL_STREAM: `${st.dev}:${st.ino}`, INVOCATION_ID: 'test', ...env }),
      stdio: ['ignore', 'pipe', fd],
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += String(c)));
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    const stderr = readFileSync(file, 'utf8');
    return { code: code ?? -1, signal, stdout, stderr, logs: parseLogs(stderr) };
  } finally {
    closeSync(fd);
  }
}

/** Drops the terminal's control sequences, leaving what a reader sees. */
export function plain(screen: string): string {
  // eslint-disable-next-line no-control-regex
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}
