/**
 * Read-only facts of the node for `diagnose`, every path under the host root: the kernel's security state,
 * a module's /sys/module view, modprobe.d files and kernel log lines that mention the modules.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Host } from '../host/host.js';
import { normaliseModuleName } from '../kmod/names.js';

const readTrimmed = (p: string) => readFile(p, 'utf8').then((s) => s.trim(), () => undefined);

export interface SecurityState {
  /** the bracketed mode of /sys/kernel/security/lockdown: none, integrity, confidentiality */
  lockdown: string | undefined;
  /** from the SecureBoot EFI variable; undefined on a non-EFI boot or when efivars are not mounted */
  secureBoot: boolean | undefined;
  /** module.sig_enforce: only signed modules load */
  sigEnforce: boolean | undefined;
}

const SECURE_BOOT_VAR = '/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c';

export async function securityState(host: Host): Promise<SecurityState> {
  const lockdownText = await readTrimmed(host.path('/sys/kernel/security/lockdown'));
  const lockdown = lockdownText ? (/\[(\w+)\]/.exec(lockdownText)?.[1] ?? lockdownText) : undefined;
  // efivarfs: 4 bytes of attributes, then the value byte
  const sb = await readFile(host.path(SECURE_BOOT_VAR)).catch(() => undefined);
  const secureBoot = sb && sb.length >= 5 ? sb[4] === 1 : undefined;
  const sig = await readTrimmed(host.path('/sys/module/module/parameters/sig_enforce'));
  return { lockdown, secureBoot, sigEnforce: sig === undefined ? undefined : sig === 'Y' || sig === '1' };
}

export interface LiveModule {
  name: string;
  state: 'absent' | 'builtin' | 'loaded';
  initstate?: string;
  srcversion?: string;
  refcnt?: number;
  holders?: string[];
  /** taint flags the module carries (O out-of-tree, E unsigned, ...) */
  taint?: string;
}

export async function liveModule(host: Host, name: string): Promise<LiveModule> {
  const s = await host.moduleState(name);
  if (s.kind !== 'loaded') return { name, state: s.kind };
  const taint = await readTrimmed(host.path(`/sys/module/${normaliseModuleName(name)}/taint`));
  return { name, state: 'loaded', initstate: s.initstate, srcversion: s.srcversion, refcnt: s.refcnt, holders: s.holders,
    ...(taint !== undefined ? { taint } : {}) };
}

export interface ModprobeDMatch {
  file: string;
  lines: string[];
}

const MODPROBE_D = ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'];

function mentions(line: string, names: string[]): boolean {
  const words = normaliseModuleName(line).split(/[\s=,]+/);
  return names.some((n) => words.includes(normaliseModuleName(n)));
}

/** Lines of modprobe.d files (as modprobe reads them) that name one of the modules. */
export async function modprobeDMentions(host: Host, names: string[]): Promise<ModprobeDMatch[]> {
  const out: ModprobeDMatch[] = [];
  for (const dir of MODPROBE_D) {
    const files = await readdir(host.path(dir)).catch(() => [] as string[]);
    for (const f of files.filter((x) => x.endsWith('.conf')).sort()) {
      const text = await readFile(join(host.path(dir), f), 'utf8').catch(() => '');
      const lines = text.split('\n').filter((l) => !l.trimStart().startsWith('#') && mentions(l, names));
      if (lines.length > 0) out.push({ file: `${dir}/${f}`, lines });
    }
  }
  return out;
}

export interface KernelLog {
  readable: boolean;
  /** why not, when not readable */
  reason?: string;
  lines: string[];
}

/** dmesg lines that name a module (the kernel's ring buffer: the same kernel whatever the host root). */
export async function kernelLogMentions(names: string[], dmesg = process.env.KMM_DMESG || 'dmesg'): Promise<KernelLog> {
  const r = await execa(dmesg, [], { reject: false, timeout: 10_000, stdin: 'ignore' }).catch((err: unknown) => ({ failed: true, exitCode: undefined, stdout: '', stderr: String(err) }));
  if (r.failed || r.exitCode !== 0) return { readable: false, reason: String(r.stderr).trim().split('\n')[0] || 'dmesg failed', lines: [] };
  const wanted = names.map(normaliseModuleName);
  const lines = String(r.stdout).split('\n').filter((l) => {
    const norm = normaliseModuleName(l);
    return wanted.some((n) => new RegExp(`\\b${n}\\b`).test(norm));
  });
  return { readable: true, lines: lines.slice(-200) };
}
