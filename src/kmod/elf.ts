/**
 * Reads what the ABI check needs from a module's ELF image (ET_REL, 32/64-bit, either byte order):
 * the `.modinfo` strings (vermagic, depends, …), the undefined symbols the kernel must resolve at load time,
 * and the symbols the module exports (`__ksymtab_<name>`). Any inconsistency throws ElfFormatError.
 */
export class ElfFormatError extends Error {
  override name = 'ElfFormatError';
}

export interface ModuleElf {
  /** `.modinfo` key → values in file order (a key such as `alias` repeats) */
  modinfo: Map<string, string[]>;
  /** symbols the module uses but does not define */
  undefinedSymbols: string[];
  /** symbols the module exports to other modules */
  exportedSymbols: string[];
}

const ET_REL = 1;
const SHT_SYMTAB = 2;
const SHN_UNDEF = 0;
const KSYMTAB_PREFIX = '__ksymtab_';

interface Section {
  name: number;
  type: number;
  offset: number;
  size: number;
  link: number;
}

export function readModuleElf(image: Buffer): ModuleElf {
  if (image.length < 52 || image.readUInt32BE(0) !== 0x7f454c46) throw new ElfFormatError('not an ELF file');
  const is64 = image[4] === 2;
  if (image[4] !== 1 && !is64) throw new ElfFormatError(`unknown ELF class ${image[4]}`);
  const le = image[5] === 1;
  if (image[5] !== 1 && image[5] !== 2) throw new ElfFormatError(`unknown ELF data encoding ${image[5]}`);
  const u16 = (o: number) => (le ? image.readUInt16LE(o) : image.readUInt16BE(o));
  const u32 = (o: number) => (le ? image.readUInt32LE(o) : image.readUInt32BE(o));
  const addr = (o: number) => (is64 ? Number(le ? image.readBigUInt64LE(o) : image.readBigUInt64BE(o)) : u32(o));
  const within = (o: number, n: number, what: string) => {
    if (o < 0 || n < 0 || o + n > image.length) throw new ElfFormatError(`${what} lies outside the file`);
  };
  if (is64 && image.length < 64) throw new ElfFormatError('truncated ELF header');
  const type = u16(16);
  if (type !== ET_REL) throw new ElfFormatError(`ELF type ${type} is not a relocatable kernel module`);
  const shoff = addr(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const shstrndx = u16(is64 ? 0x3e : 0x32);
  if (shentsize !== (is64 ? 64 : 40)) throw new ElfFormatError(`section header size ${shentsize} is wrong`);
  within(shoff, shnum * shentsize, 'section header table');
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push(
      is64
        ? { name: u32(o), type: u32(o + 4), offset: addr(o + 24), size: addr(o + 32), link: u32(o + 40) }
        : { name: u32(o), type: u32(o + 4), offset: u32(o + 16), size: u32(o + 20), link: u32(o + 24) },
    );
  }
  const shstr = sections[shstrndx];
  if (!shstr) throw new ElfFormatError('no section name table');
  within(shstr.offset, shstr.size, 'section name table');
  const cString = (start: number, end: number, at: number) => {
    if (at < 0 || start + at >= end) throw new ElfFormatError('string index outside its table');
    const nul = image.indexOf(0, start + at);
    return image.toString('latin1', start + at, nul < 0 || nul > end ? end : nul);
  };
  const sectionName = (s: Section) => cString(shstr.offset, shstr.offset + shstr.size, s.name);

  const modinfo = new Map<string, string[]>();
  const info = sections.find((s) => sectionName(s) === '.modinfo');
  if (info) {
    within(info.offset, info.size, '.modinfo');
    for (const entry of image.toString('utf8', info.offset, info.offset + info.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      modinfo.set(key, [...(modinfo.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }

  const undefinedSymbols: string[] = [];
  const exportedSymbols: string[] = [];
  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (symtab) {
    const strtab = sections[symtab.link];
    if (!strtab) throw new ElfFormatError('symbol table links to no string table');
    within(symtab.offset, symtab.size, '.symtab');
    within(strtab.offset, strtab.size, '.strtab');
    const entsize = is64 ? 24 : 16;
    for (let o = symtab.offset + entsize; o + entsize <= symtab.offset + symtab.size; o += entsize) {
      const nameAt = u32(o);
      if (nameAt === 0) continue;
      const shndx = u16(is64 ? o + 6 : o + 14);
      const name = cString(strtab.offset, strtab.offset + strtab.size, nameAt);
      if (shndx === SHN_UNDEF) undefinedSymbols.push(name);
      else if (name.startsWith(KSYMTAB_PREFIX)) exportedSymbols.push(name.slice(KSYMTAB_PREFIX.length));
    }
  }
  return { modinfo, undefinedSymbols, exportedSymbols };
}

/** The first value of a `.modinfo` key. */
export function modinfoField(elf: ModuleElf, key: string): string | undefined {
  return elf.modinfo.get(key)?.[0];
}
