/** Flags that name a directory on the host: `--firmware-path` and the upstream worker's forms of it. */
import { isAbsolute } from 'node:path';
import { UsageError } from '../errors.js';

/**
 * The flag's value as an absolute host path without trailing slashes ('/' stays '/'); undefined when the flag is
 * absent or empty. A relative path is a usage error: the worker's working directory says nothing about the host.
 */
export function absoluteHostPath(flag: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!isAbsolute(value)) throw new UsageError(`${flag} must be an absolute host path, got '${value}'`);
  return value.replace(/(.)\/+$/, '$1');
}
