/**
 * A tar reader that sees a layer exactly as Go's archive/tar (and so umoci, containerd and every Go scanner)
 * does, and refuses what it cannot represent faithfully. tar-stream, used before, differed in ways an attacker
 * can use to show one tree to scanners and another to this agent:
 * - it skipped zero blocks and read on past the end-of-archive marker (two zero blocks);
 * - it gave symlinks, hardlinks, devices and fifos a data section when their size field was set;
 * - it applied PAX global headers (`g`) to the entries after them (Go does not);
 * - it decoded non-UTF-8 names to U+FFFD, so two names could merge into one file;
 * - it returned GNU and PAX sparse files as their sparse map.
 * Here: reading stops at the marker (the rest of the stream is drained unread, so the blob's digest is still
 * checked); header-only types have no data; a global header that would rename or resize entries, any sparse
 * file, and any name that is not UTF-8 (or holds a NUL) fail the layer with an OperationError.
 */
import { isUtf8 } from 'node:buffer';
import type { Header } from 'tar-stream';
import { OperationError } from '../errors.js';

const BLOCK = 512;
/** the largest PAX or GNU long-name record accepted (Go's archive/tar uses the same bound) */
const MAX_SPECIAL = 1024 * 1024;

export interface TarEntryBody extends AsyncIterable<Buffer> {
  /** reads and discards what the consumer did not read */
  skip(): Promise<void>;
}

/** null: a type this agent does not extract (the consumer drops it) */
type EntryType = Header['type'] | null;

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'contiguous-file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};
/** types whose size field is not the length of a data section (Go: isHeaderOnlyType) */
const HEADER_ONLY = new Set<EntryType>(['link', 'symlink', 'character-device', 'block-device', 'directory', 'fifo']);
/** PAX keys that change where an entry goes or how long it is: never accepted from a global header */
const GLOBAL_REFUSED = /^(path|linkpath|size|GNU\.sparse\..*)$/;

/** Pulls exact byte counts out of a chunked stream, without copying when a chunk holds them. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  buffered = 0;
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  /** true when `n` bytes are buffered, false when the stream ended before */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** up to `max` buffered bytes (at least one when any are buffered), as a view of one chunk */
  takeSome(max: number): Buffer {
    const first = this.chunks[0]!;
    const n = Math.min(max, first.length - this.head);
    const out = first.subarray(this.head, this.head + n);
    this.consume(n);
    return out;
  }

  /** exactly `n` buffered bytes */
  take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) return this.takeSome(n);
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const part = this.takeSome(n - at);
      part.copy(out, at);
      at += part.length;
    }
    return out;
  }

  private consume(n: number): void {
    this.head += n;
    this.buffered -= n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** skips `n` bytes that are buffered */
  skipBuffered(n: number): true {
    while (n > 0) n -= this.takeSome(n).length;
    return true;
  }

  /** skips `n` bytes; false when the stream ended first */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) return false;
      n -= this.takeSome(n).length;
    }
    return true;
  }

  /** reads the stream to its end, discarding it */
  async drain(): Promise<void> {
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
    }
  }
}

function fail(msg: string): never {
  throw new OperationError(msg);
}

/** A name for a message: printable ASCII as is, every other byte as \xNN. */
export function printableName(raw: Buffer): string {
  let out = '';
  for (const b of raw.subarray(0, 200)) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return raw.length > 200 ? `${out}...` : out;
}

/** Decodes a name's bytes; refuses what cannot be written under the same, unique name (see the file comment). */
function decodeName(raw: Buffer, what: string): string {
  if (raw.includes(0)) fail(`${what} "${printableName(raw)}" contains a NUL byte`);
  if (!isUtf8(raw)) {
    fail(`${what} "${printableName(raw)}" is not valid UTF-8; such names are refused (two of them could map to one file)`);
  }
  return raw.toString('utf8');
}

/** The bytes of a header string field, up to its first NUL. */
function field(block: Buffer, offset: number, length: number): Buffer {
  const f = block.subarray(offset, offset + length);
  const nul = f.indexOf(0);
  return nul < 0 ? f : f.subarray(0, nul);
}

