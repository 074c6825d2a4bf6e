// Fixtures for the worker tests (and the config and CLI tests that run a load): a KMM init-container style shared dir with the project's real .ko files,
// a host root, the recording modprobe, and the real CLI run as a user would run it.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { runCli as runTheCli, type CliResult as Ran } from '../helpers/run-cli.js';
import { stringify } from 'yaml';
import { ensureTestKmods, type TestKmods } from '../kmods/kmods.js';
import { makeHostRoot, type HostRoot } from '../helpers/host-root.js';
import { recordedArgv, recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cliPath = join(repoRoot, 'bin/kmm-worker.js');

export interface CliResult extends Omit<Ran, 'code'> {
  code: number;
  /** the error lines of the JSON log, as messages */
  errors: string[];
}

/** test/helpers/run-cli.ts with this suite's defaults: info logs, a minute at most. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await runTheCli(args, { env: { KMM_LOG_LEVEL: 'info', ...env }, timeoutMs: 60_000 });
  return { ...r, code: r.code ?? -1, errors: r.logs.filter((l) => l.level >= 50).map((l) => l.msg) };
}

export interface SharedDirOptions {
  kver: string;
  /** module name → .ko path (copied to <dirName>/lib/modules/<kver>/extra/<name>.ko) */
  modules: Record<string, string>;
  dirName?: string;
  /** run the real depmod (default true): false leaves modules.dep out, as some images do */
  depmod?: boolean;
  /** files under <shared>/<firmwarePath>, relative path → content */
  firmware?: Record<string, string>;
  firmwarePath?: string;
}

/** `<shared>/<dirName>/lib/modules/<kver>/extra/*.ko` (+ modules.dep from the real depmod) and firmware. */
export async function makeSharedDir(o: SharedDirOptions): Promise<string> {
  const shared = await mkdtemp(join(tmpdir(), 'kmm-shared-'));
  const modulesRoot = join(shared, o.dirName ?? '/opt');
  const extra = join(modulesRoot, 'lib/modules', o.kver, 'extra');
  await mkdir(extra, { recursive: true });
  for (const [name, ko] of Object.entries(o.modules)) await copyFile(ko, join(extra, `${name}.ko`));
  if (o.depmod !== false) await execa('depmod', ['-b', modulesRoot, o.kver]);
  for (const [rel, content] of Object.entries(o.firmware ?? {})) {
    const p = join(shared, o.firmwarePath ?? '/firmware', rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, content);
  }
  return shared;
}

export interface Env {
  kmods: TestKmods;
  host: HostRoot;
  shared: string;
  work: string;
  logFile: string;
  /** writes a config (object → YAML; string as is) and returns its path */
  config(c: object | string, name?: string): Promise<string>;
  /** runs `kmm-worker <args>` against the host root, shared dir and recording modprobe */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  argv(): Promise<string[][]>;
  /** the same command as cli(), started and not awaited (for signals) */
  spawn(args: string[], env?: Record<string, string>): ReturnType<typeof execa>;
  cleanup(): Promise<void>;
}

export async function makeEnv(o: Omit<SharedDirOptions, 'kver' | 'modules'> & {
  modules: string[];
  kver?: string;
  runningKernel?: string;
  firmwareClassPath?: string;
}): Promise<Env> {
  const kmods = await ensureTestKmods();
  const kver = o.kver ?? kmods.kver;
  const modules = Object.fromEntries(o.modules.map((m) => [m, kmods.ko[m]!]));
  const shared = await makeSharedDir({ ...o, kver, modules });
  const host = await makeHostRoot({ kver: o.runningKernel ?? kver, ...(o.firmwareClassPath !== undefined ? { firmwareClassPath: o.firmwareClassPath } : {}) });
  const work = await mkdtemp(join(tmpdir(), 'kmm-work-'));
  const logFile = join(work, 'modprobe.log');
  let n = 0;
  return {
    kmods,
    host,
    shared,
    work,
    logFile,
    async config(c, name) {
      const p = join(work, name ?? `config-${n++}.yaml`);
      await writeFile(p, typeof c === 'string' ? c : stringify(c));
      return p;
    },
    cli: (args, env = {}) =>
      runCli(['--host-root', host.root, '--shared-dir', shared, '--modprobe', recordingModprobePath, ...args], {
        ...recordingModprobeEnv(host.root, logFile),
        POD_NAMESPACE: 'kmm-ops',
        ...env,
      }),
    argv: () => recordedArgv(logFile),
    spawn: (args, env = {}) =>
      execa(process.execPath, [cliPath, '--host-root', host.root, '--shared-dir', shared, '--modprobe', recordingModprobePath, ...args], {
        reject: false,
        env: { KMM_LOG_LEVEL: 'info', ...recordingModprobeEnv(host.root, logFile), POD_NAMESPACE: 'kmm-ops', ...env },
        timeout: 60_000,
      }),
    async cleanup() {
      await host.cleanup();
      await rm(shared, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    },
  };
}
