/**
 * A generator of hostile tar layers, written block by block so that anything a real tar writer would refuse
 * can be produced: entries after the end-of-archive marker, lone zero blocks, PAX and GNU sparse files,
 * non-UTF-8 names, header-only types with a data section, PAX global headers that rename entries, deep paths
 * and archives of 10^5 files. `ociLayout` wraps raw layers in an OCI layout (for `umoci raw unpack`).
 */
import crypto from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const BLOCK = 512;

export type RawName = string | Buffer;

export interface RawEntry {
  name: RawName;
  /** the type flag character: '0' file, '2' symlink, '5' dir, 'x' PAX, 'g' PAX global, 'L' GNU long name, 'S' GNU sparse... */
  flag?: string;
  body?: string | Buffer;
  /** the size field; default body's length (set it to lie) */
  size?: number;
  mode?: number;
  linkname?: RawName;
  /** 'gnu' writes the old GNU magic (needed by 'S' entries) */
  format?: 'ustar' | 'gnu';
}

const bytes = (v: RawName) => (Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));

function octal(buf: Buffer, offset: number, length: number, value: number) {
  buf.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'latin1');
}

/** One header block, with a correct checksum. */
export function headerBlock(e: RawEntry): Buffer {
  const b = Buffer.alloc(BLOCK);
  const name = bytes(e.name);
  if (name.length > 100) throw new Error('headerBlock: name longer than 100 bytes; use a PAX or GNU long name');
  name.copy(b, 0);
  const body = e.body === undefined ? Buffer.alloc(0) : bytes(e.body);
  octal(b, 100, 8, e.mode ?? (e.flag === '5' ? 0o755 : 0o644));
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, e.size ?? body.length);
  octal(b, 136, 12, 1_700_000_000);
  b.write(e.flag ?? '0', 156, 1, 'latin1');
  if (e.linkname !== undefined) bytes(e.linkname).copy(b, 157, 0, 100);
  if (e.format === 'gnu') b.write('ustar  \0', 257, 8, 'latin1');
  else b.write('ustar\x0000', 257, 8, 'latin1');
  b.write(' '.repeat(8), 148, 8, 'latin1');
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

const pad = (n: number) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** Header + body + padding. */
export function entryBlocks(e: RawEntry): Buffer {
  const body = e.body === undefined ? Buffer.alloc(0) : bytes(e.body);
  return Buffer.concat([headerBlock(e), body, pad(body.length)]);
}

/** PAX records as an extended header body. */
export function paxBody(records: Record<string, RawName>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const rec = Buffer.concat([Buffer.from(` ${k}=`), bytes(v), Buffer.from('\n')]);
    let len = rec.length + 1;
    while (String(len).length + rec.length !== len) len++;
    parts.push(Buffer.concat([Buffer.from(String(len)), rec]));
  }
  return Buffer.concat(parts);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** A tar stream of the given entries, then the end-of-archive marker (unless `end: false`). */
export function rawTar(entries: (RawEntry | Buffer)[], opts: { end?: boolean } = {}): Buffer {
  const parts = entries.map((e) => (Buffer.isBuffer(e) ? e : entryBlocks(e)));
  if (opts.end !== false) parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

// ---- the hostile cases -------------------------------------------------------------------------------------

/** `visible` entries, the end-of-archive marker, then `hidden` entries that no other reader sees. */
export function afterEndOfArchive(visible: RawEntry[], hidden: RawEntry[]): Buffer {
  return Buffer.concat([rawTar(visible), rawTar(hidden)]);
}

/** A single zero block between two entries (GNU tar warns "A lone zero block", Go's reader fails). */
export function loneZeroBlock(before: RawEntry[], after: RawEntry[]): Buffer {
  return Buffer.concat([rawTar(before, { end: false }), Buffer.alloc(BLOCK), rawTar(after)]);
}

/**
 * A PAX 1.0 sparse file as GNU tar writes it (`tar --sparse --format=pax`): the header names
 * `GNUSparseFile.0/<name>`, the data starts with the sparse map. `realSize` is the file's apparent size.
 */
export function paxSparse(name: string, realSize: number, data = Buffer.from('DATA')): Buffer {
  const map = Buffer.from(`1\n${realSize - data.length}\n${data.length}\n`);
  const body = Buffer.concat([map, pad(map.length), data]);
  const base = name.split('/').pop()!;
  const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/') + 1) : '';
  const pax = paxBody({
    'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': name, 'GNU.sparse.realsize': String(realSize),
  });
  return Buffer.concat([
    entryBlocks({ name: `${dir}GNUSparseFile.0/${base}`.slice(-100), flag: 'x', body: pax }),
    entryBlocks({ name: `${dir}GNUSparseFile.0/${base}`, body }),
  ]);
}

/** An old-style GNU sparse entry (type 'S'): the map lives in the header, the data is the stored chunks. */
export function gnuSparse(name: string, realSize: number, data = Buffer.from('DATA')): Buffer {
  const h = headerBlock({ name, flag: 'S', body: data, format: 'gnu' });
  // one sparse record: offset realSize - data.length, numbytes data.length; realsize at 483
  octal(h, 386, 12, realSize - data.length);
  octal(h, 398, 12, data.length);
  octal(h, 483, 12, realSize);
  h.write(' '.repeat(8), 148, 8, 'latin1');
  let sum = 0;
  for (const x of h) sum += x;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return Buffer.concat([h, data, pad(data.length)]);
}

/** An entry whose name comes from a PAX record, so it can be any bytes and any length. */
export function paxNamed(name: RawName, body: string | Buffer = 'x', extra: Record<string, RawName> = {}): Buffer {
  return Buffer.concat([
    entryBlocks({ name: 'PaxHeaders/x', flag: 'x', body: paxBody({ path: name, ...extra }) }),
    entryBlocks({ name: 'placeholder', body }),
  ]);
}

/** A path `depth` directories deep (each component `seg`), ending in `leaf`. */
export function deepPath(depth: number, leaf = 'm.ko', seg = 'd'): string {
  return `${Array.from({ length: depth }, () => seg).join('/')}/${leaf}`;
}

/** `count` tiny files under `dir/`, spread over `count / perDir` directories. */
export function manyFiles(count: number, dir = 'bomb', perDir = 1000): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) parts.push(entryBlocks({ name: `${dir}/${Math.floor(i / perDir)}/${i}`, body: 'x' }));
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/**
 * An OCI layout at `dir` tagged `tag` whose layers are the given uncompressed tar blobs, for comparing with
 * `umoci raw unpack`.
 */
export async function ociLayout(dir: string, tag: string, layers: Buffer[]): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (data: Buffer) => {
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    await writeFile(path.join(dir, 'blobs', 'sha256', hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const diffIds = layers.map((l) => `sha256:${crypto.createHash('sha256').update(l).digest('hex')}`);
  const config = await put(Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, config: {},
  })));
  const layerDescs = [];
  for (const l of layers) layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...(await put(l)) });
  const manifest = await put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: layerDescs,
  })));
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest,
      annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}
