/**
 * The CPU architecture a kernel release names (5.14.0-427.el9.aarch64, 6.1.0-57-arm64), so preflight does not
 * check an arm64 kernel's Modules against the amd64 images of a multi-arch index just because it runs on amd64.
 */
import { UsageError } from '../errors.js';
import { hostPlatform } from '../image/platform.js';
import { messages } from '../messages.js';

/** release suffix → GOARCH, as RHEL/Fedora (.x86_64) and Debian/Ubuntu (-amd64) name them */
const SUFFIXES: Array<[RegExp, string]> = [
  [/[.-](x86_64|amd64)(\+\w+)?$/, 'amd64'],
  [/[.-](aarch64|arm64)(\+\w+)?$/, 'arm64'],
  [/[.-]ppc64le(\+\w+)?$/, 'ppc64le'],
  [/[.-]s390x(\+\w+)?$/, 's390x'],
];

export function kernelArch(release: string): string | undefined {
  for (const [re, arch] of SUFFIXES) if (re.test(release)) return arch;
  return undefined;
}

/** Without --platform, a kernel of another architecture than this host's is refused with the flag to use. */
export function checkKernelPlatform(release: string, platform: string | undefined, host = hostPlatform().architecture): void {
  if (platform) return;
  const arch = kernelArch(release);
  if (arch && arch !== host) throw new UsageError(messages.kernelPlatformMismatch(release, arch, host));
}
