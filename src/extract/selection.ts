/**
 * Which paths of an image an extraction writes. A load needs only `<dirName>/lib/modules/<kver>/` and
 * `<firmwarePath>/` and `<modprobedDir>/`; `image pull --all` needs everything.
 */
import { cleanEntryPath, isWithin } from './entry-path.js';
import { UsageError } from '../errors.js';

export interface KernelSelection {
  /** `modprobe.dirName`, e.g. /opt */
  dirName: string;
  kernelVersion: string;
  /** `modprobe.firmwarePath`: a directory inside the image */
  firmwarePath?: string;
  /** `modprobe.modprobedDir`: a directory of modprobe.d files inside the image */
  modprobedDir?: string;
}

export type Selection = KernelSelection | 'all';

export interface PathFilter {
  /** 'inside': the path is selected; 'ancestor': a directory on the way to a selected path; false: skipped */
  classify(path: string): 'inside' | 'ancestor' | false;
  /** the selected prefixes, relative to the root ('' = everything) */
  prefixes: string[];
}

function cleanSelectionPath(value: string, flag: string): string {
  try {
    return cleanEntryPath(value, flag);
  } catch {
    throw new UsageError(`${flag} "${value}" must not contain ".."`);
  }
}

export function selectionPrefixes(selection: Selection): string[] {
  if (selection === 'all') return [''];
  if (!selection.kernelVersion || selection.kernelVersion.includes('/')) {
    throw new UsageError(`kernel version "${selection.kernelVersion}" is not a kernel release`);
  }
  const dir = cleanSelectionPath(selection.dirName, 'dirName');
  const prefixes = [[dir, 'lib', 'modules', selection.kernelVersion].filter(Boolean).join('/')];
  if (selection.firmwarePath !== undefined && selection.firmwarePath !== '') {
    prefixes.push(cleanSelectionPath(selection.firmwarePath, 'firmwarePath'));
  }
  if (selection.modprobedDir !== undefined && selection.modprobedDir !== '') {
    prefixes.push(cleanSelectionPath(selection.modprobedDir, 'modprobedDir'));
  }
  return prefixes;
}

export function pathFilter(selection: Selection): PathFilter {
  const prefixes = selectionPrefixes(selection);
  if (prefixes.includes('')) return { prefixes: [''], classify: () => 'inside' };
  return {
    prefixes,
    classify(path) {
      let ancestor = false;
      for (const p of prefixes) {
        if (isWithin(path, p)) return 'inside';
        if (path === '' || p.startsWith(path + '/')) ancestor = true;
      }
      return ancestor ? 'ancestor' : false;
    },
  };
}

/** A stable text key of a selection, for cache keys and metadata. */
export function selectionKey(selection: Selection): string {
  if (selection === 'all') return 'all';
  return selectionPrefixes(selection).join('\n');
}
