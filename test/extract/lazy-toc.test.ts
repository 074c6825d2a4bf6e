/**
 * The parts of a lazy pull that need no registry: which descriptors carry a usable TOC position, how a TOC is
 * proven (checksum, footer, size; zstd:chunked and eStargz), and how byte ranges are grouped into requests.
 */
import t from 'tap';
import crypto from 'node:crypto';
import { parseToc, tocLocation } from '../../src/image/lazy/zstd-chunked-toc.js';
import { coalesce } from '../../src/image/lazy/blob-ranges.js';
import zlib from 'node:zlib';
import { ESTARGZ_FOOTER_SIZE, estargzTocDigest, estargzTocOffset, parseEstargzToc } from '../../src/image/lazy/estargz-toc.js';
import { estargzTail, zstdChunkedToc } from '../helpers/zstd-chunked.js';

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

t.test('eStargz: the TOC digest from the annotation, the offset from the footer, the TOC proven by its digest', async (t) => {
  const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
  const a = Buffer.from('first file');
  const entries = [
    { type: 'dir', name: 'opt/', mode: 0o755 },
    { type: 'reg', name: 'opt/a', size: a.length, offset: 30, chunkDigest: sha(a) },
    { type: 'reg', name: 'opt/big', size: 20, offset: 80, chunkSize: 12, chunkDigest: sha(Buffer.from('x')) },
    { type: 'chunk', name: 'opt/big', offset: 120, chunkOffset: 12, chunkSize: 8, chunkDigest: sha(Buffer.from('y')) },
  ];
  const offset = 200;
  const { json, member, footer } = estargzTail({ version: 1, entries }, offset);
  t.equal(footer.length, ESTARGZ_FOOTER_SIZE, 'the footer is 51 bytes');
  t.same(zlib.gunzipSync(footer), Buffer.alloc(0), 'the footer is an empty gzip member');
  const size = offset + member.length + footer.length;
  const desc = (annotations: Record<string, string>, mediaType = GZIP) => ({ mediaType, digest: 'sha256:00', size, annotations });
  const digest = sha(json);
  t.equal(estargzTocDigest(desc({ 'containerd.io/snapshot/stargz/toc.digest': digest })), digest);
  t.equal(estargzTocDigest(desc({})), undefined, 'no annotation: not eStargz');
  t.equal(estargzTocDigest(desc({ 'containerd.io/snapshot/stargz/toc.digest': digest }, ZSTD)), undefined, 'not gzip');
  t.equal(estargzTocDigest(desc({ 'containerd.io/snapshot/stargz/toc.digest': 'md5:00' })), undefined, 'not a sha256');

  t.equal(estargzTocOffset(footer, size, 'L'), offset);
  for (const [i, why] of [[12, 'another subfield'], [20, 'not hex'], [37, 'no STARGZ'], [40, 'not an empty member']] as const) {
    const bad = Buffer.from(footer);
    bad[i] = 0x7a;
    t.throws(() => estargzTocOffset(bad, size, 'L'), /L: the eStargz footer is not valid/, why);
  }
  t.throws(() => estargzTocOffset(footer, offset + 10, 'L'), /footer is not valid/, 'an offset past the blob');

  const toc = parseEstargzToc(member, digest, offset, 'L');
  t.equal(toc.format, 'eStargz');
  t.same(toc.entries.map((e) => [e.name, e.type, e.offset, e.endOffset]),
    [['opt/', 'dir', undefined, undefined], ['opt/a', 'reg', 30, 80], ['opt/big', 'reg', 80, 120], ['opt/big', 'chunk', 120, 200]],
    'each piece ends where the next starts, the last where the TOC does');
  t.throws(() => parseEstargzToc(member, sha(Buffer.from('another toc')), offset, 'L'),
    /L: the eStargz table of contents does not match its digest in the manifest \(expected sha256:\w+, got sha256:\w+\)/);
  t.throws(() => parseEstargzToc(footer, digest, offset, 'L'), /is not a tar entry named stargz.index.json/);
  t.throws(() => parseEstargzToc(Buffer.from('not gzip'), digest, offset, 'L'), /does not decompress/);

  const without = estargzTail({ version: 1, entries: [{ type: 'reg', name: 'opt/a', size: 3, offset: 30 }] }, offset);
  t.throws(() => parseEstargzToc(without.member, sha(without.json), offset, 'L'), /eStargz table of contents: entry "opt\/a" has no chunkDigest/);
  const backwards = estargzTail({ version: 1, entries: [entries[2], entries[1]] }, offset);
  t.throws(() => parseEstargzToc(backwards.member, sha(backwards.json), offset, 'L'), /lists the data of "opt\/big" out of blob order/);
});
