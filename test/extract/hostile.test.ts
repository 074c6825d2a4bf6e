import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as zlib from 'node:zlib';
import { pino } from 'pino';
import { extractImage } from '../../src/extract/extract-image.js';
import { OperationError } from '../../src/errors.js';
import { memoryImage, OCI_GZIP, OCI_TAR, tarOf, type TarEntry } from './fixtures.js';

/** A sandbox: target/ is extracted into, outside/ holds sentinels that must never change. */
async function sandbox(t: Test) {
  const base = await mkdtemp(path.join(os.tmpdir(), 'kmm-hostile-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const target = path.join(base, 'target');
  const outside = path.join(base, 'outside');
  await mkdir(target);
  await mkdir(path.join(outside, 'etc'), { recursive: true });
  await writeFile(path.join(outside, 'etc', 'passwd'), 'root:x:0:0\n');
  await writeFile(path.join(outside, 'secret'), 'do not touch\n');
  return { base, target, outside };
}

/** Every path under dir (not following links) with type, mode, link count and content hash. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = path.join(d, name);
      const st = await lstat(p);
      let what = '';
      if (st.isFile()) what = crypto.createHash('sha256').update(await readFile(p)).digest('hex');
      if (st.isSymbolicLink()) what = await readlink(p);
      out.push(`${path.relative(dir, p)} ${st.mode.toString(8)} ${st.nlink} ${what}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

function logger() {
  const lines: any[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

async function extractLayers(target: string, layers: TarEntry[][], gzip = false) {
  const { log, lines } = logger();
  const blobs = await Promise.all(layers.map((l) => tarOf(l)));
  const image = memoryImage(blobs.map((b) => (gzip ? { mediaType: OCI_GZIP, blob: zlib.gzipSync(b) } : { mediaType: OCI_TAR, blob: b })));
  const result = await extractImage(image, target, { selection: 'all', log });
  return { result, lines };
}

/** Runs a hostile case and asserts nothing outside the target changed, whatever the outcome. */
async function hostile(t: Test, layers: (o: string) => TarEntry[][], expect: 'reject' | 'ok', msg?: RegExp) {
  const box = await sandbox(t);
  const before = await snapshot(box.outside);
  const shadowBefore = await stat('/etc/shadow').catch(() => undefined);
  const run = extractLayers(box.target, layers(box.outside));
  if (expect === 'reject') await t.rejects(run, msg ? { constructor: OperationError, message: msg } : OperationError);
  else await run;
  t.same(await snapshot(box.outside), before, 'nothing outside the target changed');
  t.same(await readdir(box.base).then((a) => a.sort()), ['outside', 'target'], 'nothing new beside the target');
  const shadowAfter = await stat('/etc/shadow').catch(() => undefined);
  t.equal(shadowAfter?.nlink, shadowBefore?.nlink, '/etc/shadow has no new link');
  return box;
}

t.test('"../" names are refused', async (t) => {
  await hostile(t, () => [[{ name: '../escaped', body: 'x' }]], 'reject', /"\.\.\/escaped" climbs out/);
  await hostile(t, () => [[{ name: 'opt/../../escaped', body: 'x' }]], 'reject', /climbs out/);
});

t.test('absolute names land inside the target', async (t) => {
  const box = await hostile(t, () => [[{ name: '/etc/passwd', body: 'inside\n' }]], 'ok');
  t.equal(await readFile(path.join(box.target, 'etc', 'passwd'), 'utf8'), 'inside\n');
});

t.test('a symlink then a write through it is refused', async (t) => {
  await hostile(t, (o) => [[{ name: 'a', type: 'symlink', linkname: path.join(o, 'etc') }, { name: 'a/passwd', body: 'pwned' }]],
    'reject', /"a\/passwd" would be written through the symlink "a"/);
  // the same across two layers
  await hostile(t, (o) => [[{ name: 'a', type: 'symlink', linkname: path.join(o, 'etc') }], [{ name: 'a/passwd', body: 'pwned' }]],
    'reject', /through the symlink "a"/);
});

t.test('symlink chains and relative climbing symlinks are refused as parents', async (t) => {
  await hostile(t, (o) => [[
    { name: 'b', type: 'symlink', linkname: o },
    { name: 'a', type: 'symlink', linkname: 'b' },
    { name: 'a/secret', body: 'pwned' },
  ]], 'reject', /through the symlink "a"/);
  await hostile(t, () => [[
    { name: 'x/y/', type: 'directory' },
    { name: 'x/y/up', type: 'symlink', linkname: '../../../outside' },
    { name: 'x/y/up/secret', body: 'pwned' },
  ]], 'reject', /through the symlink "x\/y\/up"/);
});

t.test('symlinks themselves are kept verbatim', async (t) => {
  const box = await hostile(t, () => [[{ name: 'opt/lib/modules/6.1.0/host', type: 'symlink', linkname: '/lib/modules/6.1.0' }]], 'ok');
  t.equal(await readlink(path.join(box.target, 'opt/lib/modules/6.1.0/host')), '/lib/modules/6.1.0');
});

t.test('a hardlink to /etc/shadow is refused', async (t) => {
  await hostile(t, () => [[{ name: 'shadow', type: 'link', linkname: '/etc/shadow' }]], 'reject', /hardlink "shadow" points at "\/etc\/shadow"/);
  await hostile(t, () => [[{ name: 'shadow', type: 'link', linkname: '../../../../etc/shadow' }]], 'reject', /climbs out/);
});

t.test('a hardlink through a symlinked dir is refused', async (t) => {
  await hostile(t, (o) => [[{ name: 'd', type: 'symlink', linkname: o }, { name: 'h', type: 'link', linkname: 'd/secret' }]],
    'reject', /"h" goes through the symlink "d"/);
});

t.test('device nodes and fifos are dropped with a log line', async (t) => {
  const box = await sandbox(t);
  const { lines } = await extractLayers(box.target, [[
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
    { name: 'pipe', type: 'fifo' },
    { name: 'ok', body: 'fine' },
  ]]);
  t.same(await readdir(box.target).then((a) => a.sort()), ['ok']);
  const dropped = lines.filter((l) => /dropped/.test(l.msg)).map((l) => l.entry);
  t.same(dropped, ['dev/sda', 'dev/null', 'pipe']);
});

t.test('setuid, setgid and sticky bits are cleared', async (t) => {
  const box = await sandbox(t);
  await extractLayers(box.target, [[
    { name: 'bin/su', mode: 0o4755, body: 'x' },
    { name: 'bin/sg', mode: 0o2755, body: 'x' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ]]);
  t.equal((await stat(path.join(box.target, 'bin/su'))).mode & 0o7777, 0o755);
  t.equal((await stat(path.join(box.target, 'bin/sg'))).mode & 0o7000, 0);
  t.equal((await stat(path.join(box.target, 'tmp'))).mode & 0o7000, 0);
});

t.test('whiteouts that try to escape are refused', async (t) => {
  await hostile(t, () => [[{ name: 'x', body: '1' }], [{ name: '.wh...', body: '' }]], 'reject', /whiteout "\.wh\.\.\." names no file/);
  await hostile(t, () => [[{ name: 'x', body: '1' }], [{ name: '../.wh.outside', body: '' }]], 'reject', /climbs out/);
  await hostile(t, (o) => [[{ name: 'a', type: 'symlink', linkname: o }], [{ name: 'a/.wh.secret', body: '' }]],
    'reject', /"a\/\.wh\.secret" goes through the symlink "a"/);
  await hostile(t, (o) => [[{ name: 'a', type: 'symlink', linkname: o }], [{ name: 'a/.wh..wh..opq', body: '' }]],
    'reject', /goes through the symlink "a"/);
});

t.test('duplicate entries: the last one wins, and a hardlinked twin keeps its content', async (t) => {
  const box = await sandbox(t);
  await extractLayers(box.target, [[
    { name: 'f', body: 'first' },
    { name: 'twin', type: 'link', linkname: 'f' },
    { name: 'f', body: 'second' },
    { name: 'd', body: 'file' },
    { name: 'd/', type: 'directory' },
    { name: 'd/inner', body: 'in dir' },
  ]]);
  t.equal(await readFile(path.join(box.target, 'f'), 'utf8'), 'second');
  t.equal(await readFile(path.join(box.target, 'twin'), 'utf8'), 'first');
  t.equal(await readFile(path.join(box.target, 'd/inner'), 'utf8'), 'in dir');
});

t.test('a truncated gzip layer fails the extraction', async (t) => {
  const box = await sandbox(t);
  const gz = zlib.gzipSync(await tarOf([{ name: 'big', body: crypto.randomBytes(300_000) }]));
  const cut = gz.subarray(0, gz.length - 1000);
  // the descriptor matches the truncated bytes, so only decompression can notice
  const image = memoryImage([{ mediaType: OCI_GZIP, blob: cut }]);
  await t.rejects(extractImage(image, box.target, { selection: 'all', log: logger().log }), OperationError);
});

t.test('a blob that fails its digest fails the extraction', async (t) => {
  const box = await sandbox(t);
  const blob = await tarOf([{ name: 'f', body: 'good' }]);
  const served = await tarOf([{ name: 'f', body: 'evil' }]);
  const image = memoryImage([{ mediaType: OCI_TAR, blob, served }]);
  await t.rejects(extractImage(image, box.target, { selection: 'all', log: logger().log }), /failed verification/);
});

t.test('a tar bomb of many tiny files extracts in bounded time; skipped when not selected', async (t) => {
  const box = await sandbox(t);
  const entries: TarEntry[] = [];
  for (let i = 0; i < 5_000; i++) entries.push({ name: `bomb/${i % 100}/${i}`, body: 'x' });
  entries.push({ name: 'opt/lib/modules/6.1.0/m.ko', body: 'ko' });
  const blob = zlib.gzipSync(await tarOf(entries));
  const started = Date.now();
  const all = await extractImage(memoryImage([{ mediaType: OCI_GZIP, blob }]), box.target, { selection: 'all', log: logger().log });
  t.equal(all.files, 5_001);
  t.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  const sel = path.join(box.base, 'sel');
  await mkdir(sel);
  t.teardown(() => rm(sel, { recursive: true, force: true }));
  const some = await extractImage(memoryImage([{ mediaType: OCI_GZIP, blob }]), sel, {
    selection: { dirName: '/opt', kernelVersion: '6.1.0' }, log: logger().log,
  });
  t.equal(some.files, 1);
  t.same(await readdir(sel), ['opt']);
});
