/**
 * Is a module's `.ko` in an image, under `<dirName>/lib/modules/<kernel>/` of its merged layers? Reads only
 * the layers' tar headers (no extraction), top layer first, and stops after the layer that holds the answer:
 * that layer is still read to its end, so every layer read is checked against its digest and its DiffID
 * before the answer is given; the layers below it are not read at all.
 */
import { posix } from 'node:path';
import type { ResolvedImage } from '../image/types.js';
import { canonicalPath, resolveInImage, walkMergedView } from '../extract/merged-view.js';
import { isKoFile, moduleNameOfFile, normaliseModuleName } from '../kmod/names.js';

export interface KmodQuery {
  /** modprobe.dirName, e.g. `/opt` */
  dirName: string;
  kernelVersion: string;
  /** modprobe.moduleName; undefined (rawArgs) = any `.ko` of the kernel will do */
  moduleName: string | undefined;
}

export type KmodSearchResult =
  | {
      found: true;
      /** image path of the `.ko`, from the image root (`/opt/lib/modules/...`) */
      path: string;
      /** with `collect`: the bytes of the visible `.ko` files it selected, by image path from the root */
      collected?: Map<string, Buffer>;
    }
  | {
      found: false;
      /** the directory looked in, from the image root, with a trailing `/` */
      lookedIn: string;
      /** `<dirName>/lib/modules/` from the image root */
      modulesRoot: string;
      /** the kernels the image carries `.ko` files for under `<dirName>/lib/modules/` */
      kernels: string[];
      /** the module names of the `.ko` files present for the wanted kernel (when any) */
      modulesForKernel: string[];
    };

export async function findKmodInImage(
  image: ResolvedImage,
  query: KmodQuery,
  opts: {
    signal?: AbortSignal;
    /** read these `.ko` files (image path from the root) too; the scan then goes through every layer */
    collect?: (path: string) => boolean;
  } = {},
): Promise<KmodSearchResult> {
  const modulesRoot = canonicalPath(`${query.dirName}/lib/modules`);
  const kernelDir = canonicalPath(`${modulesRoot}/${query.kernelVersion}`);
  const wanted = query.moduleName === undefined ? undefined : normaliseModuleName(query.moduleName);
  const isWanted = (path: string, dir: string): boolean => {
    if (!path.startsWith(`${dir}/`)) return false;
    const stem = moduleNameOfFile(posix.basename(path));
    return stem !== undefined && (wanted === undefined || stem === wanted);
  };

  const kmods = new Set<string>(); // every visible .ko of the merged view
  const symlinks = new Map<string, string>(); // visible symlinks: path -> target
  const collected = new Map<string, Buffer>();
  let foundPath: string | undefined;
  await walkMergedView(image, opts, async ({ path, kind, linkname, body }) => {
    if (kind === 'symlink' && linkname) symlinks.set(path, linkname);
    if (kind !== 'file' || !isKoFile(path)) return;
    if (opts.collect?.(`/${path}`)) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      collected.set(`/${path}`, Buffer.concat(chunks));
    }
    kmods.add(path);
    if (foundPath === undefined && isWanted(path, kernelDir)) foundPath = `/${path}`;
  // the layer that holds the answer was read to its end (its DiffID checked); the layers below it are not read
  }, () => foundPath !== undefined && !opts.collect);
  if (foundPath !== undefined && !opts.collect) return { found: true, path: foundPath };
  if (foundPath !== undefined) return { found: true, path: foundPath, collected };

  // Not at the literal path: the directory may be reached through symlinks (e.g. lib -> usr/lib).
  const realKernelDir = resolveInImage(kernelDir, symlinks);
  const hit = [...kmods].sort().find((p) => isWanted(p, realKernelDir));
  if (hit) return { found: true, path: `/${hit}`, ...(opts.collect ? { collected } : {}) };

  const realModulesRoot = resolveInImage(modulesRoot, symlinks);
  const kernels = new Set<string>();
  const modulesForKernel = new Set<string>();
  for (const p of kmods) {
    if (!p.startsWith(`${realModulesRoot}/`)) continue;
    const kver = p.slice(realModulesRoot.length + 1).split('/')[0]!;
    kernels.add(kver);
    if (p.startsWith(`${realKernelDir}/`)) modulesForKernel.add(moduleNameOfFile(posix.basename(p))!);
  }
  return {
    found: false,
    lookedIn: `/${kernelDir}/`,
    modulesRoot: `/${modulesRoot}/`,
    kernels: [...kernels].sort(),
    modulesForKernel: [...modulesForKernel].sort(),
  };
}
