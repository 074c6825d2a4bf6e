// A booted test guest: Debian's kernel under QEMU with our initramfs, driven over a serial control channel
// (see guest-init.sh for the guest's half of the protocol). The kernel console goes to a log file.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { acceleratorCandidates, qemuArgsFor, type Accel } from './accel.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** wall time of the command as the host saw it */
  ms: number;
}

export interface BootOptions {
  vmlinux: string;
  initrd: string;
  /** where the console log and QEMU's stderr go */
  workDir: string;
  memMiB?: number;
  cpus?: number;
  /** user-mode networking with no route anywhere but one forward per entry: guest 10.0.2.100:<guestPort> →
   *  host 127.0.0.1:<hostPort> (one socat per connection: a shared stream breaks clients with several) */
  forwards?: Array<{ guestPort: number; hostPort: number }>;
  /** more kernel command line, e.g. `module.sig_enforce=1` */
  kernelArgs?: string;
  /** seconds to wait for the guest's READY line */
  bootTimeoutS?: number;
  log?: (line: string) => void;
  /** raw disk images, attached as virtio disks /dev/vda, /dev/vdb, ... */
  disks?: string[];
  /** kernel command line instead of the initramfs guest's (the console is always ttyS0) */
  append?: string;
  /** let a reboot restart the machine in the same QEMU (default: QEMU exits, -no-reboot) */
  allowReboot?: boolean;
  /** which control-channel line means booted (default: any @@READY) */
  ready?: (line: string) => boolean;
}

const GUEST_FORWARD_IP = '10.0.2.100';

// A test killed on timeout must not leave an emulator spinning on a shared machine.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const q of running) q.kill('SIGKILL');
});

function requireProgram(cmd: string, args: string[], debianPackage: string): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  } catch {
    throw new Error(`${cmd} is missing or does not run: install the Debian package ${debianPackage}`);
  }
}
/** From a SysRq dump: the blocked tasks ('w') and every user-space task's state ('t'), without the stacks. */
function summariseTasks(dump: string): string {
  const tasks = (text: string) =>
    [...text.matchAll(/task:(\S+)\s+state:(\S+).*?pid:(\d+)\s+ppid:(\d+)/g)]
      .filter((m) => m[3] !== '2' && m[4] !== '2') // kthreadd and its kernel threads
      .map((m) => `${m[1]} (pid ${m[3]}, ppid ${m[4]}) ${m[2]}`);
  const [beforeAll = '', all = ''] = dump.split('sysrq: Show State');
  const blocked = tasks(beforeAll.split('sysrq: Show Blocked State')[1] ?? '');
  return `guest tasks (SysRq t): ${tasks(all).join('; ') || 'none reported'}\n` +
    `blocked tasks (SysRq w): ${blocked.join('; ') || 'none'}`;
}

export const guestForwardHost = (port: number) => `${GUEST_FORWARD_IP}:${port}`;

export class Guest {
  private buf = '';
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private nextId = 1;
  private exited = false;
  private exitInfo = '';
  readonly consoleLog: string;

