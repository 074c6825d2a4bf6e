/**
 * The second source of kmods (docs/kmod.md, load step 3): when no KMM init container left them in the shared dir, pull
 * the config's `containerImage` into the cache with its `imagePullPolicy` and `insecurePull`, selecting only
 * the kernel's modules dir and the firmware dir.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ModuleConfig } from '../config/module-config.js';
import { OperationError } from '../errors.js';
import type { Logger } from '../log.js';
import type { KmodsLocation, KmodsSource } from './kmods-source.js';
import { describeDownload, planPull, pullImage, type PullOptions, type PullResult } from '../store/pull.js';
import { progressReporter } from '../store/progress.js';

export interface ImageKmodsSourceOptions {
  imagesDir: string;
  authFile?: string;
  pullSecretsDir?: string;
  hostRoot?: string;
  log: Logger;
  /** where TTY progress goes (stderr); none = one log line per layer only */
  progress?: NodeJS.WriteStream;
  /** a dry run never fills the cache: a cached image is used as is, a missing one is only described */
  dryRun?: boolean;
}

export class ImageKmodsSource implements KmodsSource {
  readonly name = 'image';
  constructor(private readonly opts: ImageKmodsSourceOptions) {}

  async locate(config: ModuleConfig, o: { signal?: AbortSignal }): Promise<KmodsLocation | undefined> {
    const { dirName, firmwarePath, modprobedDir } = config.modprobe;
    const progress = progressReporter(this.opts.progress, this.opts.log, config.containerImage);
    const pullOpts: PullOptions = {
      imagesDir: this.opts.imagesDir,
      policy: config.imagePullPolicy,
      insecure: config.insecurePull,
      selection: {
        dirName,
        kernelVersion: config.kernelVersion,
        ...(firmwarePath ? { firmwarePath } : {}),
        ...(modprobedDir ? { modprobedDir } : {}),
      },
      authFile: this.opts.authFile,
      pullSecretsDir: this.opts.pullSecretsDir,
      hostRoot: this.opts.hostRoot,
      log: this.opts.log,
      signal: o.signal,
      onProgress: progress?.update,
    };
    let pulled: PullResult;
    if (this.opts.dryRun) {
      // a dry run never fills the cache: a cached image is used as is, a missing one is only described
      progress?.done();
      const plan = await planPull(config.containerImage, pullOpts);
      if (plan.action === 'download') {
        throw new OperationError(`dry run: ${describeDownload(plan)}; the rest of the plan needs its files, so it stops here`);
      }
      pulled = plan.image;
    } else {
      try {
        pulled = await pullImage(config.containerImage, pullOpts);
      } finally {
        progress?.done();
      }
    }
    const modulesRoot = path.join(pulled.root, dirName);
    const kernelDir = path.join(modulesRoot, 'lib', 'modules', config.kernelVersion);
    const isDir = await stat(kernelDir).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      throw new OperationError(
        `image ${pulled.reference} has no ${path.posix.join(dirName, 'lib/modules', config.kernelVersion)} (kernelVersion and modprobe.dirName must match the image)`,
      );
    }
    return { modulesRoot, imageRoot: pulled.root, origin: `image ${pulled.reference}@${pulled.manifestDigest}` };
  }
}
