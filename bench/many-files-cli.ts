/**
 * Issue 14's F9 through the real CLI: the peak RSS of `image pull --all` of one layer of 10^5 tiny files, from an
 * `oci:` layout, measured by /usr/bin/time around `bin/kmm-worker.js` (not the TS loader). Target: <= 100 MiB
 * (the KMM worker pod's limit is 128 MiB). The layout is built once into .cache/bench/.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { manyFiles, ociLayout } from '../test/helpers/hostile-layers.js';

export const MANY_FILES = 100_000;

export async function buildManyFiles(cache: string): Promise<string> {
  const dir = path.join(cache, `many-files-${MANY_FILES}`);
  if (!existsSync(path.join(dir, 'index.json'))) await ociLayout(dir, 'v1', [manyFiles(MANY_FILES)]);
  return `oci:${dir}:v1`;
}
