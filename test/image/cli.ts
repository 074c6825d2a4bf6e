/** Runs the built CLI (dist/) as a user would, with Node 24, and keeps every stderr line for secret scans. */
import { cliResult, startCli, type CliResult as Ran } from '../helpers/run-cli.js';

export interface CliResult extends Omit<Ran, 'code'> {
  code: number;
}

/** Everything the CLI wrote to stderr in this test process. */
export const allStderr: string[] = [];

/** The CLI as a running process (to signal it); `cli()` when only the result matters. */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return startCli(args, { env: { KMM_LOG_LEVEL: 'debug', KMM_PULL_SECRETS_DIR: '/nonexistent-kmm-secrets', ...env }, timeoutMs: 60_000 });
}

export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await cliResult(spawnCli(args, env));
  allStderr.push(r.stderr);
  return { ...r, code: r.code ?? -1 };
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
