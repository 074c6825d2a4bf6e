/** Test images' zstd:chunked tables of contents, written the way podman lays them out at the end of a layer. */
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
