/**
 * Trusted keys given as certificate files (`preflight --trusted-keys DIR`): DER or PEM X.509, as a kernel
 * package ships its signing certificate or a vendor hands out its MOK. Each becomes the TrustedKey the
 * kernel would make of it, with the issuer and serial kept so the match with a signature is exact.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrustedKey } from './trust.js';
import { normaliseModuleName } from './names.js';
import { DerError, TAG, children, expect, integerHex, kernelKeyName, nameAttributes, oidString, parseDer } from './der.js';

const OID_SUBJECT_KEY_ID = '2.5.29.14';

export class CertificateError extends Error {
  override name = 'CertificateError';
}

/** One DER certificate → its key as the kernel names it. */
export function trustedKeyOfCertificate(der: Buffer): TrustedKey {
  const [tbs] = children(expect(parseDer(der), TAG.SEQUENCE, 'Certificate'));
  const fields = children(expect(tbs, TAG.SEQUENCE, 'TBSCertificate'));
  const rest = fields[0]?.tag === TAG.CTX0 ? fields.slice(1) : fields; // version is optional
  const [serial, , issuer, , subject] = rest;
  const serialHex = integerHex(expect(serial, TAG.INTEGER, 'serialNumber'));
  let skid: string | undefined;
  const extensions = rest.find((f) => f.tag === TAG.CTX3);
  if (extensions) {
    for (const ext of children(expect(children(extensions)[0], TAG.SEQUENCE, 'Extensions'))) {
      const parts = children(ext);
      if (oidString(expect(parts[0], TAG.OID, 'extnID')) !== OID_SUBJECT_KEY_ID) continue;
      const value = expect(parts.at(-1), TAG.OCTET_STRING, 'extnValue');
      skid = expect(parseDer(value.value), TAG.OCTET_STRING, 'SubjectKeyIdentifier').value.toString('hex').toUpperCase();
    }
  }
  return {
    name: kernelKeyName(nameAttributes(expect(subject, TAG.SEQUENCE, 'subject'))),
    keyId: skid ?? serialHex,
    cert: { issuer: kernelKeyName(nameAttributes(expect(issuer, TAG.SEQUENCE, 'issuer'))), serial: serialHex },
  };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** Every certificate in the files of `dir` (PEM files may hold several); a file that is neither fails. */
export async function readTrustedKeysDir(dir: string): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries.filter((x) => x.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = join(dir, e.name);
    const bytes = await readFile(file);
    const text = bytes.toString('latin1');
    const ders = text.includes('-----BEGIN CERTIFICATE-----')
      ? [...text.matchAll(PEM_CERT)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))
      : [bytes];
    for (const der of ders) {
      try {
        keys.push(trustedKeyOfCertificate(der));
      } catch (err) {
        if (err instanceof DerError) throw new CertificateError(`${file} is not a DER or PEM X.509 certificate: ${err.message}`);
        throw err;
      }
    }
  }
  return keys;
}

/** Module.symvers (`crc<TAB>symbol<TAB>module<TAB>export type[<TAB>namespace]`) → symbol → module name. */
export function parseSymvers(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length >= 3 && f[1]) map.set(f[1], normaliseModuleName(f[2]!.split('/').pop() ?? ''));
  }
  return map;
}
