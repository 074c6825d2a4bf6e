/**
 * Issue 14's F9 through the real CLI: the peak RSS of `image pull --all` of one layer of 10^5 tiny files, from an
 * `oci:` layout, measured by /usr/bin/time around `bin/kmm-worker.js` (not the TS loader). Target: <= 100 MiB
 * (the KMM worker pod's limit is 128 MiB). The layout is built once into .cache/bench/.
 */
import { existsSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { manyFiles, ociLayout } from '../test/helpers/hostile-layers.js';

export const MANY_FILES = 100_000;

export async function buildManyFiles(cache: string): Promise<string> {
  const dir = path.join(cache, `many-files-${MANY_FILES}`);
  if (!existsSync(path.join(dir, 'index.json'))) await ociLayout(dir, 'v1', [manyFiles(MANY_FILES)]);
  return `oci:${dir}:v1`;
}

/**
 * A memory cgroup limited to the KMM worker pod's 128 MiB, for running one command inside it the way the pod
 * runs the worker. Without memory pressure the kernel leaves file-backed pages (Node's own code among them)
 * resident and counted in RSS; inside the limit they are reclaimed, and what remains is what the pod must hold.
 * Returns the argv prefix that runs a command inside it, or undefined where no memory cgroup can be made
 * (not root, no cgroup filesystem): the row then says so.
 */
export async function podMemoryLimit(): Promise<{ prefix: string[]; remove: () => Promise<void> } | undefined> {
  const LIMIT = 128 * 1024 * 1024;
  const name = `kmm-bench-${process.pid}`;
  const v2 = '/sys/fs/cgroup/cgroup.controllers';
  const dir = existsSync(v2) ? path.join('/sys/fs/cgroup', name) : path.join('/sys/fs/cgroup/memory', name);
  try {
    await mkdir(dir);
    await writeFile(path.join(dir, existsSync(v2) ? 'memory.max' : 'memory.limit_in_bytes'), String(LIMIT));
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
  const procs = path.join(dir, 'cgroup.procs');
  return {
    // the shell moves itself into the cgroup, then becomes the command
    prefix: ['/bin/sh', '-c', `echo $$ > ${procs} && exec "$@"`, 'sh'],
    remove: () => rmdir(dir).catch(() => undefined),
  };
}
