// The guest's initramfs, checked on the host (no VM): what the guest will run must be kmod's modprobe, Node 24,
// and kmm-worker with its production dependencies only.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestKmods } from '../kmods/kmods.js';
import { appArchive, baseArchive, GUEST_IN_TREE_MODULES } from './initramfs.js';

/** path → symlink target ('' for other entries), from `busybox cpio -tv` */
function listCpio(file: string): Map<string, string> {
  const out = execFileSync('bash', ['-c', 'busybox cpio -tv < "$0" 2>/dev/null', file], {
    encoding: 'utf8', maxBuffer: 256 << 20,
  });
  const m = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) {
    const name = line.split(/\s+/).slice(5).join(' ');
    const [p, target] = name.split(' -> ');
    m.set(p!.replace(/^\.\//, ''), target ?? '');
  }
  return m;
}

t.test('base archive: kmod (not busybox) module tools, Node 24, in-tree modules with depmod output', async (t) => {
  const kmods = await ensureTestKmods();
  const base = baseArchive(kmods);
  const entries = listCpio(base);
  t.equal(entries.get('init'), '', '/init is there');
  for (const tool of ['modprobe', 'rmmod', 'insmod', 'modinfo', 'depmod', 'lsmod']) {
    t.equal(entries.get(`usr/sbin/${tool}`), '../bin/kmod', `${tool} is kmod's`);
    t.notOk(entries.has(`usr/bin/${tool}`), `no busybox ${tool} link`);
  }
  t.ok(entries.has('usr/bin/node') && entries.has('usr/bin/kmod'), 'node and kmod binaries');
  t.equal(entries.get('lib'), 'usr/lib', 'merged /usr: /lib is a link');
  const dep = execFileSync('bash', ['-c', `cd "$(mktemp -d)" && busybox cpio -id "usr/lib/modules/${kmods.kver}/modules.dep" < "$0" 2>/dev/null && cat usr/lib/modules/*/modules.dep`, base], { encoding: 'utf8' });
  for (const m of GUEST_IN_TREE_MODULES) t.match(dep, new RegExp(`/${m.replace('_', '[-_]')}\\.ko[^:]*:`), `modules.dep lists ${m}`);
  t.equal(baseArchive(kmods), base, 'cached: the same archive on the second call');
});

t.test('app archive: kmm-worker with production dependencies only', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmm-initramfs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'tree/opt'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'tree/opt/marker'), 'x');
  const app = appArchive(dir, { trees: { '/srv/shared': path.join(dir, 'tree') }, files: { '/etc/kmm/a.yaml': 'a: 1\n' } });
  const entries = listCpio(app);
  t.equal(entries.get('usr/local/bin/kmm-worker'), '../lib/kmm-worker/bin/kmm-worker.js');
  for (const f of ['bin/kmm-worker.js', 'dist/cli.js', 'package.json', 'node_modules/pino/package.json',
    'node_modules/commander/package.json', 'node_modules/undici/package.json']) {
    t.ok(entries.has(`usr/local/lib/kmm-worker/${f}`), `has ${f}`);
  }
  const names = [...entries.keys()];
  for (const dev of ['tap', 'typescript', 'node', '@types/node', '@tapjs/core']) {
    t.notOk(names.some((n) => n.startsWith(`usr/local/lib/kmm-worker/node_modules/${dev}/`)), `no dev package ${dev}`);
  }
  t.notOk(names.some((n) => /\.(d\.ts|map)$/.test(n)), 'no declarations or source maps');
  t.ok(entries.has('srv/shared/opt/marker') && entries.has('etc/kmm/a.yaml'), 'the test\'s trees and files');
  t.throws(() => appArchive(dir, { files: { '/lib/x': 'x' } }), /must be under/, 'nothing that would replace a base symlink');
});
