/**
 * Parser differentials (issue 14, F2/F7/F8): hostile layers from test/helpers/hostile-layers.ts, extracted
 * here and by `umoci raw unpack` (Go's archive/tar). Where umoci extracts, the trees must be equal; where
 * this agent cannot represent the layer faithfully (sparse files, non-UTF-8 names), the layer is refused.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { pino } from 'pino';
import { extractImage } from '../../src/extract/extract-image.js';
import { OperationError } from '../../src/errors.js';
import {
  afterEndOfArchive, deepPath, entryBlocks, gnuSparse, loneZeroBlock, ociLayout, paxBody, paxNamed, paxSparse, rawTar,
} from '../helpers/hostile-layers.js';
import { layoutImage, memoryImage, OCI_GZIP, OCI_TAR } from './fixtures.js';

const run = promisify(execFile);
const log = pino({ level: 'silent' });

async function tmp(t: Test, prefix: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function diffTrees(a: string, b: string): Promise<string> {
  try {
    await run('diff', ['-r', '--no-dereference', a, b]);
    return '';
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

/** Extracts `layers` (raw tar) with this agent and with umoci; returns both roots (umoci's may be absent). */
async function both(t: Test, layers: Buffer[]) {
  const work = await tmp(t, 'kmm-diff-');
  const layout = path.join(work, 'layout');
  await ociLayout(layout, 'v1', layers);
  const reference = path.join(work, 'umoci');
  const umoci = await run('umoci', ['raw', 'unpack', '--image', `${layout}:v1`, reference]).then(() => 'ok' as const, (e) => String(e.stderr));
  const ours = path.join(work, 'ours');
  await mkdir(ours);
  const result = await extractImage(await layoutImage(layout, 'v1'), ours, { selection: 'all', log }).then(
    () => 'ok' as const,
    (e: unknown) => e,
  );
  return { reference, ours, umoci, result };
}

const file = (name: string, body = name) => ({ name, body });

t.test('F2: entries after the end-of-archive marker are not extracted, as by umoci', async (t) => {
  const layer = afterEndOfArchive(
    [{ name: 'opt/', flag: '5' }, file('opt/lib/modules/6.1.0/good.ko')],
    [file('opt/lib/modules/6.1.0/evil.ko'), file('opt/lib/modules/6.1.0/good.ko', 'replaced')],
  );
  const r = await both(t, [layer]);
  t.equal(r.umoci, 'ok', 'umoci unpacks it');
  t.equal(r.result, 'ok', 'the layer is accepted');
  t.same(await readdir(path.join(r.ours, 'opt/lib/modules/6.1.0')), ['good.ko'], 'nothing after the marker');
  t.equal(await diffTrees(r.reference, r.ours), '', "the tree equals umoci's");

  // the same through gzip, and with trailing garbage that is not even a tar header
  for (const tail of [rawTar([file('opt/evil.ko')]), Buffer.from('not a tar header at all'.repeat(40))]) {
    const dir = await tmp(t, 'kmm-eoa-');
    const blob = zlib.gzipSync(Buffer.concat([rawTar([file('opt/a.ko')]), tail]));
    await extractImage(memoryImage([{ mediaType: OCI_GZIP, blob }]), dir, { selection: 'all', log });
    t.same(await readdir(path.join(dir, 'opt')), ['a.ko']);
  }
});

t.test('F2: a blob whose digest fails is still refused when the tar ends early', async (t) => {
  const dir = await tmp(t, 'kmm-eoa-');
  const blob = Buffer.concat([rawTar([file('opt/a.ko')]), Buffer.alloc(4096)]);
  const served = Buffer.concat([rawTar([file('opt/a.ko')]), Buffer.alloc(4095), Buffer.from('!')]);
  await t.rejects(extractImage(memoryImage([{ mediaType: OCI_TAR, blob, served }]), dir, { selection: 'all', log }), /verification/);
});

t.test('F2: header-only types have no data section, and a lone zero block is refused, as by Go', async (t) => {
  // a symlink whose size field claims 512 bytes: Go reads the next block as the next header
  const hidden = entryBlocks(file('opt/hidden.ko'));
  const layer = Buffer.concat([
    entryBlocks({ name: 'opt/link', flag: '2', linkname: 'target', size: hidden.length }),
    hidden,
    rawTar([file('opt/after.ko')]),
  ]);
  const r = await both(t, [layer]);
  t.equal(r.umoci, 'ok');
  t.equal(r.result, 'ok');
  t.equal(await diffTrees(r.reference, r.ours), '', "the tree equals umoci's");
  t.same((await readdir(path.join(r.ours, 'opt'))).sort(), ['after.ko', 'hidden.ko', 'link']);

  const lone = await both(t, [loneZeroBlock([file('opt/a.ko')], [file('opt/b.ko')])]);
  t.not(lone.umoci, 'ok', 'umoci refuses a lone zero block');
  t.type(lone.result, OperationError, 'so do we');
  t.match(String(lone.result), /lone zero block/);
});

