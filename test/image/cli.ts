/** Runs the built CLI (dist/) as a user would, with Node 24, and keeps every stderr line for secret scans. */
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/kmm-worker.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Everything the CLI wrote to stderr in this test process. */
export const allStderr: string[] = [];

/** The CLI as a running process (to signal it); `cli()` when only the result matters. */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [BIN, ...args], {
    reject: false,
    env: { KMM_LOG_LEVEL: 'debug', KMM_PULL_SECRETS_DIR: '/nonexistent-kmm-secrets', ...env },
    extendEnv: true,
    timeout: 60_000,
  });
}

export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await spawnCli(args, env);
  allStderr.push(String(r.stderr));
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The one-line failure message (the level-50 log line). */
export function errorLine(stderr: string): string {
  for (const l of stderr.split('\n')) {
    try {
      const o = JSON.parse(l) as { level?: number; msg?: string };
      if (o.level === 50) return o.msg ?? '';
    } catch {
      // not JSON
    }
  }
  return '';
}
