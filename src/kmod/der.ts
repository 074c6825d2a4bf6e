/**
 * Just enough DER (X.690) to read a module signature's PKCS#7 SignerInfo and an X.509 certificate's names,
 * serial and subject key id. Every read is bounds-checked; a malformed encoding throws DerError.
 */
export class DerError extends Error {
  override name = 'DerError';
}

export interface DerNode {
  /** the identifier octet (class, constructed bit and tag number < 31) */
  tag: number;
  /** the contents, without the header */
  value: Buffer;
  /** header + contents */
  raw: Buffer;
}

export const TAG = {
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** [0] constructed (EXPLICIT or a constructed IMPLICIT) */
  CTX0: 0xa0,
  /** [0] primitive (an IMPLICIT OCTET STRING such as a SignerInfo's subjectKeyIdentifier) */
  CTX0_PRIMITIVE: 0x80,
  CTX3: 0xa3,
} as const;

/** Reads one element at `offset`; returns it and the offset after it. */
export function readNode(buf: Buffer, offset = 0): { node: DerNode; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated DER header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not used here');
  let len = buf[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('unsupported DER length');
    if (pos + n > buf.length) throw new DerError('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i]!;
    pos += n;
  }
  if (pos + len > buf.length) throw new DerError('DER element runs past its container');
  return { node: { tag, value: buf.subarray(pos, pos + len), raw: buf.subarray(offset, pos + len) }, next: pos + len };
}

/** The elements inside a constructed node. */
export function children(node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  let pos = 0;
  while (pos < node.value.length) {
    const { node: child, next } = readNode(node.value, pos);
    out.push(child);
    pos = next;
  }
  return out;
}

/** One whole DER element filling the buffer exactly. */
export function parseDer(buf: Buffer): DerNode {
  const { node, next } = readNode(buf, 0);
  if (next !== buf.length) throw new DerError('trailing bytes after the DER element');
  return node;
}

export function expect(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node || node.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got ${node ? `0x${node.tag.toString(16)}` : 'nothing'}`);
  }
  return node;
}

export function oidString(node: DerNode): string {
  const b = node.value;
  if (b.length === 0) throw new DerError('empty OID');
  const parts: number[] = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

const NAME_OIDS: Record<string, string> = { '2.5.4.3': 'CN', '2.5.4.10': 'O', '1.2.840.113549.1.9.1': 'emailAddress' };

/** An X.501 Name's attributes we care about (CN, O, emailAddress), first value of each. */
export function nameAttributes(name: DerNode): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rdn of children(expect(name, TAG.SEQUENCE, 'Name'))) {
    for (const atv of children(rdn)) {
      const [oid, value] = children(atv);
      const key = NAME_OIDS[oidString(expect(oid, TAG.OID, 'attribute type'))];
      if (key && value && out[key] === undefined) out[key] = value.value.toString('utf8');
    }
  }
  return out;
}

/**
 * The name the kernel gives a certificate's key in /proc/keys (x509_fabricate_name): the CN, prefixed with
 * the O when the CN does not already start with it; else whichever of the two exists, else the email.
 */
export function kernelKeyName(attrs: Record<string, string>): string {
  const { CN, O, emailAddress } = attrs;
  if (CN && O && !CN.startsWith(O)) return `${O}: ${CN}`;
  return CN ?? O ?? emailAddress ?? '';
}

/** An INTEGER's bytes as upper-case hex without the DER sign padding (how modinfo prints sig_key). */
export function integerHex(node: DerNode): string {
  let b = node.value;
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return b.toString('hex').toUpperCase();
}

const HASH_OIDS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.8': 'sha3-256',
  '2.16.840.1.101.3.4.2.9': 'sha3-384',
  '2.16.840.1.101.3.4.2.10': 'sha3-512',
  '1.2.156.10197.1.401': 'sm3',
};

export function hashName(algorithmIdentifier: DerNode): string {
  const oid = oidString(expect(children(expect(algorithmIdentifier, TAG.SEQUENCE, 'AlgorithmIdentifier'))[0], TAG.OID, 'algorithm'));
  return HASH_OIDS[oid] ?? oid;
}
