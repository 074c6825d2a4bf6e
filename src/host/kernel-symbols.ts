/**
 * Who provides kernel symbols on the node (read-only, under --host-root): the running kernel and its loaded
 * modules (/proc/kallsyms), and the host's module tree (depmod's modules.symbols, `alias symbol:<sym> <module>`).
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Host } from './host.js';

/** Of `wanted`, the names a symbol table (`<address> <type> <name>[\t[module]]` lines) lists. */
function namesIn(text: string, wanted: Set<string>): Set<string> {
  const found = new Set<string>();
  for (const line of text.split('\n')) {
    // every search stays inside the line: a search across lines made this quadratic
    const name = line.slice(line.indexOf(' ', line.indexOf(' ') + 1) + 1).split('\t', 1)[0]!;
    if (wanted.has(name)) found.add(name);
  }
  return found;
}

/**
 * Of `wanted`, the symbols the running kernel has. The kernel's own System.map (a plain file, when the distribution
 * ships it: /boot/System.map-<kver>, /lib/modules/<kver>/System.map) answers for the kernel image; /proc/kallsyms,
 * which also lists loaded modules' symbols but costs the kernel 150-400 ms to print, is read only for what is
 * still missing. undefined when neither can be read.
 */
export interface KernelSymbols {
  found: Set<string>;
  /**
   * false when the only source was a /proc/kallsyms without data symbols (CONFIG_KALLSYMS_ALL off, seen by the
   * absence of `jiffies`): then an exported variable such as param_ops_int is missing from it, yet there
   */
  complete: boolean;
}

export async function kernelSymbolsHaving(host: Host, kernelVersion: string, wanted: Set<string>): Promise<KernelSymbols | undefined> {
  let found: Set<string> | undefined;
  for (const map of [`/boot/System.map-${kernelVersion}`, `/lib/modules/${kernelVersion}/System.map`]) {
    const text = await readFile(host.path(map), 'utf8').catch(() => undefined);
    // Debian ships a one-line stub ("The real System.map is in the linux-image-<version>-dbg package")
    if (text?.includes(' _stext\n')) {
      found = namesIn(text, wanted);
      break;
    }
  }
  if (found && found.size === wanted.size) return { found, complete: true };
  const rest = new Set([...wanted].filter((s) => !found?.has(s)));
  const fromKallsyms = await scanUntilAllFound(host.path('/proc/kallsyms'), rest);
  if (!fromKallsyms) return found && { found, complete: true };
  return { found: new Set([...(found ?? []), ...fromKallsyms.found]), complete: found !== undefined || fromKallsyms.complete };
}

/**
 * Reads a symbol table in chunks and stops once every wanted name was seen: the kernel prints /proc/kallsyms as
 * it is read, so a module that needs only core symbols costs a part of the file, not all of it.
 */
async function scanUntilAllFound(file: string, wanted: Set<string>): Promise<KernelSymbols | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const found = new Set<string>();
    const probe = new Set(['jiffies']);
    let complete = false;
    const buf = Buffer.allocUnsafe(256 * 1024);
    let carry = '';
    let any = false;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      any = true;
      const text = carry + buf.toString('latin1', 0, bytesRead);
      const cut = text.lastIndexOf('\n') + 1;
      const lines = text.slice(0, cut);
      for (const name of namesIn(lines, wanted)) found.add(name);
      complete ||= namesIn(lines, probe).size > 0;
      carry = text.slice(cut);
      if (found.size === wanted.size) return { found, complete: true };
    }
    for (const name of namesIn(carry, wanted)) found.add(name);
    complete ||= namesIn(carry, probe).size > 0;
    return any ? { found, complete } : undefined;
  } finally {
    await fh.close();
  }
}

/** Exported symbol → module, from `<kernelDir>/modules.symbols`; empty when the tree has none. */
export async function moduleTreeSymbols(kernelDir: string): Promise<Map<string, string>> {
  const text = await readFile(join(kernelDir, 'modules.symbols'), 'utf8').catch(() => '');
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^alias symbol:(\S+) (\S+)$/);
    if (m) map.set(m[1]!, m[2]!);
  }
  return map;
}
