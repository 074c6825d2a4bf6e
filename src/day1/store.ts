/**
 * The Day-1 view of the image store (`--images-dir`): look an image up without any network, or pull it in.
 * A port, so the flows read as the contract and the store stays the cache's business.
 */
import type { Context } from '../context.js';
import type { KernelSelection } from '../extract/selection.js';
import { lookupStored, pullImage, type StoredImage } from '../store/pull.js';
import type { Day1Settings } from './settings.js';

/** What Day-1 reads of a store entry: its digest and the directory of its files. */
export type Day1Image = Pick<StoredImage, 'digest' | 'root'>;

export interface Day1Store {
  /** the images dir, for messages */
  dir: string;
  /** a complete entry for the reference, or undefined; never a network request */
  lookup(ref: string, selection: KernelSelection): Promise<Day1Image | undefined>;
  /** pulls into the store; fromCache = the entry was already complete */
  pull(ref: string, selection: KernelSelection): Promise<Day1Image & { fromCache: boolean }>;
}

/** What of the image the store keeps for Day-1: the running kernel's modules and the firmware dir. */
export function storeSelection(settings: Day1Settings, kernelVersion: string): KernelSelection {
  return {
    dirName: settings.dirName,
    kernelVersion,
    ...(settings.firmwareDir ? { firmwarePath: settings.firmwareDir } : {}),
  };
}

/** The real store under `--images-dir`; pulls honour the global credential options and `--insecure`. */
export function openDay1Store(ctx: Context, settings: Day1Settings): Day1Store {
  const { imagesDir, authFile, pullSecretsDir, hostRoot } = ctx.opts;
  return {
    dir: imagesDir,
    // a dry run leaves even the last-used time alone
    lookup: (ref, selection) => lookupStored(ref, imagesDir, selection, { touch: !ctx.opts.dryRun }),
    pull: (ref, selection) =>
      pullImage(ref, {
        imagesDir,
        // a complete entry for the reference is never fetched again
        policy: 'IfNotPresent',
        selection,
        insecure: settings.insecure,
        ...(authFile ? { authFile } : {}),
        pullSecretsDir,
        hostRoot,
        log: ctx.log,
        signal: ctx.signal,
      }),
  };
}
