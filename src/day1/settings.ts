/**
 * The `day1 pull|load` flags (or their KMM_DAY1_* variables from the units' EnvironmentFile), checked before
 * anything is read or touched: a bad value is a UsageError (exit 2). An empty value means the default, so the
 * shipped environment file can list every setting with blanks.
 */
import { absoluteHostPath } from '../config/host-path.js';
import { UsageError } from '../errors.js';
import { DEFAULT_DIR_NAME, DEFAULT_FIRMWARE_DIR } from '../config/defaults.js';
import { checkImageRepository } from '../config/day1-image-ref.js';
import { DEFAULT_REBOOT_COMMAND, parseRebootCommand } from './reboot.js';

export interface Day1Flags {
  image?: string;
  module?: string;
  inTreeModules?: string[];
  dirName?: string;
  firmwareDir?: string;
  firmwarePath?: string;
  rebootCommand?: string;
  insecure?: boolean;
}

export interface Day1Settings {
  /** repository without tag; the tag is the running kernel release */
  repo: string;
  moduleName: string;
  inTreeModules: string[];
  /** the image directory holding lib/modules/<kver> */
  dirName: string;
  /** the firmware directory inside the image */
  firmwareDir: string | undefined;
  /** the host firmware directory; set only when the user named one */
  hostFirmwarePath: string | undefined;
  rebootCommand: string[];
  insecure: boolean;
}

const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const blankToUndefined = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());

function imagePath(flag: string, value: string): string {
  if (!value.startsWith('/') || value.split('/').includes('..')) {
    throw new UsageError(`${flag} must be an absolute path inside the image, got '${value}'`);
  }
  return value;
}

export function day1Settings(flags: Day1Flags): Day1Settings {
  const image = blankToUndefined(flags.image);
  if (!image) throw new UsageError('--image (KMM_DAY1_IMAGE) is required: the kmod image repository');
  const moduleName = blankToUndefined(flags.module);
  if (!moduleName) throw new UsageError('--module (KMM_DAY1_MODULE) is required: the module to load');
  if (!MODULE_NAME.test(moduleName)) throw new UsageError(`--module must be a kernel module name, got '${moduleName}'`);
  const inTreeModules = flags.inTreeModules ?? [];
  for (const name of inTreeModules) {
    if (!MODULE_NAME.test(name)) throw new UsageError(`--in-tree-modules must list kernel module names, got '${name}'`);
  }
  const dirName = imagePath('--dir-name', blankToUndefined(flags.dirName) ?? DEFAULT_DIR_NAME);
  const firmwareDirFlag = blankToUndefined(flags.firmwareDir);
  const firmwareDir = firmwareDirFlag === undefined ? undefined : imagePath('--firmware-dir', firmwareDirFlag);
  const hostFirmwarePath = absoluteHostPath('--firmware-path', blankToUndefined(flags.firmwarePath));
  return {
    repo: checkImageRepository(image),
    moduleName,
    inTreeModules,
    dirName,
    firmwareDir,
    hostFirmwarePath,
    rebootCommand: parseRebootCommand(blankToUndefined(flags.rebootCommand) ?? DEFAULT_REBOOT_COMMAND),
    insecure: Boolean(flags.insecure),
  };
}

/** The host firmware directory a Day-1 load copies firmware into (and points firmware_class.path at). */
export const hostFirmwareDir = (s: Day1Settings) => s.hostFirmwarePath ?? DEFAULT_FIRMWARE_DIR;