t.test('F2: a PAX global header that renames the entries after it is refused', async (t) => {
  const layer = rawTar([entryBlocks({ name: 'g', flag: 'g', body: paxBody({ path: 'opt/evil.ko' }) }), entryBlocks(file('opt/a.ko'))]);
  const dir = await tmp(t, 'kmm-g-');
  await t.rejects(extractImage(memoryImage([{ mediaType: OCI_TAR, blob: layer }]), dir, { selection: 'all', log }), {
    constructor: OperationError, message: /global header sets "path"/,
  });
  // harmless global keys (GNU tar writes mtime/comment) are fine
  const ok = rawTar([entryBlocks({ name: 'g', flag: 'g', body: paxBody({ comment: 'hi' }) }), entryBlocks(file('opt/a.ko'))]);
  await extractImage(memoryImage([{ mediaType: OCI_TAR, blob: ok }]), dir, { selection: 'all', log });
  t.same(await readdir(path.join(dir, 'opt')), ['a.ko']);
});

t.test('F7: PAX and GNU sparse files are refused, never written as their map', async (t) => {
  for (const [label, sparse] of [
    ['PAX 1.0', paxSparse('opt/lib/firmware/big.bin', 2 * 1024 ** 3)],
    ['GNU old-style', gnuSparse('opt/lib/firmware/big.bin', 2 * 1024 ** 3)],
    ['PAX 0.1', paxNamed('opt/big.bin', 'DATA', { 'GNU.sparse.map': '0,4', 'GNU.sparse.size': '4096' })],
  ] as const) {
    const dir = await tmp(t, 'kmm-sparse-');
    const blob = zlib.gzipSync(rawTar([{ name: 'opt/', flag: '5' }, sparse]));
    await t.rejects(extractImage(memoryImage([{ mediaType: OCI_GZIP, blob }]), dir, { selection: 'all', log }), {
      constructor: OperationError, message: /sparse file.*not supported/,
    }, label);
    const left = await readdir(path.join(dir, 'opt')).catch(() => []);
    t.notOk(left.some((n) => n.startsWith('GNUSparseFile')), `${label}: no map written as a file`);
  }
});

t.test('F8: names that are not UTF-8 are refused, never merged', async (t) => {
  const ff = Buffer.from('opt/x\xff.ko', 'latin1');
  const fe = Buffer.from('opt/x\xfe.ko', 'latin1');
  for (const [label, layer] of [
    ['ustar names', rawTar([{ name: ff, body: 'one' }, { name: fe, body: 'two' }])],
    ['PAX names', rawTar([paxNamed(ff, 'one'), paxNamed(fe, 'two')])],
    ['GNU long names', rawTar([entryBlocks({ name: '././@LongLink', flag: 'L', body: ff }), entryBlocks({ name: 'x', body: 'one' })])],
    ['link target', rawTar([{ name: 'opt/l', flag: '2', linkname: fe }])],
  ] as const) {
    const dir = await tmp(t, 'kmm-utf8-');
    await t.rejects(extractImage(memoryImage([{ mediaType: OCI_TAR, blob: layer }]), dir, { selection: 'all', log }), {
      constructor: OperationError, message: /x\\xf[ef]\.ko" is not valid UTF-8/,
    }, label);
  }
  // valid UTF-8 beyond ASCII is kept byte for byte
  const dir = await tmp(t, 'kmm-utf8-');
  await extractImage(memoryImage([{ mediaType: OCI_TAR, blob: rawTar([file('opt/é.ko'), file('opt/e\u0301.ko')]) }]), dir, { selection: 'all', log });
  t.same((await readdir(path.join(dir, 'opt'))).sort(), ['e\u0301.ko', 'é.ko']);
});

t.test('deep paths from PAX names equal umoci', async (t) => {
  const r = await both(t, [rawTar([paxNamed(deepPath(120, 'm.ko'), 'deep'), paxNamed(`opt/${'n'.repeat(250)}.ko`, 'long')])]);
  t.equal(r.umoci, 'ok');
  t.equal(r.result, 'ok');
  t.equal(await diffTrees(r.reference, r.ours), '', "the tree equals umoci's");
});
