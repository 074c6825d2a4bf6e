// The `run` daemon as a user runs it: the real CLI as a child process, against a host root, a KMM-style shared
// dir with the project's real .ko files, the recording modprobe, a downward-API style config volume, and the
// fake API server for Events.
import { chmod, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { cliPath, makeEnv, type Env } from '../worker/fixtures.js';
import { recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { FakeApiServer } from '../helpers/fake-apiserver.js';

export const NODE = 'node-7';

/**
 * A downward-API volume as kubelet's AtomicWriter lays it out: `..<timestamp>/config.yaml`, `..data` →
 * that dir, `config.yaml` → `..data/config.yaml`; an update writes a new timestamped dir and renames a fresh
 * `..data_tmp` symlink over `..data`, then removes the old dir.
 */
export class DownwardApiVolume {
  private n = 0;
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  get configPath() {
    return join(this.dir, 'config.yaml');
  }
  async write(config: object): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const ts = `..2026_11_21_05_40_0${this.n++}.00000000${this.n}`;
    await mkdir(join(this.dir, ts));
    await writeFile(join(this.dir, ts, 'config.yaml'), stringify(config));
    const old = await readlink(join(this.dir, '..data')).catch(() => undefined);
    await symlink(ts, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    await symlink('..data/config.yaml', this.configPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    if (old) await rm(join(this.dir, old), { recursive: true, force: true });
  }
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface Daemon {
  proc: ResultPromise;
  lines: LogLine[];
  /** resolves with the first log line matching */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  healthUrl: string;
  exit: Promise<{ code: number | undefined; signal: string | undefined; stderr: string }>;
}

export interface DaemonEnv {
  env: Env;
  api: FakeApiServer;
  kubeconfig: string;
  volume: DownwardApiVolume;
  /** a modprobe that records, then sleeps SLOW_LOAD seconds (load) / creates $SLOW_MARKER, then sleeps
   * SLOW_UNLOAD seconds first (-r) */
  slowModprobe: string;
  start(args?: string[], extraEnv?: Record<string, string>): Promise<Daemon>;
  cleanup(): Promise<void>;
}

export async function makeDaemonEnv(modules: string[], firmware?: Record<string, string>): Promise<DaemonEnv> {
  const env = await makeEnv({ modules, ...(firmware ? { firmware, firmwarePath: '/firmware' } : {}) });
  const api = await FakeApiServer.start();
  api.seed({ resource: 'nodes' }, { metadata: { name: NODE } });
  const kubeconfig = await api.writeKubeconfig(join(env.work, 'kubeconfig'));
  const volume = new DownwardApiVolume(join(env.work, 'podinfo'));
  const slowModprobe = join(env.work, 'slow-modprobe.sh');
  await writeFile(slowModprobe, `#!/bin/sh
case " $* " in
  *" -r "*) [ -n "\${SLOW_MARKER:-}" ] && : > "\$SLOW_MARKER"; sleep "\${SLOW_UNLOAD:-0}"; exec "${recordingModprobePath}" "$@" ;;
esac
"${recordingModprobePath}" "$@"; rc=$?
# without the pipes: a killed script must not leave a sleeping child holding modprobe's stdout open
sleep "\${SLOW_LOAD:-0}" >/dev/null 2>&1 </dev/null
exit $rc
`);
  await chmod(slowModprobe, 0o755);
  const running: ResultPromise[] = [];

  async function start(args: string[] = [], extraEnv: Record<string, string> = {}): Promise<Daemon> {
    const proc = execa(process.execPath, [cliPath, '--host-root', env.host.root, '--shared-dir', env.shared, '--modprobe', recordingModprobePath,
      '--log-level', 'debug', 'run', volume.configPath, '--health-addr', '127.0.0.1:0', '--check-interval', '0.2', ...args], {
      reject: false,
      // the daemon decides how long its shutdown takes; execa must not SIGKILL it 5 s after a SIGTERM
      forceKillAfterDelay: false,
      env: { ...recordingModprobeEnv(env.host.root, env.logFile), POD_NAMESPACE: 'kmm-ops', NODE_NAME: NODE, KUBECONFIG: kubeconfig, ...extraEnv },
      extendEnv: true,
      buffer: { stderr: true, stdout: true },
    });
    running.push(proc);
    const lines: LogLine[] = [];
    const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
    let buf = '';
    proc.stderr!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const raw = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          line = { level: 0, msg: raw };
        }
        lines.push(line);
        for (const w of [...waiters]) if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    const exit = proc.then((r) => ({ code: r.exitCode, signal: r.signal, stderr: String(r.stderr) }));
    const waitFor = (pred: (l: LogLine) => boolean, timeoutMs = 15_000) => {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; saw:\n${lines.map((l) => l.msg).join('\n')}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l); } });
        void exit.then(() => setTimeout(() => reject(new Error(`daemon exited; log:\n${lines.map((l) => l.msg).join('\n')}`)), 50));
      });
    };
    const listening = await Promise.race([
      waitFor((l) => l.msg === 'health endpoints listening'),
      exit.then((r) => { throw new Error(`daemon exited with ${r.code} before listening:\n${r.stderr}`); }),
    ]);
    return { proc, lines, waitFor, healthUrl: String(listening.url), exit };
  }

  return {
    env, api, kubeconfig, volume, slowModprobe, start,
    async cleanup() {
      for (const p of running) p.kill('SIGKILL'); // no-op for those that exited
      await api.close();
      await env.cleanup();
    },
  };
}

export async function get(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

/** Waits until the daemon's /readyz answers 200. */
export function untilReady(daemon: Daemon, what = 'ready'): Promise<boolean> {
  return until(async () => (await get(`${daemon.healthUrl}/readyz`)).status === 200, what);
}

/** Polls until fn() is truthy. */
export async function until<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
