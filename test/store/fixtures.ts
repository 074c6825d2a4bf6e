/**
 * Shared by the cache tests: the real CLI as a child process, a kmod image pushed to a real registry, and a
 * tree fingerprint to compare extractions.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin', 'kmm-worker.js');
export const KVER = '6.1.0-kmmtest';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/kmm-worker.js args...` with Node 24 (the one running the tests). */
export function cli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; killAfterMs?: number; killSignal?: NodeJS.Signals } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, KMM_LOG_LEVEL: 'info', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill(opts.killSignal ?? 'SIGKILL'), opts.killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
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
