/**
 * The one home of kernel-module names: how a name is compared (`-` and `_` alike, as the kernel stores `_`),
 * which file names are modules (`.ko`, compressed or not), and how a kernel release matches a config's.
 */

/** `-` and `_` are the same in module names (the kernel stores `_`). */
export const normaliseModuleName = (name: string) => name.replaceAll('-', '_');

/** A module file: `.ko`, or compressed as kmod reads them (`.ko.xz`, `.ko.zst`, `.ko.gz`). */
const KO = /\.ko(?:\.(?:xz|zst|gz))?$/;

/** The forms a message lists when a module file is missing. */
export const KO_FORMS = '.ko (or .ko.xz/.ko.zst/.ko.gz)';

export const isKoFile = (fileName: string): boolean => KO.test(fileName);

/** `kmm-hello.ko.xz` → `kmm_hello`; undefined for a file that is no module. */
export function moduleNameOfFile(fileName: string): string | undefined {
  const m = KO.exec(fileName);
  return m ? normaliseModuleName(fileName.slice(0, m.index)) : undefined;
}

/** The module name a `modules.dep` path stands for (its base name, without the module suffix). */
export function moduleNameOfPath(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return moduleNameOfFile(base) ?? normaliseModuleName(base);
}

/** A running kernel serves a config's kernelVersion when equal, or equal once a trailing `+` on one side is
 * ignored (GKE COS appends `+`). */
export function kernelMatches(running: string, wanted: string): boolean {
  if (running === wanted) return true;
  return running.replace(/\+$/, '') === wanted.replace(/\+$/, '');
}
