/**
 * Platforms ("os/arch[/variant]") and choosing one image from an index, the way containerd's default matcher
 * does: os and architecture must be equal; a wanted variant must match (arm64's v8 is also an absent variant).
 */
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Platform } from './types.js';

const GOARCH: Record<string, string> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64',
  loong64: 'loong64', mips: 'mips', mipsel: 'mipsle',
};

/** The host's platform in OCI terms: linux/amd64, linux/arm64/v8, linux/arm/v7. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  const p: Platform = { os: 'linux', architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  if (architecture === 'arm') {
    const v = (process.config.variables as { arm_version?: string }).arm_version;
    if (v) p.variant = `v${v}`;
  }
  return p;
}

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => !/^[a-z0-9_.-]+$/i.test(x))) {
    throw new UsageError(`--platform '${s}' is not os/arch[/variant] (e.g. linux/arm64)`);
  }
  const [os, architecture, variant] = parts.map((x) => x.toLowerCase()) as [string, string, string?];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function normalVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8')) return 'v8';
  return p.variant;
}

/** 0 = no match; higher = better. */
export function platformScore(want: Platform, have: Platform | undefined): number {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return 0;
  const wv = normalVariant(want);
  const hv = normalVariant(have);
  if (wv === hv) return 3;
  if (!want.variant) return 2;
  // arm: an older variant still runs on a newer CPU (v6 on v7)
  if (want.architecture === 'arm' && wv && hv && hv < wv) return 1;
  return 0;
}

/** A single-platform image is used whatever it says, as docker does, but a mismatch is worth a warning. */
export function warnOtherPlatform(log: Logger, image: string, have: Platform | undefined, want: Platform): void {
  if (have && platformScore(want, have) === 0) {
    log.warn({ image, platform: formatPlatform(have), wanted: formatPlatform(want) },
      'the image is built for another platform; its modules may not load on this node');
  }
}
