/**
 * The signature a `.ko` carries after its ELF image, as scripts/sign-file appends it:
 * `<ELF><PKCS#7 DER><struct module_signature (12 bytes)>~Module signature appended~\n`.
 * Read with our own DER walk (no modinfo run): the signer (the issuer's name, as modinfo shows it), the key id
 * (the issuer's serial number, or the subject key identifier when signed with `sign-file -k`) and the hash.
 */
import { DerError, TAG, children, expect, hashName, integerHex, kernelKeyName, nameAttributes, oidString, parseDer } from './der.js';

export const SIGNATURE_MAGIC = Buffer.from('~Module signature appended~\n');
const MODULE_SIGNATURE_SIZE = 12;
const PKEY_ID_PKCS7 = 2;
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';

export type ModuleSignature =
  | { signed: false; elfLength: number }
  | {
      signed: true;
      elfLength: number;
      /** the signer's issuer name as the kernel names keys (CN, or "O: CN"); empty for a key-id-only signature */
      signer: string;
      /** upper-case hex: the issuer's serial number, or the subject key identifier */
      keyId: string;
      keyIdKind: 'serial' | 'skid';
      hashAlgo: string;
    };

export class SignatureFormatError extends Error {
  override name = 'SignatureFormatError';
}

/** Reads the appended signature of an (uncompressed) module image; throws SignatureFormatError when corrupt. */
export function readModuleSignature(ko: Buffer): ModuleSignature {
  if (ko.length < SIGNATURE_MAGIC.length || !ko.subarray(ko.length - SIGNATURE_MAGIC.length).equals(SIGNATURE_MAGIC)) {
    return { signed: false, elfLength: ko.length };
  }
  const infoEnd = ko.length - SIGNATURE_MAGIC.length;
  const infoStart = infoEnd - MODULE_SIGNATURE_SIZE;
  if (infoStart < 0) throw new SignatureFormatError('signature trailer is shorter than struct module_signature');
  const info = ko.subarray(infoStart, infoEnd);
  const idType = info[2]!;
  const sigLen = info.readUInt32BE(8);
  if (idType !== PKEY_ID_PKCS7) throw new SignatureFormatError(`signature id type ${idType} is not PKCS#7 (2)`);
  if (info[0] !== 0 || info[1] !== 0 || info[3] !== 0 || info[4] !== 0) {
    throw new SignatureFormatError('PKCS#7 signature header has non-zero algo/hash/signer/key-id fields');
  }
  const sigStart = infoStart - sigLen;
  if (sigLen === 0 || sigStart < 0) throw new SignatureFormatError(`signature length ${sigLen} does not fit the file`);
  try {
    return { signed: true, elfLength: sigStart, ...signerOfPkcs7(ko.subarray(sigStart, infoStart)) };
  } catch (err) {
    if (err instanceof DerError) throw new SignatureFormatError(`PKCS#7 signature does not parse: ${err.message}`);
    throw err;
  }
}

function signerOfPkcs7(der: Buffer): { signer: string; keyId: string; keyIdKind: 'serial' | 'skid'; hashAlgo: string } {
  const [contentType, explicit] = children(expect(parseDer(der), TAG.SEQUENCE, 'ContentInfo'));
  if (oidString(expect(contentType, TAG.OID, 'contentType')) !== OID_SIGNED_DATA) throw new DerError('not PKCS#7 signedData');
  const signedData = expect(children(expect(explicit, TAG.CTX0, 'content'))[0], TAG.SEQUENCE, 'SignedData');
  const signerInfos = children(signedData).at(-1);
  const signerInfo = children(expect(signerInfos, TAG.SET, 'signerInfos'))[0];
  const [, sid, digestAlgorithm] = children(expect(signerInfo, TAG.SEQUENCE, 'SignerInfo'));
  if (!sid || !digestAlgorithm) throw new DerError('SignerInfo is incomplete');
  const hashAlgo = hashName(digestAlgorithm);
  if (sid.tag === TAG.CTX0_PRIMITIVE) {
    return { signer: '', keyId: sid.value.toString('hex').toUpperCase(), keyIdKind: 'skid', hashAlgo };
  }
  const [issuer, serial] = children(expect(sid, TAG.SEQUENCE, 'IssuerAndSerialNumber'));
  return {
    signer: kernelKeyName(nameAttributes(expect(issuer, TAG.SEQUENCE, 'issuer'))),
    keyId: integerHex(expect(serial, TAG.INTEGER, 'serialNumber')),
    keyIdKind: 'serial',
    hashAlgo,
  };
}

/** `5E:E1:13…` as modinfo prints a key id. */
export function colonHex(hex: string): string {
  return hex.match(/../g)?.join(':') ?? hex;
}
