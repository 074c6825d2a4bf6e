/**
 * Shared by the cache tests: the real CLI as a child process, a kmod image pushed to a real registry, and a
 * tree fingerprint to compare extractions.
 */
import { runCli, type CliResult } from '../helpers/run-cli.js';
import crypto from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin', 'kmm-worker.js');
export const KVER = '6.1.0-kmmtest';

export type { CliResult };

/** Runs `node bin/kmm-worker.js args...` (test/helpers/run-cli.ts), killed after `killAfterMs` when given. */
export function cli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; killAfterMs?: number; killSignal?: NodeJS.Signals } = {},
): Promise<CliResult> {
  return runCli(args, {
    env: { KMM_LOG_LEVEL: 'info', ...opts.env },
    timeoutMs: opts.killAfterMs ?? 0,
    ...(opts.killSignal ? { killSignal: opts.killSignal } : {}),
  });
}

/** Each path under dir with its type, and the content hash or link target: equal fingerprints, equal trees. */
export async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = path.join(d, name);
      const st = await lstat(p);
      const rel = path.relative(dir, p);
      if (st.isDirectory()) {
        out.push(`${rel}/`);
        await walk(p);
      } else if (st.isSymbolicLink()) out.push(`${rel} -> ${await readlink(p)}`);
      else out.push(`${rel} ${crypto.createHash('sha256').update(await readFile(p)).digest('hex')}`);
    }
  };
  await walk(dir);
  return out;
}

/** The blob and manifest GETs/HEADs of a registry request log. */
export function countRequests(reqs: { method: string; path: string }[]) {
  return {
    blobs: reqs.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path)).length,
    manifests: reqs.filter((r) => /\/manifests\//.test(r.path)).length,
    all: reqs.length,
  };
}
