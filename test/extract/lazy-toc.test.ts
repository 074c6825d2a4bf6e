/**
 * The parts of a lazy pull that need no registry: which descriptors carry a usable TOC position, how a TOC is
 * proven (checksum, footer, size), and how byte ranges are grouped into requests.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { parseToc, tocLocation } from '../../src/image/lazy/zstd-chunked-toc.js';
import { coalesce } from '../../src/image/lazy/blob-ranges.js';
import { zstdChunkedToc } from '../helpers/zstd-chunked.js';

const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

function tocBytes(entries: unknown[], offset: number) {
  const { json, frame, footer } = zstdChunkedToc({ version: 1, entries }, offset);
  return { frame, footer, json, loc: { offset, length: frame.length, uncompressedLength: json.length, checksum: sha(frame) } };
}

t.test('tocLocation reads both annotation spellings and refuses what does not fit the blob', async (t) => {
  const sum = sha(Buffer.from('x'));
  const desc = (annotations: Record<string, string>, mediaType = ZSTD) => ({ mediaType, digest: 'sha256:00', size: 1000, annotations });
  t.same(tocLocation(desc({ 'io.containers.zstd-chunked.manifest-position': '900:52:300:1', 'io.containers.zstd-chunked.manifest-checksum': sum })),
    { offset: 900, length: 52, uncompressedLength: 300, checksum: sum });
  t.same(tocLocation(desc({ 'io.github.containers.zstd-chunked.manifest-position': '10:20:30:1',
    'io.github.containers.zstd-chunked.manifest-checksum': sum }))?.offset, 10);
  t.equal(tocLocation(desc({})), undefined, 'no annotations: no TOC');
  t.equal(tocLocation(desc({ 'io.containers.zstd-chunked.manifest-position': '990:52:300:1',
    'io.containers.zstd-chunked.manifest-checksum': sum })), undefined, 'past the end of the blob');
  t.equal(tocLocation(desc({ 'io.containers.zstd-chunked.manifest-position': '900:52:300:2',
    'io.containers.zstd-chunked.manifest-checksum': sum })), undefined, 'an unknown TOC type');
  t.equal(tocLocation(desc({ 'io.containers.zstd-chunked.manifest-position': '900:52:300:1',
    'io.containers.zstd-chunked.manifest-checksum': sum }, 'application/vnd.oci.image.layer.v1.tar+gzip')), undefined, 'not zstd');
});

t.test('parseToc proves the TOC by its checksum and its footer', async (t) => {
  const entries = [{ type: 'reg', name: 'a', size: 1, digest: sha(Buffer.from('a')), offset: 5, endOffset: 9 }];
  const { frame, footer, loc } = tocBytes(entries, 100);
  t.same(parseToc(Buffer.concat([frame, footer]), loc, 'L').entries, entries);
  t.same(parseToc(frame, loc, 'L').entries, entries, 'without the footer');
  t.throws(() => parseToc(Buffer.concat([frame, footer]), { ...loc, checksum: sha(Buffer.from('y')) }, 'L'),
    /L: the zstd:chunked table of contents does not match its checksum in the manifest/);
  const badFooter = Buffer.from(footer);
  badFooter.writeBigUInt64LE(101n, 8);
  t.throws(() => parseToc(Buffer.concat([frame, badFooter]), loc, 'L'), /footer does not agree/);
  t.throws(() => parseToc(frame, { ...loc, uncompressedLength: loc.uncompressedLength + 1 }, 'L'),
    /table of contents is \d+ bytes, the manifest says/);
  const noDigest = tocBytes([{ type: 'reg', name: 'a', size: 1, offset: 5, endOffset: 9 }], 0);
  t.throws(() => parseToc(noDigest.frame, noDigest.loc, 'L'), /entry "a" has no sha256 digest/);
});

t.test('coalesce groups ranges closer than the gap, up to the request size', async (t) => {
  const r = (start: number, end: number) => ({ start, end });
  t.same(coalesce([r(0, 10), r(15, 20), r(100, 110)], 10, 1000), [r(0, 20), r(100, 110)]);
  t.same(coalesce([r(0, 10), r(15, 20)], 4, 1000), [r(0, 10), r(15, 20)], 'a gap larger than allowed');
  t.same(coalesce([r(0, 10), r(15, 20), r(25, 30)], 10, 20), [r(0, 20), r(25, 30)], 'the request size caps a group');
});
