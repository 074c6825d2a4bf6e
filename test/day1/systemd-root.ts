/**
 * `systemd-analyze verify --root DIR` against a throw-away root: the units are installed where systemd looks for
 * them, and the binaries they name exist there, so verify checks what a node would check (unit syntax, the
 * ExecStart binary being executable) without a running systemd or touching this machine's /usr.
 */
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO, 'bin', 'kmm-worker.js');

const SYSTEM_UNITS = '/lib/systemd/system';

export interface VerifyResult {
  code: number;
  stderr: string;
}

/** A root holding `units` in /etc/systemd/system and an executable stub at each of `binaries`. */
export async function systemRoot(units: Record<string, string>, binaries: string[], files: Record<string, string> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'kmm-day1-root-'));
  await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
  // the distribution's own units (sysinit.target, network-online.target, ...) the Day-1 units depend on
  await cp(SYSTEM_UNITS, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  for (const [name, text] of Object.entries(units)) await writeFile(join(root, 'etc/systemd/system', name), text);
  for (const bin of binaries) {
    await mkdir(join(root, dirname(bin)), { recursive: true });
    // the real CLI behind the installed path, as `npm install -g` leaves it
    await writeFile(join(root, bin), `#!/bin/sh\nexec node ${CLI} "$@"\n`);
    await chmod(join(root, bin), 0o755);
  }
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, dirname(path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

export async function verifyUnits(root: string, units: string[]): Promise<VerifyResult> {
  try {
    const { stderr } = await run('systemd-analyze', ['verify', `--root=${root}`, ...units]);
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stderr: e.stderr ?? String(err) };
  }
}

/** `[Section]` → key → values (a key may repeat); continuation lines joined. */
export function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = out[section[1]!] = {};
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit line: ${line}`);
    (current[line.slice(0, eq)] ??= []).push(line.slice(eq + 1).replace(/\s+/g, ' '));
  }
  return out;
}

/** An EnvironmentFile as systemd reads the simple form we write: KEY=VALUE lines, comments, blanks. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not an environment line: ${line}`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/**
 * The reboot command a Day-1 pull runs, as a script in `dir` that records its arguments, one line per call;
 * `reboots()` reads what it recorded.
 */
export async function recordingReboot(dir: string): Promise<{ script: string; reboots: () => Promise<string[]> }> {
  const log = join(dir, 'reboots');
  const script = join(dir, 'reboot-now');
  await writeFile(script, `#!/bin/sh\necho "$*" >> ${log}\n`);
  await chmod(script, 0o755);
  return { script, reboots: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean) };
}
