import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { acquireLock, tryLock } from '../../src/store/lock.js';
import { pruneImages } from '../../src/store/inventory.js';
import { pullImage } from '../../src/store/pull.js';
import { buildLayout } from '../helpers/images.js';

const log = pino({ level: 'silent' });
const work = await mkdtemp(path.join(os.tmpdir(), 'kmm-lock-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const holder = (pid: number) => JSON.stringify({ pid, pidns: readlinkSync('/proc/self/ns/pid'), host: os.hostname(), since: new Date().toISOString() });
/** a pid that surely belongs to no process any more */
const deadPid = () => spawnSync('true').pid!;

t.test('a lock whose holder died is taken over at once; a live one is waited for', async (t) => {
  const lock = path.join(work, 'a.lock');
  await writeFile(lock, holder(deadPid()));
  const t0 = Date.now();
  const held = await acquireLock(lock, { log, what: 'x' });
  t.ok(Date.now() - t0 < 1000, 'no waiting for a dead holder');
  t.equal(await tryLock(lock, { log }), undefined, 'a live holder (this process) keeps it');
  let got = false;
  const waiter = acquireLock(lock, { log, what: 'x', pollMs: 20 }).then((l) => ((got = true), l));
  await new Promise((r) => setTimeout(r, 150));
  t.equal(got, false, 'the second taker waits');
  await held.release();
  const second = await waiter;
  t.equal(got, true, 'and gets it once released');
  await second.release();
  t.same(await readdir(work), [], 'no lock files left');
});

t.test('what a takeover killed midway moved aside is removed by the next holder; other files stay', async (t) => {
  const dir = await mkdtemp(path.join(work, 'debris-'));
  const lock = path.join(dir, 'c.lock');
  await writeFile(`${lock}.stale.4242.1700000000000`, holder(deadPid()));
  await writeFile(path.join(dir, 'other.lock.stale.1.2'), 'not ours');
  const held = await acquireLock(lock, { log, what: 'x' });
  t.same((await readdir(dir)).sort(), ['c.lock', 'other.lock.stale.1.2']);
  await held.release();
});

t.test('a lock from another pid namespace is stale only when its heartbeat stopped', async (t) => {
  const lock = path.join(work, 'b.lock');
  await writeFile(lock, JSON.stringify({ pid: 1, pidns: 'pid:[1]', host: 'elsewhere', since: '' }));
  t.equal(await tryLock(lock, { log, staleMs: 5_000 }), undefined, 'fresh heartbeat: kept');
  const old = new Date(Date.now() - 10_000);
  await utimes(lock, old, old);
  const l = await tryLock(lock, { log, staleMs: 5_000 });
  t.ok(l, 'stopped heartbeat: taken over');
  await l!.release();
});

t.test('prune leaves an entry alone while a pull holds its lock', async (t) => {
  const img = await buildLayout({ dir: path.join(work, 'layout'), tag: 'v1', layers: [{ 'opt/lib/modules/6.1.0/a.ko': 'a' }] });
  const images = path.join(work, 'images');
  const pulled = await pullImage(img.ref, { imagesDir: images, policy: 'IfNotPresent', selection: 'all', log });
  const [key] = await readdir(path.join(images, 'entries'));
  const lockFile = path.join(images, 'locks', `${key}.lock`);
  await writeFile(lockFile, holder(process.pid));
  t.same(await pruneImages(images, { olderThanMs: 0, log }), [], 'kept while locked');
  await rm(lockFile);
  const removed = await pruneImages(images, { olderThanMs: 0, log });
  t.same(removed.map((r) => [r.root, r.reason]), [[pulled.root, 'unused']]);
  t.same(await readdir(path.join(images, 'entries')), []);
  t.same(await readdir(path.join(images, 'locks')), []);
});
