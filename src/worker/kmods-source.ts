/**
 * Where the kmods of a config come from (docs/kmod.md, load step 3). The load/unload flows ask each source in order and
 * the first location wins: the shared dir a KMM init container prepared, then (added by the image cache) a pull
 * of `containerImage`. A source's tree is read-only to the flows.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModuleConfig } from '../config/module-config.js';

export interface KmodsLocation {
  /** the `modprobe -d` directory: holds lib/modules/<kver> */
  modulesRoot: string;
  /** the image's root: `modprobe.firmwarePath` resolves under it */
  imageRoot: string;
  /** where it came from, for logs and messages (a path, an image reference and digest) */
  origin: string;
}

export interface KmodsSource {
  name: string;
  /** undefined: this source has nothing for the config (the next source is asked) */
  locate(config: ModuleConfig, opts: { signal?: AbortSignal }): Promise<KmodsLocation | undefined>;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** `<shared-dir>/<dirName>/lib/modules/<kver>`, as a KMM init container leaves it; firmware under `<shared-dir>`. */
export class SharedDirKmodsSource implements KmodsSource {
  readonly name = 'shared-dir';
  constructor(private readonly sharedDir: string) {}

  async locate(config: ModuleConfig): Promise<KmodsLocation | undefined> {
    const modulesRoot = join(this.sharedDir, config.modprobe.dirName);
    const kernelDir = join(modulesRoot, 'lib', 'modules', config.kernelVersion);
    if (!(await isDir(kernelDir))) return undefined;
    return { modulesRoot, imageRoot: this.sharedDir, origin: `shared dir ${kernelDir}` };
  }

  /** what this source looks for, for the "nothing found" message */
  describe(config: ModuleConfig): string {
    return join(this.sharedDir, config.modprobe.dirName, 'lib', 'modules', config.kernelVersion);
  }
}

/**
 * A source built on first use: the image source pulls in the whole registry stack, which a load served from
 * the shared dir never needs (start-up time matters under QEMU and in Day-1 boot).
 */
export function lazySource(name: string, build: () => Promise<KmodsSource>): KmodsSource {
  let built: Promise<KmodsSource> | undefined;
  return {
    name,
    locate(config, opts) {
      built ??= build();
      return built.then((s) => s.locate(config, opts));
    },
  };
}
