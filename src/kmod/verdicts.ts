/**
 * The two questions asked of every module before the first host change, as pure functions of what was read:
 * would the kernel accept its signature, and does it fit the kernel's ABI (vermagic, symbols)?
 * A refusal is one line: which module, what is wrong, what the node has, how to fix it.
 */
import type { SignatureEnforcement, TrustedKey } from './trust.js';
import { kernelMatches } from './names.js';
import type { KoFile } from './ko-file.js';
import { modinfoField } from './elf.js';
import { colonHex } from './signature.js';

export interface Verdict {
  ok: boolean;
  /** one line: the refusal (ok false), or what was found (ok true) */
  message: string;
  /** ok, but the kernel would taint itself (unsigned or untrusted, signatures not enforced) */
  taints?: boolean;
}

const MAX_NAMED = 8;

function namedList(items: string[]): string {
  const shown = items.slice(0, MAX_NAMED).join(', ');
  return items.length > MAX_NAMED ? `${shown} (and ${items.length - MAX_NAMED} more)` : shown;
}

export function describeKey(k: TrustedKey): string {
  return `"${k.name}" (${k.keyId.slice(-8).toLowerCase()})`;
}

/** The trusted key that would verify this signature, if any. */
export function trustingKey(ko: KoFile, keys: TrustedKey[]): TrustedKey | undefined {
  const sig = ko.signature;
  if (!sig.signed) return undefined;
  return keys.find((k) => {
    if (sig.keyIdKind === 'skid') return k.keyId === sig.keyId;
    // from a certificate file the issuer and serial are known; /proc/keys shows only the subject and its key id
    if (k.cert) return k.cert.serial === sig.keyId && k.cert.issuer === sig.signer;
    return k.keyId === sig.keyId || k.name === sig.signer;
  });
}

export function describeSignature(ko: KoFile): string {
  const sig = ko.signature;
  if (!sig.signed) return 'unsigned';
  const who = sig.signer ? `"${sig.signer}"` : 'an unnamed key';
  return `signed by ${who} (key ${colonHex(sig.keyId)}, ${sig.hashAlgo})`;
}

/**
 * `keys` undefined: the node's keys could not be read; a signed module then passes (the kernel decides), an
 * unsigned one under enforcement does not.
 */
export function signatureVerdict(
  module: string,
  ko: KoFile,
  enforcement: SignatureEnforcement,
  keys: TrustedKey[] | undefined,
  where = 'this node',
): Verdict {
  const signature = describeSignature(ko);
  const trusted = keys && trustingKey(ko, keys);
  const enforcing = `${where} enforces module signatures (${enforcement.facts.join(', ')})`;
  if (trusted) return { ok: true, message: `module ${module} is ${signature}, trusted by ${where} (key ${describeKey(trusted)})` };
  if (ko.signature.signed && keys === undefined) {
    return { ok: true, message: `module ${module} is ${signature}; ${where}'s keys cannot be read, so the kernel decides` };
  }
  if (!enforcement.enforced) {
    const facts = enforcement.facts.length ? ` (${enforcement.facts.join(', ')})` : '';
    return {
      ok: true,
      taints: true,
      message: `module ${module} is ${signature}${ko.signature.signed ? ', a key ' + where + ' does not trust' : ''}; ${where} does not enforce module signatures${facts}, so loading it will taint the kernel`,
    };
  }
  const trust = keys && keys.length > 0 ? `${where} trusts ${namedList(keys.map(describeKey))}` : `${where} lists no trusted keys`;
  const what = ko.signature.signed ? `is ${signature}, a key ${where} does not trust` : 'is not signed';
  return {
    ok: false,
    message:
      `module ${module} (${ko.path}) ${what}, and ${enforcing}: the kernel would refuse it. ${trust[0]!.toUpperCase()}${trust.slice(1)}. ` +
      'Fix: sign the module with a key the node trusts (scripts/sign-file), or enroll your signing certificate with ' +
      "'mokutil --import <cert.der>' and reboot to confirm it",
  };
}

/** vermagic's first word is the kernel release the module was built for. */
export function vermagicVerdict(module: string, ko: KoFile, kernel: string): Verdict {
  const vermagic = modinfoField(ko.elf, 'vermagic');
  const built = vermagic?.trim().split(/\s+/, 1)[0];
  if (!built) return { ok: false, message: `module ${module} (${ko.path}) has no vermagic: it is not a module built by kbuild; rebuild it against ${kernel}` };
  if (kernelMatches(built, kernel)) return { ok: true, message: `module ${module} vermagic ${built} matches kernel ${kernel}` };
  return {
    ok: false,
    message: `module ${module} (${ko.path}) was built for kernel ${built} (vermagic), not ${kernel}: the kernel would refuse it with 'Invalid module format'. Fix: rebuild it against ${kernel}'s headers and put it under lib/modules/${kernel}`,
  };
}

/** `missing` are the module's undefined symbols nobody provides, `missingModules` its `depends` nobody has. */
export function symbolsVerdict(module: string, ko: KoFile, missing: string[], missingModules: string[], where: string): Verdict {
  if (missing.length === 0 && missingModules.length === 0) {
    return { ok: true, message: `module ${module}: all ${ko.elf.undefinedSymbols.length} symbols it needs are provided` };
  }
  const parts: string[] = [];
  if (missingModules.length) parts.push(`the module${missingModules.length > 1 ? 's' : ''} ${namedList(missingModules)}`);
  if (missing.length) parts.push(`the symbol${missing.length > 1 ? 's' : ''} ${namedList(missing)}`);
  return {
    ok: false,
    message: `module ${module} (${ko.path}) needs ${parts.join(' and ')}, found in none of: ${where}; the kernel would refuse it with 'Unknown symbol'. Fix: rebuild it against this kernel, or ship the modules that export these symbols in the image`,
  };
}
