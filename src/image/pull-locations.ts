/**
 * Where a registry reference is pulled from, by registries.conf: the [[registry]] whose prefix is the longest
 * match of the reference decides; its mirrors (those allowed for a tag or a digest pull) come first, in order,
 * then the primary location. A `blocked` registry is a UsageError.
 *
 *   const locs = pullLocations(parseReference('registry.invalid/org/kmod@sha256:...'), conf);
 *   // [{ ref: <mirror.example/org/kmod@sha256:...>, insecure: false, mirror: true }, { ref: <primary>, ... }]
 */
import { UsageError } from '../errors.js';
import { parseReference, type RegistryReference } from './reference.js';
import type { RegistriesConf, RegistryEntry } from './registries-conf.js';

export interface PullLocation {
  /** the reference at this location (the original one for the primary without a rewrite) */
  ref: RegistryReference;
  /** registries.conf says insecure for this location */
  insecure: boolean;
  mirror: boolean;
}

/** Length of `prefix` in `name` when it matches at a component boundary, else -1. */
function matchLength(name: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    // *.example.com: any subdomain of example.com, as the host of the name
    const host = name.split('/')[0]!.replace(/:\d+$/, '');
    return host.endsWith(prefix.slice(1)) ? name.split('/')[0]!.length : -1;
  }
  if (!name.startsWith(prefix)) return -1;
  if (name.length === prefix.length) return prefix.length;
  const next = name[prefix.length];
  // ':' after a bare host would be a port, not a tag: "example.com" must not match "example.com:5000/x"
  if (next === '/' || next === '@' || (next === ':' && prefix.includes('/'))) return prefix.length;
  return -1;
}

/** The [[registry]] entry for a reference (longest prefix), if any. */
export function matchRegistry(ref: RegistryReference, conf: RegistriesConf): { entry: RegistryEntry; length: number } | undefined {
  let best: { entry: RegistryEntry; length: number } | undefined;
  for (const entry of conf.registries) {
    const n = matchLength(ref.name, entry.prefix);
    // a wildcard matches less specifically than any literal prefix of the same length
    const weight = entry.prefix.startsWith('*.') ? n - 0.5 : n;
    if (n >= 0 && (!best || weight > (best.entry.prefix.startsWith('*.') ? best.length - 0.5 : best.length))) {
      best = { entry, length: n };
    }
  }
  return best;
}

function rewrite(ref: RegistryReference, matched: number, location: string, file: string): RegistryReference {
  const name = location + ref.name.slice(matched);
  try {
    const r = parseReference(name);
    if (r.kind !== 'registry') throw new UsageError(`not a registry reference`);
    return r;
  } catch (e) {
    throw new UsageError(`${file}: location ${location} makes '${name}', not an image reference: ${(e as Error).message}`);
  }
}

export function pullLocations(ref: RegistryReference, conf: RegistriesConf): PullLocation[] {
  const m = matchRegistry(ref, conf);
  if (!m) return [{ ref, insecure: false, mirror: false }];
  const { entry, length } = m;
  if (entry.blocked) throw new UsageError(`image ${ref.name}: ${entry.prefix} is blocked in ${entry.file}`);
  const byDigest = ref.digest !== undefined;
  const out: PullLocation[] = [];
  for (const mirror of entry.mirrors) {
    const allowed = entry.mirrorByDigestOnly ? byDigest
      : mirror.pullFromMirror === 'digest-only' ? byDigest
        : mirror.pullFromMirror === 'tag-only' ? !byDigest
          : true;
    if (allowed) out.push({ ref: rewrite(ref, length, mirror.location, entry.file), insecure: mirror.insecure, mirror: true });
  }
  const wildcard = entry.prefix.startsWith('*.');
  const primary = wildcard || entry.location === entry.prefix ? ref : rewrite(ref, length, entry.location, entry.file);
  out.push({ ref: primary, insecure: entry.insecure, mirror: false });
  return out;
}
