/**
 * A lock file per cache entry, so that agents pulling the same image at once download it once. The lock only
 * saves work: correctness never depends on it (entries are renamed into place and the first rename wins).
 *
 * Stale-lock recovery: the holder writes its pid and pid namespace and refreshes the file's mtime every few
 * seconds. A lock whose holder is a dead pid of our own pid namespace is stale at once; any other lock is
 * stale when its heartbeat stopped (a holder in another container, a reused pid).
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { link, lstat, readdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';

export interface LockOptions {
  log: Logger;
  signal?: AbortSignal;
  /** what is locked, for the waiting message */
  what: string;
  heartbeatMs?: number;
  staleMs?: number;
  pollMs?: number;
}

interface Holder {
  pid: number;
  pidns: string;
  host: string;
  since: string;
}

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return 'unknown';
  }
}

const me = (): Holder => ({ pid: process.pid, pidns: pidNamespace(), host: os.hostname(), since: new Date().toISOString() });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

/** Why the lock at `path` may be taken over, or undefined while its holder looks alive. */
async function staleReason(path: string, staleMs: number): Promise<{ reason: string; ino: number } | undefined> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return undefined;
  const holder = await readHolder(path);
  const self = me();
  if (holder && holder.pidns === self.pidns && holder.host === self.host && !alive(holder.pid)) {
    return { reason: `holder pid ${holder.pid} is gone`, ino: st.ino };
  }
  // A lock file caught half-written by a killed holder has no content: its age decides, like any other.
  const age = Date.now() - st.mtimeMs;
  if (age > staleMs) return { reason: `no heartbeat for ${Math.round(age / 1000)} s`, ino: st.ino };
  return undefined;
}

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Creates the lock file naming this process; false when it exists already. The content is written to a private
 * name first and hard-linked into place, so a lock file never exists without its holder in it: a holder killed
 * between create and write would otherwise leave an empty lock that only the 30 s heartbeat rule could clear.
 */
async function createLockFile(path: string): Promise<boolean> {
  // the random part keeps apart two agents with the same pid in different pid namespaces sharing the cache
  const draft = `${path}.new.${process.pid}.${randomBytes(4).toString('hex')}`;
  for (;;) {
    await writeFile(draft, JSON.stringify(me()), { mode: 0o644 });
    try {
      await link(draft, path);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // an agent in another pid namespace sees our pid as dead and may clear the draft as debris: write it again
      if (code !== 'ENOENT') throw err;
    } finally {
      await rm(draft, { force: true });
    }
  }
}

/**
 * A process killed during a stale-lock takeover leaves the file it moved aside (`<lock>.stale.<pid>.<time>`), and
 * one killed while creating the lock leaves its draft (`<lock>.new.<pid>.<random>`); once the lock is held again
 * nobody needs the first kind, and a draft is only in use while its pid lives.
 */
async function removeTakeoverDebris(path: string): Promise<void> {
  const stalePrefix = `${basename(path)}.stale.`;
  const draftPrefix = `${basename(path)}.new.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  const debris = names.filter(
    (n) => n.startsWith(stalePrefix) || (n.startsWith(draftPrefix) && !alive(parseInt(n.slice(draftPrefix.length), 10))),
  );
  await Promise.all(debris.map((n) => rm(join(dirname(path), n), { force: true })));
}

/** Takes the lock if nobody holds it right now, clearing what killed takers left; undefined when it is held. */
async function takeIfFree(path: string, heartbeatMs = 5_000): Promise<HeldLock | undefined> {
  if (!(await createLockFile(path))) return undefined;
  await removeTakeoverDebris(path);
  return held(path, heartbeatMs);
}

/** Waits for and takes the lock at `path` (its directory must exist). */
export async function acquireLock(path: string, opts: LockOptions): Promise<HeldLock> {
  const staleMs = opts.staleMs ?? 30_000;
  const pollMs = opts.pollMs ?? 100;
  let announced = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    const taken = await takeIfFree(path, opts.heartbeatMs);
    if (taken) return taken;
    const stale = await staleReason(path, staleMs);
    if (stale) {
      // Move the stale file aside (atomic, one winner), then check we moved the file we judged.
      const aside = `${path}.stale.${process.pid}.${Date.now()}`;
      try {
        await rename(path, aside);
        const moved = await lstat(aside);
        if (moved.ino === stale.ino) opts.log.warn({ lock: path, reason: stale.reason }, 'took over a stale lock');
        // another process replaced the stale file meanwhile: that lock is live, put it back unless a newer one exists
        else await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      continue;
    }
    if (!announced) {
      const holder = await readHolder(path);
      opts.log.info({ lock: path, holder: holder?.pid }, `waiting for another pull of ${opts.what}`);
      announced = true;
    }
    await sleep(pollMs, undefined, { signal: opts.signal });
  }
}

function held(path: string, heartbeatMs: number): HeldLock {
  const timer = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, heartbeatMs);
  timer.unref();
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await rm(path, { force: true });
    },
  };
}

/** Takes the lock only if it is free (or stale) right now; undefined when someone holds it. */
export async function tryLock(path: string, opts: Omit<LockOptions, 'what'>): Promise<HeldLock | undefined> {
  const taken = await takeIfFree(path, opts.heartbeatMs);
  if (taken) return taken;
  if (!(await staleReason(path, opts.staleMs ?? 30_000))) return undefined;
  return acquireLock(path, { ...opts, what: 'a stale entry' });
}

/**
 * Removes the lock at `path` if its holder is gone, the way a taker would (its takeover debris too); a live lock,
 * or none, is left as it is. For a reader that found complete what the holder was making: a writer killed after
 * its work was done but before it released the lock leaves a lock that no later writer comes to take.
 */
export async function clearIfStale(path: string, opts: Omit<LockOptions, 'what'>): Promise<void> {
  if (!(await staleReason(path, opts.staleMs ?? 30_000))) return;
  await (await tryLock(path, opts))?.release();
}
