/**
 * docs/kmod.md, load step 3 and unload step 2: find the kmods for a config, check they hold the module, and make sure modprobe can use
 * them. A source's tree is never written to: when modules.dep is missing (or the running kernel differs only by
 * a trailing `+`, or there are .ko.gz files), the kernel's directory is copied into a scratch root and fixed up
 * there.
 *
 * .ko.gz: Debian's kmod (the worker image's, bookworm and this project's CI host) is built without zlib and
 * cannot read them, while inspect and preflight accept them. So the scratch copy holds them decompressed (the
 * kernel gets the same bytes; srcversion is unchanged) and depmod indexes the .ko files.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, readFile, rm, stat, symlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { basename, isAbsolute, join } from 'node:path';
import type { Logger } from '../log.js';
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { findModuleKo, gzippedKos } from '../kmod/find-ko.js';
import { KO_FORMS, moduleNameOfPath } from '../kmod/names.js';
import type { DepmodRunner } from '../host/runners.js';
import { makeTempDir } from '../host/temp-dir.js';
import type { KmodsLocation, KmodsSource } from './kmods-source.js';

export interface PreparedKmods extends KmodsLocation {
  kernelVersion: string;
  /** `<modulesRoot>/lib/modules/<kver>` */
  kernelDir: string;
  /** normalised module name → absolute path of its .ko, from modules.dep */
  koPaths: Map<string, string>;
  /** the scratch copy modprobe uses instead of the source's tree, if one was made */
  scratch?: string;
  /** removes the scratch copy, if one was made */
  release(): Promise<void>;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Asks each source in order; the first location wins. */
export async function locateKmods(
  sources: KmodsSource[],
  config: ModuleConfig,
  opts: { signal?: AbortSignal; log: Logger },
): Promise<KmodsLocation> {
  const tried: string[] = [];
  for (const source of sources) {
    const loc = await source.locate(config, opts.signal ? { signal: opts.signal } : {});
    if (loc) {
      opts.log.info({ source: source.name, origin: loc.origin }, `kmods for ${config.kernelVersion} found in ${loc.origin}`);
      return loc;
    }
    const d = (source as { describe?: (c: ModuleConfig) => string }).describe?.(config);
    tried.push(d ? `${source.name} (${d})` : source.name);
  }
  throw new OperationError(`no kmods found for kernel ${config.kernelVersion}; looked in: ${tried.join(', ') || 'no sources'}`);
}

/** Parses modules.dep into name → absolute .ko path. */
export async function readModulesDep(kernelDir: string): Promise<Map<string, string>> {
  const text = await readFile(join(kernelDir, 'modules.dep'), 'utf8');
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const rel = line.slice(0, colon).trim();
    const name = moduleNameOfPath(rel);
    map.set(name, isAbsolute(rel) ? rel : join(kernelDir, rel));
  }
  return map;
}

/** Replaces each .ko.gz of the scratch tree with its .ko, so a kmod without zlib can load it. */
async function gunzipKos(files: string[], log: Logger): Promise<void> {
  for (const gz of files) {
    const ko = gz.slice(0, -'.gz'.length);
    try {
      await pipeline(createReadStream(gz), createGunzip(), createWriteStream(ko, { flags: 'wx', mode: 0o644 }));
    } catch (err) {
      throw new OperationError(`cannot decompress ${basename(gz)}: ${(err as Error).message}`);
    }
    await rm(gz);
  }
  if (files.length > 0) log.info({ count: files.length }, `decompressed ${files.length} .ko.gz in the scratch copy (kmod may lack zlib)`);
}

/**
 * Locates and prepares the kmods. `runningKernel` is the node's release; when it differs from the config's
 * only by a trailing `+`, the scratch root also gets `lib/modules/<running>` pointing at the config's kernel,
 * because modprobe looks under the running release.
 */
export async function prepareKmods(opts: {
  sources: KmodsSource[];
  config: ModuleConfig;
  runningKernel: string;
  depmod: DepmodRunner;
  log: Logger;
  signal?: AbortSignal;
}): Promise<PreparedKmods> {
  const { config, log } = opts;
  const kver = config.kernelVersion;
  const loc = await locateKmods(opts.sources, config, opts);
  const kernelDir = join(loc.modulesRoot, 'lib', 'modules', kver);
  if (!(await exists(kernelDir))) {
    throw new OperationError(`${loc.origin} has no lib/modules/${kver} under ${config.modprobe.dirName}`);
  }
  if (config.modprobe.moduleName) {
    const ko = await findModuleKo(kernelDir, config.modprobe.moduleName);
    if (!ko) {
      throw new OperationError(
        `modprobe.moduleName: ${config.modprobe.moduleName}${KO_FORMS} is not under ${kernelDir}`,
      );
    }
  }
  const hasDep = await exists(join(kernelDir, 'modules.dep'));
  const needsAlias = opts.runningKernel !== kver && !(await exists(join(loc.modulesRoot, 'lib', 'modules', opts.runningKernel)));
  const gzipped = await gzippedKos(kernelDir);
  if (hasDep && !needsAlias && gzipped.length === 0) {
    return { ...loc, kernelVersion: kver, kernelDir, koPaths: await readModulesDep(kernelDir), release: async () => {} };
  }

  const scratch = await makeTempDir('kmm-worker-kmods-');
  const release = () => rm(scratch, { recursive: true, force: true });
  try {
    const scratchKernelDir = join(scratch, 'lib', 'modules', kver);
    await cp(kernelDir, scratchKernelDir, { recursive: true, verbatimSymlinks: true });
    await gunzipKos(gzipped.map((p) => join(scratchKernelDir, p.slice(kernelDir.length + 1))), log);
    // modules.dep names the .ko.gz files: index the decompressed ones instead
    if (!hasDep || gzipped.length > 0) await opts.depmod.generate(scratch, kver);
    if (needsAlias) {
      await symlink(kver, join(scratch, 'lib', 'modules', opts.runningKernel));
      log.info({ running: opts.runningKernel, kernelVersion: kver }, 'running kernel differs by a trailing +; linked it in the scratch copy');
    }
    log.debug({ scratch }, 'using a scratch copy of the kmods');
    return {
      ...loc,
      modulesRoot: scratch,
      scratch,
      kernelVersion: kver,
      kernelDir: scratchKernelDir,
      koPaths: await readModulesDep(scratchKernelDir),
      release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}
