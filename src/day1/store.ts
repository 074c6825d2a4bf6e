/**
 * The Day-1 view of the image store (`--images-dir`): look an image up without any network, or pull it in.
 * A port, so the flows read as the contract and the store stays the cache's business.
 */
import type { Context } from '../context.js';
import { lookupStored, pullImage } from '../store/pull.js';
import type { Day1Settings } from './settings.js';

/** What of the image the store keeps for Day-1: the running kernel's modules and the firmware dir. */
export interface StoreSelection {
  dirName: string;
  kernelVersion: string;
  firmwarePath?: string;
}

export interface StoredImage {
  digest: string;
  /** absolute directory holding the extracted image files */
  root: string;
}

export interface Day1Store {
  /** the images dir, for messages */
  dir: string;
  /** a complete entry for the reference, or undefined; never a network request */
  lookup(ref: string, selection: StoreSelection): Promise<StoredImage | undefined>;
  /** pulls into the store; fromCache = the entry was already complete */
  pull(ref: string, selection: StoreSelection): Promise<StoredImage & { fromCache: boolean }>;
}

export function storeSelection(settings: Day1Settings, kernelVersion: string): StoreSelection {
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
