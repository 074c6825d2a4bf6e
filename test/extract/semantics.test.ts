import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { extractImage } from '../../src/extract/extract-image.js';
import { buildLayout } from '../helpers/images.js';
import { layoutImage, memoryImage, OCI_TAR, OCI_ZSTD, tarOf } from './fixtures.js';
import * as zlib from 'node:zlib';

const run = promisify(execFile);
const log = pino({ level: 'silent' });
const KVER = '6.1.0-test';

async function tmp(t: { teardown(f: () => unknown): void }, prefix: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `diff -r --no-dereference`: empty output means identical trees (symlinks compared as links). */
async function diffTrees(a: string, b: string): Promise<string> {
  try {
    await run('diff', ['-r', '--no-dereference', a, b]);
    return '';
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

t.test('the extracted tree equals umoci raw unpack of the same image (gzip and zstd layers)', async (t) => {
  const work = await tmp(t, 'kmm-sem-');
  const m = `opt/lib/modules/${KVER}`;
  const img = await buildLayout({
    dir: path.join(work, 'layout'),
    tag: 'v1',
    layers: [
      {
        [`${m}/a.ko`]: '\x7fELF-a\n',
        [`${m}/b.ko`]: Buffer.alloc(200_000, 7),
        [`${m}/modules.dep`]: `/lib/modules/${KVER}/b.ko: /lib/modules/${KVER}/a.ko\n/lib/modules/${KVER}/a.ko:\n`,
        [`${m}/host`]: { symlink: `/lib/modules/${KVER}` },
        [`${m}/extra/`]: { dir: true },
        'opt/lib/modules/5.10.0-old/old.ko': 'old',
        'firmware/vendor/fw.bin': Buffer.alloc(300_000, 1),
        'firmware/README': 'readme',
        'firmware/old': 'a file first',
        'usr/bin/tool': 'not selected',
      },
      {
        'firmware/README': { whiteout: true },
        [`${m}/b.ko`]: 'replaced in layer 2',
        'firmware/old': { whiteout: true }, // (the helper needs the file gone before it makes the dir)
        'firmware/old/new.bin': 'the file became a dir',
        'usr/bin/tool': { whiteout: true },
      },
      {
        [`${m}/extra`]: 'the dir became a file',
        [`${m}/a.ko`]: { whiteout: true },
      },
    ],
  });
  const reference = path.join(work, 'umoci');
  await run('umoci', ['raw', 'unpack', '--image', `${img.dir}:v1`, reference]);

  const zstdLayout = path.join(work, 'zstd');
  await run('skopeo', ['copy', '--dest-compress-format', 'zstd', `oci:${img.dir}:v1`, `oci:${zstdLayout}:v1`]);

  for (const [label, dir] of [['gzip', img.dir], ['zstd', zstdLayout]] as const) {
    const image = await layoutImage(dir, 'v1');
    if (label === 'zstd') t.ok(image.layers.every((l) => l.mediaType === OCI_ZSTD), 'skopeo wrote zstd layers');

    const all = path.join(work, `all-${label}`);
    await mkdir(all);
    const res = await extractImage(image, all, { selection: 'all', log });
    t.equal(await diffTrees(reference, all), '', `${label}: whole image equals umoci's`);
    t.equal(res.files, 6, `${label}: counts the final regular files`);

    const sel = path.join(work, `sel-${label}`);
    await mkdir(sel);
    await extractImage(image, sel, { selection: { dirName: '/opt', kernelVersion: KVER, firmwarePath: '/firmware' }, log });
    t.same((await readdir(sel)).sort(), ['firmware', 'opt'], `${label}: only the selected top dirs`);
    t.same(await readdir(path.join(sel, 'opt/lib/modules')), [KVER], `${label}: only the selected kernel`);
    t.equal(await diffTrees(path.join(reference, m), path.join(sel, m)), '', `${label}: modules equal umoci's`);
    t.equal(await diffTrees(path.join(reference, 'firmware'), path.join(sel, 'firmware')), '', `${label}: firmware equals umoci's`);
  }
  // spot checks a user would make
  const sel = path.join(work, 'sel-gzip');
  t.equal(await readlink(path.join(sel, m, 'host')), `/lib/modules/${KVER}`);
  t.equal(await readFile(path.join(sel, m, 'b.ko'), 'utf8'), 'replaced in layer 2');
  t.equal(await readFile(path.join(sel, m, 'extra'), 'utf8'), 'the dir became a file');
  t.rejects(stat(path.join(sel, m, 'a.ko')), { code: 'ENOENT' }, 'whited-out module is gone');
  t.rejects(stat(path.join(sel, 'firmware/README')), { code: 'ENOENT' });
});

t.test('opaque directories, hardlinks to earlier layers, whole-dir whiteouts', async (t) => {
  const target = await tmp(t, 'kmm-opq-');
  const layer = async (entries: Parameters<typeof tarOf>[0]) => ({ mediaType: OCI_TAR, blob: await tarOf(entries) });
  const image = memoryImage([
    await layer([
      { name: 'fw/', type: 'directory' },
      { name: 'fw/a.bin', body: 'a' },
      { name: 'fw/sub/b.bin', body: 'b' },
      { name: 'gone/x', body: 'x' },
      { name: 'base', body: 'shared inode' },
    ]),
    await layer([
      { name: 'fw/c.bin', body: 'c' }, // before the marker: opaque must not hide entries of its own layer
      { name: 'fw/.wh..wh..opq', body: '' },
      { name: 'fw/sub/d.bin', body: 'd' },
      { name: '.wh.gone', body: '' },
      { name: 'link-to-base', type: 'link', linkname: 'base' },
    ]),
  ]);
  await extractImage(image, target, { selection: 'all', log });
  t.same((await readdir(path.join(target, 'fw'))).sort(), ['c.bin', 'sub']);
  t.same(await readdir(path.join(target, 'fw/sub')), ['d.bin'], 'lower content of a re-used subdir is hidden too');
  t.same((await readdir(target)).sort(), ['base', 'fw', 'link-to-base']);
  const [a, b] = await Promise.all([stat(path.join(target, 'base')), stat(path.join(target, 'link-to-base'))]);
  t.equal(a.ino, b.ino, 'hardlink shares the inode');
});

t.test('a whiteout of a selected dir ancestor removes the selection', async (t) => {
  const target = await tmp(t, 'kmm-anc-');
  const image = memoryImage([
    { mediaType: OCI_TAR, blob: await tarOf([{ name: `opt/lib/modules/${KVER}/m.ko`, body: 'm' }]) },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', blob: zlib.gzipSync(await tarOf([{ name: '.wh.opt', body: '' }])) },
  ]);
  const res = await extractImage(image, target, { selection: { dirName: '/opt', kernelVersion: KVER }, log });
  t.equal(res.files, 0);
  t.same(await readdir(target), []);
});