  private constructor(
    private readonly qemu: ChildProcess,
    readonly accel: Accel,
    consoleLog: string,
    private readonly stderrLog: string,
    private readonly monitorSocket: string,
  ) {
    this.consoleLog = consoleLog;
    qemu.stdout!.setEncoding('latin1');
    qemu.stdout!.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i).replace(/\r$/, ''));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    qemu.on('exit', (code, signal) => {
      this.exited = true;
      this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
      this.wake();
    });
  }

  bootSeconds = 0;
  /** guest uptime when /init reported ready */
  guestUptime = 0;

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next control-channel line matching `pred`, skipping others. */
  private async nextLine(pred: (l: string) => boolean, deadline: number, what: string): Promise<string> {
    for (;;) {
      const i = this.lines.findIndex(pred);
      if (i >= 0) {
        const [line] = this.lines.splice(0, i + 1).slice(-1);
        return line!;
      }
      if (this.exited) throw new Error(`QEMU ended (${this.exitInfo}) while waiting for ${what}; ${this.diagnostics()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; ${this.diagnostics()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The tail of the kernel console and QEMU's stderr, for failure messages. */
  diagnostics(): string {
    const tail = (f: string, n: number) =>
      fs.existsSync(f) ? fs.readFileSync(f, 'latin1').replace(/\r/g, '').trim().split('\n').slice(-n).join('\n') : '';
    return `console (${this.consoleLog}) tail:\n${tail(this.consoleLog, 25)}\nqemu stderr:\n${tail(this.stderrLog, 10)}`;
  }

  /**
   * What the guest kernel says about its tasks, for a guest that stopped answering: magic SysRq keys typed on the
   * emulated keyboard through QEMU's monitor ('9' raises the console log level so the dumps reach the console,
   * 'w' lists blocked tasks, 't' every task with its stack). Returns what the console received meanwhile.
   */
  private async sysrqDump(keys = ['9', 'w', 't'], settleMs = 5000): Promise<string> {
    const before = fs.existsSync(this.consoleLog) ? fs.statSync(this.consoleLog).size : 0;
    await new Promise<void>((resolve) => {
      const sock = net.connect(this.monitorSocket);
      sock.on('error', () => resolve());
      sock.on('connect', () => {
        sock.end(keys.map((k) => `sendkey alt-sysrq-${k}\n`).join(''));
        setTimeout(resolve, settleMs);
      });
    });
    const all = fs.readFileSync(this.consoleLog);
    return all.subarray(before).toString('latin1').replace(/\r/g, '');
  }

  /** Runs a shell script (busybox sh) in the guest as root. */
  async exec(script: string, opts: { timeoutMs?: number; pauseMidLineMs?: number } = {}): Promise<ExecResult> {
    const id = `c${this.nextId++}`;
    const t0 = Date.now();
    const deadline = t0 + (opts.timeoutMs ?? 300_000);
    await this.send(id, script, opts.pauseMidLineMs);
    const what = `the result of: ${script.trim().split('\n')[0]!.slice(0, 100)}`;
    let first: string;
    try {
      first = await this.nextLine((l) => l === `@@OUT ${id}` || l === `@@GARBLED ${id}`, deadline, what);
    } catch (e) {
      if (this.exited) throw e;
      throw new Error(`${(e as Error).message}\n${summariseTasks(await this.sysrqDump())}`);
    }
    if (first.startsWith('@@GARBLED')) throw new Error(`the guest received a damaged command line for: ${what}`);
    const section = async (end: (l: string) => boolean) => {
      const parts: string[] = [];
      for (;;) {
        const l = await this.nextLine(() => true, deadline, what);
        if (end(l)) return { text: Buffer.from(parts.join(''), 'base64').toString('utf8'), end: l };
        parts.push(l);
      }
    };
    const out = await section((l) => l === `@@ERR ${id}`);
    const err = await section((l) => l.startsWith(`@@RC ${id} `));
    return { code: Number(err.end.split(' ')[2]), stdout: out.text, stderr: err.text, ms: Date.now() - t0 };
  }

  async poweroff(): Promise<void> {
    if (this.exited) return;
    await this.send('off', 'sync; poweroff -f');
    const timer = setTimeout(() => this.qemu.kill('SIGKILL'), 15_000);
    if (!this.exited) await once(this.qemu, 'exit');
    clearTimeout(timer);
  }

  /**
   * One control line: the id, the script in base64, and the id again (see guest-init.sh). `pauseMs` sends it
   * in two halves with a pause between, so the guest is left waiting in the middle of a line (a test of the
   * control loop itself).
   */
  private async send(id: string, script: string, pauseMs = 0): Promise<void> {
    const line = `${id} ${Buffer.from(script).toString('base64')} ${id}\n`;
    if (pauseMs <= 0) {
      this.qemu.stdin!.write(line);
      return;
    }
    const half = Math.floor(line.length / 2);
    this.qemu.stdin!.write(line.slice(0, half));
    await new Promise((r) => setTimeout(r, pauseMs));
    this.qemu.stdin!.write(line.slice(half));
  }

  /** Waits for the next control-channel line matching `pred` (e.g. the READY of the boot after a reboot). */
  waitForLine(pred: (l: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    return this.nextLine(pred, Date.now() + timeoutMs, what);
  }

  /** true once QEMU has ended */
  get ended(): boolean {
    return this.exited;
  }

  kill(): void {
    if (!this.exited) this.qemu.kill('SIGKILL');
  }

  static async boot(opts: BootOptions): Promise<Guest> {
    const log = opts.log ?? (() => {});
    for (const f of [opts.vmlinux, opts.initrd]) if (!fs.existsSync(f)) throw new Error(`missing ${f}`);
    // guestfwd runs socat per connection; without it the guest's connections just die, far from the cause
    if (opts.forwards?.length) requireProgram('socat', ['-V'], 'socat');
    requireProgram('qemu-system-x86_64', ['--version'], 'qemu-system-x86');
    const { accels, why } = await acceleratorCandidates();
    log(`accelerator candidates: ${accels.join(', ')} (${why})`);
    let lastErr: unknown;
    for (const accel of accels) {
      const t0 = Date.now();
      const consoleLog = path.join(opts.workDir, `console-${accel}.log`);
      const stderrLog = path.join(opts.workDir, `qemu-${accel}.stderr`);
      const monitorSocket = path.join(opts.workDir, `monitor-${accel}.sock`);
      const args = [
        ...qemuArgsFor(accel),
        '-m', String(opts.memMiB ?? 1536), '-smp', String(opts.cpus ?? (Number(process.env.KMM_VM_CPUS) || 1)),
        '-nodefaults', '-no-user-config', '-display', 'none', ...(opts.allowReboot ? [] : ['-no-reboot']),
        '-kernel', opts.vmlinux, '-initrd', opts.initrd,
        '-append', `console=ttyS0 panic=-1 ${opts.append ?? `quiet sysrq_always_enabled${opts.forwards?.length ? ' kmmvm.net=1' : ''}`}${opts.kernelArgs ? ` ${opts.kernelArgs}` : ''}`,
        ...(opts.disks ?? []).flatMap((f) => ['-drive', `file=${f},format=raw,if=virtio`]),
        // the human monitor, for a stuck guest: magic SysRq through the emulated keyboard (see sysrqDump)
        '-monitor', `unix:${monitorSocket},server=on,wait=off`,
        '-chardev', `file,id=con,path=${consoleLog}`, '-serial', 'chardev:con',
        '-chardev', 'stdio,id=ctl,signal=off', '-serial', 'chardev:ctl',
      ];
      if (opts.forwards?.length) {
        const fwd = opts.forwards
          .map((f) => `guestfwd=tcp:${GUEST_FORWARD_IP}:${f.guestPort}-cmd:socat STDIO TCP:127.0.0.1:${f.hostPort}`)
          .join(',');
        args.push('-netdev', `user,id=n0,restrict=on,${fwd}`, '-device', 'virtio-net-pci,netdev=n0,romfile=');
      }
      const qemu = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', fs.openSync(stderrLog, 'w')] });
      running.add(qemu);
      qemu.on('exit', () => running.delete(qemu));
      const spawned = await Promise.race([
        once(qemu, 'spawn').then(() => true),
        once(qemu, 'error').then(([e]) => {
          throw new Error(`cannot start qemu-system-x86_64 (install qemu-system-x86): ${(e as Error).message}`);
        }),
      ]);
      void spawned;
      const guest = new Guest(qemu, accel, consoleLog, stderrLog, monitorSocket);
      const timeout = (accel === 'kvm' ? 30 : (opts.bootTimeoutS ?? 120)) * 1000;
      try {
        const isReady = opts.ready ?? ((l: string) => l.startsWith('@@READY'));
        const ready = await guest.nextLine(isReady, Date.now() + timeout, 'the guest to boot');
        guest.bootSeconds = (Date.now() - t0) / 1000;
        guest.guestUptime = Number(ready.split(' ')[1]);
        log(`booted with ${accel} in ${guest.bootSeconds.toFixed(1)} s (guest uptime ${guest.guestUptime} s)`);
        return guest;
      } catch (e) {
        guest.kill();
        lastErr = e;
        log(`boot with ${accel} failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    throw lastErr;
  }
}
