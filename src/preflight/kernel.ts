/**
 * Kernel version strings as KMM treats them: the normalised form (characters outside [A-Za-z0-9._-] become
 * `_`) feeds the template variables, while kernel-mapping matching uses the string as given.
 */
import { UsageError } from '../errors.js';

export function normalizeKernelVersion(version: string): string {
  return version.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** The variables a Module's containerImage may use (docs/preflight.md), except MOD_NAME / MOD_NAMESPACE. */
export interface KernelVariables {
  KERNEL_FULL_VERSION: string;
  KERNEL_VERSION: string;
  KERNEL_XYZ: string;
  KERNEL_X: string;
  KERNEL_Y: string;
  KERNEL_Z: string;
}

/**
 * Splits the normalised kernel on `.`, `,` and `-` as KMM does; fewer than three parts is an error there
 * (the Module cannot be resolved at all), so it is refused up front here.
 */
export function kernelVariables(kernel: string): KernelVariables {
  const normalized = normalizeKernelVersion(kernel);
  const parts = normalized.split(/[.,-]/);
  if (parts.length < 3) {
    throw new UsageError(`kernel version '${kernel}' must have at least three components (major.minor.patch)`);
  }
  return {
    KERNEL_FULL_VERSION: normalized,
    KERNEL_VERSION: normalized,
    KERNEL_XYZ: parts.slice(0, 3).join('.'),
    KERNEL_X: parts[0]!,
    KERNEL_Y: parts[1]!,
    KERNEL_Z: parts[2]!,
  };
}

/** `--kernel` as typed: surrounding blanks dropped; empty or containing a path separator is refused. */
export function checkKernelArgument(kernel: string, source: string): string {
  const kver = kernel.trim();
  if (!kver) throw new UsageError(`${source}: the kernel version is empty`);
  if (/[\s/]/.test(kver) || kver === '.' || kver === '..') {
    throw new UsageError(`${source}: '${kver}' is not a kernel release (no blanks or '/' allowed)`);
  }
  kernelVariables(kver);
  return kver;
}
