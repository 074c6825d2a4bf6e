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
export async function kernelSymbolsHaving(host: Host, kernelVersion: string, wanted: Set<string>): Promise<Set<string> | undefined> {
  let found: Set<string> | undefined;
  for (const map of [`/boot/System.map-${kernelVersion}`, `/lib/modules/${kernelVersion}/System.map`]) {
    const text = await readFile(host.path(map), 'utf8').catch(() => undefined);
    // Debian ships a one-line stub ("The real System.map is in the linux-image-<version>-dbg package")
    if (text?.includes(' _stext\n')) {
      found = namesIn(text, wanted);
      break;
    }
  }
  if (found && found.size === wanted.size) return found;
  const rest = new Set([...wanted].filter((s) => !found?.has(s)));
  const fromKallsyms = await scanUntilAllFound(host.path('/proc/kallsyms'), rest);
  if (!fromKallsyms) return found;
  return new Set([...(found ?? []), ...fromKallsyms]);
}

/**
 * Reads a symbol table in chunks and stops once every wanted name was seen: the kernel prints /proc/kallsyms as
 * it is read, so a module that needs only core symbols costs a part of the file, not all of it.
 */
async function scanUntilAllFound(file: string, wanted: Set<string>): Promise<Set<string> | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const found = new Set<string>();
    const buf = Buffer.allocUnsafe(256 * 1024);
    let carry = '';
    let any = false;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      any = true;
      const text = carry + buf.toString('latin1', 0, bytesRead);
      const cut = text.lastIndexOf('\n') + 1;
      for (const name of namesIn(text.slice(0, cut), wanted)) found.add(name);
      carry = text.slice(cut);
      if (found.size === wanted.size) return found;
    }
    for (const name of namesIn(carry, wanted)) found.add(name);
    return any ? found : undefined;
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
