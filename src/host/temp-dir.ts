/**
 * Where kmm-worker puts its temporary files (the scratch copy of kmods, the staged modprobe.d files). Never
 * blindly os.tmpdir(): KMM's worker pod mounts its shared emptyDir READ-ONLY at /tmp, so the first candidate
 * that accepts a new directory wins: $TMPDIR, /tmp, /var/tmp (the container's own writable layer), /dev/shm.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError } from '../errors.js';

const FALLBACKS = ['/tmp', '/var/tmp', '/dev/shm'];

function candidates(env: NodeJS.ProcessEnv): string[] {
  const list = env.TMPDIR ? [env.TMPDIR.replace(/(.)\/+$/, '$1'), ...FALLBACKS] : FALLBACKS;
  return [...new Set(list)];
}

const REASONS: Record<string, string> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  ENOENT: 'does not exist',
  ENOTDIR: 'not a directory',
  ENOSPC: 'no space left',
  EDQUOT: 'quota exceeded',
};

/** Makes a new private directory `<writable place>/<prefix>XXXXXX`; the caller removes it. */
export async function makeTempDir(prefix: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const tried: string[] = [];
  for (const base of candidates(env)) {
    try {
      return await mkdtemp(join(base, prefix));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      tried.push(`${base}: ${REASONS[code] ?? code ?? (err as Error).message}`);
    }
  }
  throw new OperationError(
    `no writable place for temporary files (${tried.join('; ')}); set TMPDIR to a writable directory, e.g. an emptyDir mount`,
  );
}
