/**
 * Whether a stored image can serve the running kernel: the module's `.ko` (any compression) somewhere under
 * `<dirName>/lib/modules/<kver>/`, as modprobe would find it.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

const KO = /^(.+)\.ko(\.xz|\.zst|\.gz)?$/;
const canonical = (name: string) => name.replaceAll('-', '_');

/** The path of `<module>.ko*` under `kernelDir` (recursively; `-` and `_` equivalent), or undefined. */
export async function findModuleFile(kernelDir: string, moduleName: string): Promise<string | undefined> {
  const wanted = canonical(moduleName);
  const entries = await readdir(kernelDir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const m = KO.exec(entry.name);
    if (m && canonical(m[1]!) === wanted) return join(entry.parentPath, entry.name);
  }
  return undefined;
}

export const kernelModulesDir = (imageRoot: string, dirName: string, kernelVersion: string) =>
  join(imageRoot, dirName, 'lib', 'modules', kernelVersion);
