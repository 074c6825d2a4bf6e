/**
 * The Day-1 image reference: the user names a repository, the tag is the running kernel release (docs/day1.md),
 * so one setting keeps working across kernel upgrades: the pull service fetches the new kernel's image.
 */
import { OperationError, UsageError, errorMessage } from '../errors.js';
import { parseReference } from '../image/reference.js';

// OCI distribution's tag grammar.
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** A repository without tag or digest: `host[:port]/path/name` or `oci:PATH`. Throws UsageError otherwise. */
export function checkImageRepository(repo: string, flag = '--image'): string {
  const value = repo.trim();
  if (!value) throw new UsageError(`${flag} must name an image repository, got an empty value`);
  if (/\s/.test(value)) throw new UsageError(`${flag} must not contain whitespace, got '${value}'`);
  if (value.includes('@')) {
    throw new UsageError(`${flag} must be a repository without a digest (the tag is the running kernel release), got '${value}'`);
  }
  const body = value.startsWith('oci:') ? value.slice('oci:'.length) : value;
  const lastSegment = body.slice(body.lastIndexOf('/') + 1);
  // a colon before the last '/' is a registry port; in the last path segment it starts a tag
  if (lastSegment.includes(':')) {
    throw new UsageError(`${flag} must be a repository without a tag (the tag is the running kernel release), got '${value}'`);
  }
  if (!body || body.endsWith('/')) throw new UsageError(`${flag} must name an image repository, got '${value}'`);
  try {
    parseReference(value);
  } catch (err) {
    throw new UsageError(`${flag}: ${errorMessage(err)}`);
  }
  return value;
}

/** `<repo>:<kernel release>`; a release that cannot be a tag (e.g. with a `+`) is an operation failure. */
export function day1ImageReference(repo: string, kernelRelease: string): string {
  if (!TAG.test(kernelRelease)) {
    throw new OperationError(
      `the running kernel release '${kernelRelease}' cannot be an image tag (allowed: letters, digits, '_', '.', '-'; at most 128)`,
    );
  }
  return `${repo}:${kernelRelease}`;
}
