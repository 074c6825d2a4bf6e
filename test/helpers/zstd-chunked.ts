/** Test images' zstd:chunked and eStargz tables of contents, written the way their producers lay them out at the end of a layer. */
import zlib from 'node:zlib';

/**
 * The TOC as a zstd frame plus the 48-byte footer (a skippable frame: offset, compressed and uncompressed
 * length of the TOC, manifest type 1, the "GnUlInUx" magic) for a TOC that starts at `offset` in the blob.
 */
export function zstdChunkedToc(toc: unknown, offset: number): { json: Buffer; frame: Buffer; footer: Buffer } {
  const json = Buffer.from(JSON.stringify(toc));
  const frame = zlib.zstdCompressSync(json);
  const footer = Buffer.alloc(48);
  footer.writeUInt32LE(0x184d2a50, 0);
  footer.writeUInt32LE(40, 4);
  footer.writeBigUInt64LE(BigInt(offset), 8);
  footer.writeBigUInt64LE(BigInt(frame.length), 16);
  footer.writeBigUInt64LE(BigInt(json.length), 24);
  footer.writeBigUInt64LE(1n, 32);
  Buffer.from('GnUlInUx').copy(footer, 40);
  return { json, frame, footer };
}

/**
 * The end of an eStargz blob for a TOC that starts at `offset`: the TOC as a gzip member holding the tar entry
 * `stargz.index.json` (then the tar's end blocks), and the 51-byte footer (an empty gzip member whose extra field
 * says `%016xSTARGZ`), laid out as the estargz format document of Debian's stargz-snapshotter describes them.
 */
export function estargzTail(toc: unknown, offset: number): { json: Buffer; member: Buffer; footer: Buffer } {
  const json = Buffer.from(JSON.stringify(toc));
  const header = Buffer.alloc(512);
  header.write('stargz.index.json', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${json.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('0', 156);
  header.write('ustar\0' + '00', 257);
  header.write('        ', 148);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padded = Buffer.alloc(Math.ceil(json.length / 512) * 512);
  json.copy(padded);
  const member = zlib.gzipSync(Buffer.concat([header, padded, Buffer.alloc(1024)]));
  const footer = Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 26, 0]),
    Buffer.from(`SG\x16\0${offset.toString(16).padStart(16, '0')}STARGZ`, 'latin1'),
    Buffer.from([1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
  ]);
  return { json, member, footer };
}