/** A numeric field: octal (space/NUL padded) or GNU base-256 (high bit set). */
function numeric(block: Buffer, offset: number, length: number, what: string): number {
  const f = block.subarray(offset, offset + length);
  if (f[0]! & 0x80) {
    if (f[0] === 0xff) fail(`tar header: negative ${what}`);
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) {
      v = v * 256 + f[i]!;
      if (!Number.isSafeInteger(v)) fail(`tar header: ${what} is too large`);
    }
    return v;
  }
  // octal digits, optionally surrounded by spaces and ended by NULs/spaces (parsed by hand: per-entry hot path)
  let i = 0;
  while (i < f.length && f[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < f.length; i++) {
    const c = f[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) fail(`tar header: ${what} field is not an octal number`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < f.length; i++) if (f[i] !== 0 && f[i] !== 0x20) fail(`tar header: ${what} field is not an octal number`);
  if (!Number.isSafeInteger(v)) fail(`tar header: ${what} is too large`);
  return digits === 0 ? 0 : v;
}

function checksumOk(block: Buffer): boolean {
  const want = numeric(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return want === unsigned || want === signed;
}

const isZero = (block: Buffer) => {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
};

/** PAX records "LEN key=value\n"; values are raw bytes (a path may be binary under hdrcharset=BINARY). */
function paxRecords(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break; // NUL padding after the last record
    const space = data.indexOf(0x20, at);
    if (space < 0) fail('malformed PAX header (a record without a length)');
    const lenText = data.subarray(at, space).toString('latin1');
    if (!/^[0-9]+$/.test(lenText)) fail('malformed PAX header (a record length that is not a number)');
    const len = Number(lenText);
    const end = at + len;
    if (len <= space - at + 1 || end > data.length || data[end - 1] !== 0x0a) fail('malformed PAX header (a record of the wrong length)');
    const rec = data.subarray(space + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) fail('malformed PAX header (a record without key=value)');
    const key = rec.subarray(0, eq).toString('latin1');
    out.set(key, rec.subarray(eq + 1));
    at = end;
  }
  return out;
}

function refuseSparse(pax: Map<string, Buffer> | undefined, name: string): void {
  if (!pax) return;
  for (const key of pax.keys()) {
    if (key.startsWith('GNU.sparse.')) {
      fail(`entry "${name}" is a sparse file (PAX ${key}); sparse files are not supported, the layer is refused`);
    }
  }
}

/**
 * The entries of a tar stream, in order. The consumer must read each body to its end or `skip()` it before
 * asking for the next entry. Malformed or refused input is an OperationError; errors of `source` pass through.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<{ header: Header; stream: TarEntryBody }, void, undefined> {
  const q = new ByteQueue(source[Symbol.asyncIterator]());
  let pax: Map<string, Buffer> | undefined;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;

  const special = async (size: number, what: string): Promise<Buffer> => {
    if (size > MAX_SPECIAL) fail(`${what} of ${size} bytes is larger than the ${MAX_SPECIAL} allowed`);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (!(await q.fill(padded))) fail(`unexpected end of data in a ${what}`);
    const data = Buffer.from(q.take(padded).subarray(0, size));
    return data;
  };

  for (;;) {
    if (q.buffered < BLOCK && !(await q.fill(BLOCK))) {
      if (q.buffered > 0) fail('unexpected end of data in a tar header');
      if (pax || longName || longLink) fail('unexpected end of data after an extended header');
      return; // no end-of-archive marker: Go's reader ends here too
    }
    let block = q.take(BLOCK);
    if (isZero(block)) {
      if (q.buffered < BLOCK && !(await q.fill(BLOCK))) {
        if (q.buffered > 0) fail('unexpected end of data after a zero block');
        return;
      }
      block = q.take(BLOCK);
      if (isZero(block)) {
        // End-of-archive: what follows is not part of the archive for any other reader. Read it unread, so
        // the blob is consumed to its end and its digest verified.
        await q.drain();
        return;
      }
      fail('a lone zero block inside the archive, followed by more entries (not a valid tar stream)');
    }
    if (!checksumOk(block)) fail('invalid tar header checksum (is the layer corrupt, or compressed twice?)');
    const magic = block.subarray(257, 263).toString('latin1');
    const version = block.subarray(263, 265).toString('latin1');
    const ustar = magic === 'ustar\0' && version === '00';
    const gnu = magic === 'ustar ' && version === ' \0';
    if (!ustar && !gnu) fail('invalid tar header: unknown format (neither ustar, PAX nor GNU)');
    const flag = String.fromCharCode(block[156]!);
    let size = numeric(block, 124, 12, 'size');

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      const what = flag === 'x' || flag === 'g' ? 'PAX header' : 'GNU long name';
      const data = await special(size, what);
      if (flag === 'x') {
        pax = new Map([...(pax ?? []), ...paxRecords(data)]);
      } else if (flag === 'g') {
        for (const key of paxRecords(data).keys()) {
          if (GLOBAL_REFUSED.test(key)) fail(`PAX global header sets "${key}" for the entries after it; refused (readers disagree on it)`);
        }
      } else if (flag === 'L') longName = field(data, 0, data.length);
      else longLink = field(data, 0, data.length);
      continue;
    }

    const rawName = pax?.get('path') ?? longName ?? (ustar && block[345] !== 0 ? Buffer.concat([field(block, 345, 155), Buffer.from('/'), field(block, 0, 100)]) : field(block, 0, 100));
    const rawLink = pax?.get('linkpath') ?? longLink ?? field(block, 157, 100);
    const name = decodeName(rawName, 'entry name');
    if (flag === 'S') fail(`entry "${name}" is a GNU sparse file; sparse files are not supported, the layer is refused`);
    refuseSparse(pax, name);
    const linkname = rawLink.length > 0 ? decodeName(rawLink, `link target of "${name}"`) : '';
    const paxSize = pax?.get('size');
    if (paxSize !== undefined) {
      const s = paxSize.toString('latin1');
      if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) fail(`entry "${name}": PAX size "${printableName(paxSize)}" is not a size`);
      size = Number(s);
    }
    let type: EntryType = TYPES[flag] ?? null;
    if (flag === '\0' && name.endsWith('/')) type = 'directory'; // pre-POSIX directories
    const dataSize = HEADER_ONLY.has(type) ? 0 : size;
    const paxObj: Record<string, string> | null = pax ? Object.fromEntries([...pax].map(([k, v]) => [k, v.toString('utf8')])) : null;
    pax = longName = longLink = undefined;

    const header: Header = {
      name,
      mode: numeric(block, 100, 8, 'mode'),
      uid: numeric(block, 108, 8, 'uid'),
      gid: numeric(block, 116, 8, 'gid'),
      size: dataSize,
      mtime: new Date(1000 * numeric(block, 136, 12, 'mtime')),
      type: type as Header['type'],
      linkname,
      uname: field(block, 265, 32).toString('utf8'),
      gname: field(block, 297, 32).toString('utf8'),
      devmajor: numeric(block, 329, 8, 'devmajor'),
      devminor: numeric(block, 337, 8, 'devminor'),
      pax: paxObj,
    };

    let remaining = dataSize;
    let state = 'new' as 'new' | 'reading' | 'done';
    const padding = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    const stream: TarEntryBody = {
      async *[Symbol.asyncIterator]() {
        if (state !== 'new') throw new Error('an entry body can be read only once');
        state = 'reading';
        while (remaining > 0) {
          if (q.buffered === 0 && !(await q.fill(1))) fail(`unexpected end of data in entry "${name}"`);
          const part = q.takeSome(remaining);
          remaining -= part.length;
          yield part;
        }
        state = 'done';
      },
      async skip() {
        if (state === 'done') return;
        state = 'reading';
        if (!(await q.skip(remaining))) fail(`unexpected end of data in entry "${name}"`);
        remaining = 0;
        state = 'done';
      },
    };
    yield { header, stream };
    if (state !== 'done') await stream.skip();
    if (padding > 0 && !(q.buffered >= padding ? q.skipBuffered(padding) : await q.skip(padding))) fail(`unexpected end of data after entry "${name}"`);
  }
}
