/**
 * Finding a module's file in a kmods tree on disk, one rule for every command: `day1 pull` decides from it
 * whether a stored image can serve the kernel, `kmod load` whether the kmods hold the module, `diagnose` which
 * file to describe. Only regular files count: a symlinked `.ko` (which may point anywhere, or nowhere, once a
 * selection extracted part of an image) is never what the load takes; symlinked directories such as KMM's
 * `host` link are not followed.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isKoFile, moduleNameOfFile, normaliseModuleName } from './names.js';

/** `<root>/<dirName>/lib/modules/<kver>` */
export const kernelModulesDir = (imageRoot: string, dirName: string, kernelVersion: string) =>
  join(imageRoot, dirName, 'lib', 'modules', kernelVersion);

/** The path of `<module>.ko*` under `kernelDir` (recursively; `-` and `_` alike), or undefined. */
export async function findModuleKo(kernelDir: string, moduleName: string): Promise<string | undefined> {
  const wanted = normaliseModuleName(moduleName);
  const entries = await readdir(kernelDir, { recursive: true, withFileTypes: true }).catch(() => []);
  const hit = entries.find((e) => e.isFile() && moduleNameOfFile(e.name) === wanted);
  return hit ? join(hit.parentPath, hit.name) : undefined;
}

/** Every regular `.ko.gz` under `dir` (symlinks not followed). */
export async function gzippedKos(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && isKoFile(e.name) && e.name.endsWith('.ko.gz')).map((e) => join(e.parentPath, e.name));
}
