/**
 * What the node says about module signatures (read-only, under --host-root): whether it enforces them, and
 * which keys its trusted keyrings hold, as /proc/keys lists them.
 */
import { readFile } from 'node:fs/promises';
import type { Host } from './host.js';
import type { SignatureEnforcement, TrustedKey } from '../kmod/trust.js';

export const SECURE_BOOT_VAR = '/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const TRUSTED_KEYRINGS = ['.builtin_trusted_keys', '.secondary_trusted_keys', '.machine', '.platform'] as const;

export interface NodeKeys {
  /** undefined when /proc/keys cannot be read */
  keys: TrustedKey[] | undefined;
  /** which of TRUSTED_KEYRINGS /proc/keys shows */
  keyrings: string[];
}

const readTrimmed = (path: string) => readFile(path, 'utf8').then((s) => s.trim(), () => undefined);

/**
 * The kernel refuses unsigned or untrusted modules when `module.sig_enforce` is on, or when lockdown is in
 * integrity/confidentiality mode. Secure Boot counts only when the lockdown file cannot be read (securityfs not
 * mounted in the pod): distribution kernels turn lockdown on under Secure Boot.
 */
export async function readSignatureEnforcement(host: Host): Promise<SignatureEnforcement> {
  const facts: string[] = [];
  const sigEnforce = await readTrimmed(host.path('/sys/module/module/parameters/sig_enforce'));
  if (sigEnforce !== undefined) facts.push(`sig_enforce=${sigEnforce}`);
  const lockdownText = await readTrimmed(host.path('/sys/kernel/security/lockdown'));
  const lockdown = lockdownText?.match(/\[(\w+)\]/)?.[1];
  if (lockdown) facts.push(`lockdown=${lockdown}`);
  const sb = await readFile(host.path(SECURE_BOOT_VAR)).catch(() => undefined);
  // efivarfs: 4 bytes of attributes, then the value
  const secureBoot = sb && sb.length >= 5 ? sb[4] === 1 : undefined;
  if (secureBoot !== undefined) facts.push(`Secure Boot ${secureBoot ? 'on' : 'off'}`);
  const enforced =
    sigEnforce === 'Y' || lockdown === 'integrity' || lockdown === 'confidentiality' || (lockdown === undefined && secureBoot === true);
  return { enforced, facts };
}

/**
 * Asymmetric keys in /proc/keys. Their description is `<subject name>: <key id hex>`, followed by the subtype's
 * own text (`: X509.rsa 3720f629 []`). /proc/keys does not say which keyring holds a key, so every asymmetric
 * key the process may view counts; on a node that is the trusted keyrings' contents (see docs/kmod.md).
 */
export async function readNodeKeys(host: Host): Promise<NodeKeys> {
  const text = await readFile(host.path('/proc/keys'), 'utf8').catch(() => undefined);
  if (text === undefined) return { keys: undefined, keyrings: [] };
  const keys: TrustedKey[] = [];
  const keyrings: string[] = [];
  for (const line of text.split('\n')) {
    // serial flags usage expiry perm uid gid type description
    const m = line.match(/^\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s+(.*)$/);
    if (!m) continue;
    const [, type, desc] = m as unknown as [string, string, string];
    if (type === 'keyring') {
      const ring = desc.split(':', 1)[0]!;
      if ((TRUSTED_KEYRINGS as readonly string[]).includes(ring)) keyrings.push(ring);
    } else if (type.startsWith('asymmetri')) {
      const k = desc.match(/^(.*?): ([0-9a-fA-F]+)(?:: |$)/);
      if (k) keys.push({ name: k[1]!, keyId: k[2]!.toUpperCase() });
    }
  }
  return { keys, keyrings };
}
