import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
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

t.test('what a takeover or a lock creation killed midway left is removed by the next holder; other files stay', async (t) => {
  const dir = await mkdtemp(path.join(work, 'debris-'));
  const lock = path.join(dir, 'c.lock');
  await writeFile(`${lock}.stale.4242.1700000000000`, holder(deadPid()));
  const dead = deadPid();
  await writeFile(`${lock}.new.${dead}.0a1b2c3d`, holder(dead));
  await writeFile(path.join(dir, 'other.lock.stale.1.2'), 'not ours');
  const held = await acquireLock(lock, { log, what: 'x' });
  t.same((await readdir(dir)).sort(), ['c.lock', 'other.lock.stale.1.2']);
  await held.release();
});

t.test('a holder SIGKILLed at any point of taking or releasing the lock never makes the next taker wait', async (t) => {
  const dir = await mkdtemp(path.join(work, 'killed-'));
  const lock = path.join(dir, 'k.lock');
  const lockModule = path.resolve(import.meta.dirname, '../../dist/store/lock.js');
  // the child takes and drops the lock as fast as it can, so a random kill lands anywhere in those steps
  const child = `
    const { acquireLock } = await import(${JSON.stringify(lockModule)});
    const log = { info() {}, warn() {} };
    process.stdout.write('ready\\n');
    for (;;) await (await acquireLock(${JSON.stringify(lock)}, { log, what: 'x' })).release();`;
  const slow: string[] = [];
  for (let i = 0; i < 25; i++) {
    const p = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(p.stdout!, 'data');
    await new Promise((r) => setTimeout(r, Math.random() * 20));
    p.kill('SIGKILL');
    await once(p, 'exit');
    const t0 = Date.now();
    const held = await acquireLock(lock, { log, what: 'x' });
    const waited = Date.now() - t0;
    if (waited > 2000) slow.push(`run ${i}: ${waited} ms`);
    await held.release();
  }
  t.same(slow, [], 'no run waited for the heartbeat window of a killed holder');
  t.same(await readdir(dir), [], 'no lock, draft or aside file left');
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

t.test('a pull that finds the entry complete clears the lock its killed writer left, and only a dead one', async (t) => {
  // the window test/store/concurrency.test.ts's random kills hit now and then: the writer renamed its entry
  // into place and was killed before it wrote the reference and released the lock
  const img = await buildLayout({ dir: path.join(work, 'layout-left'), tag: 'v1', layers: [{ 'opt/lib/modules/6.1.0/a.ko': 'a' }] });
  const images = path.join(work, 'images-left');
  const first = await pullImage(img.ref, { imagesDir: images, policy: 'IfNotPresent', selection: 'all', log });
  const [key] = await readdir(path.join(images, 'entries'));
  const lockFile = path.join(images, 'locks', `${key}.lock`);
  await rm(path.join(images, 'refs'), { recursive: true });
  await writeFile(lockFile, holder(deadPid()));
  const again = await pullImage(img.ref, { imagesDir: images, policy: 'IfNotPresent', selection: 'all', log });
  t.same([again.fromCache, again.root], [true, first.root], 'the complete entry is used');
  t.same(await readdir(path.join(images, 'locks')), [], 'the dead writer\'s lock is gone');

  await rm(path.join(images, 'refs'), { recursive: true });
  await writeFile(lockFile, holder(process.pid));
  await pullImage(img.ref, { imagesDir: images, policy: 'IfNotPresent', selection: 'all', log });
  t.same(await readdir(path.join(images, 'locks')), [`${key}.lock`], 'a live holder keeps its lock');
  await rm(lockFile);
});
