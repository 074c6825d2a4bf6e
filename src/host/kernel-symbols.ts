/**
 * Who provides kernel symbols on the node (read-only, under --host-root): the running kernel and its loaded
 * modules (/proc/kallsyms), and the host's module tree (depmod's modules.symbols, `alias symbol:<sym> <module>`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Host } from './host.js';

/**
 * Of `wanted`, the names /proc/kallsyms lists; undefined when it cannot be read. Only the wanted names are
 * kept: the file has ~100k lines, and a set of all of them would cost more than the scan.
 */
export async function kallsymsHaving(host: Host, wanted: Set<string>): Promise<Set<string> | undefined> {
  const text = await readFile(host.path('/proc/kallsyms'), 'utf8').catch(() => undefined);
  if (text === undefined || text.length === 0) return undefined;
  const found = new Set<string>();
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    // "<address> <type> <name>[\t[module]]"
    const nameStart = text.indexOf(' ', text.indexOf(' ', pos) + 1) + 1;
    if (nameStart > 0 && nameStart < end) {
      const tab = text.indexOf('\t', nameStart);
      const name = text.slice(nameStart, tab >= 0 && tab < end ? tab : end);
      if (wanted.has(name)) found.add(name);
    }
    pos = end + 1;
  }
  return found;
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
