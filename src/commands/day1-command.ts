/**
 * Registers `day1 pull|load|machineconfig` (docs/day1.md): their flags, each `pull`/`load` flag with its KMM_DAY1_*
 * variable; `./day1.js` is loaded when one runs.
 */
import { Option } from '@commander-js/extra-typings';
import { DEFAULT_DIR_NAME, DEFAULT_FIRMWARE_DIR, DEFAULT_REBOOT_COMMAND } from '../config/defaults.js';
import { execute } from './execute.js';
import type { Program } from './global-options.js';
import { list } from './option-values.js';

// Every day1 flag also reads a KMM_DAY1_* variable, so the systemd units take their settings from one
// EnvironmentFile (systemd/kmm-day1.env); an empty variable means the default, which is why these flags have
// no commander default: day1/settings.ts applies it to a flag and a blank variable alike.
const day1Option = <F extends string>(flags: F, description: string, env: string) => new Option(flags, description).env(env);
const imageOption = () =>
  day1Option('--image <repo>', 'image repository (the tag is the running kernel release)', 'KMM_DAY1_IMAGE').makeOptionMandatory();
const moduleOption = () => day1Option('--module <name>', 'module name', 'KMM_DAY1_MODULE').makeOptionMandatory();
const dirNameOption = () =>
  day1Option('--dir-name <dir>', `the directory holding lib/modules in the image (default ${DEFAULT_DIR_NAME})`, 'KMM_DAY1_DIR_NAME');
const firmwareDirOption = () => day1Option('--firmware-dir <path>', 'the firmware directory inside the image', 'KMM_DAY1_FIRMWARE_DIR');

const day1Group = (program: Program) =>
  program.command('day1').description('Day-1: load a module before the network, pull its image after');
type Day1Group = ReturnType<typeof day1Group>;

const pullCommand = (day1: Day1Group) =>
  day1
    .command('pull')
    .description('store <image>:<running kernel> in the images dir; reboot if something new was stored')
    .addOption(imageOption())
    .addOption(moduleOption())
    .addOption(dirNameOption())
    .addOption(firmwareDirOption())
    .addOption(
      day1Option('--reboot-command <cmd>', `run (split on spaces, no shell) after storing a new image (default "${DEFAULT_REBOOT_COMMAND}")`,
        'KMM_DAY1_REBOOT_COMMAND'),
    )
    .option('--insecure', 'allow plain HTTP and unverified TLS');

const loadCommand = (day1: Day1Group) =>
  day1
    .command('load')
    .description('load the module from the local store only; never touches the network')
    .addOption(imageOption())
    .addOption(moduleOption())
    .addOption(day1Option('--in-tree-modules <a,b>', 'in-tree modules to remove first', 'KMM_DAY1_IN_TREE_MODULES').argParser(list))
    .addOption(dirNameOption())
    .addOption(firmwareDirOption())
    .addOption(day1Option('--firmware-path <dir>', `host firmware directory (default ${DEFAULT_FIRMWARE_DIR})`, 'KMM_DAY1_HOST_FIRMWARE_PATH'));

const machineConfigCommand = (day1: Day1Group) =>
  day1
    .command('machineconfig')
    .description('print a MachineConfig that installs the Day-1 units on RHCOS nodes')
    .requiredOption('--name <name>', 'MachineConfig name')
    .requiredOption('--pool <pool>', 'machine config pool (role label)')
    .requiredOption('--image <repo>', 'kmod image repository')
    .requiredOption('--module <name>', 'module name')
    .option('--in-tree-modules <a,b>', 'in-tree modules to remove first', list)
    .option('--firmware-dir <path>', 'the firmware directory inside the image')
    .option('--worker-image <ref>', 'the kmm-worker container image run by podman');

export type Day1PullFlags = ReturnType<ReturnType<typeof pullCommand>['opts']>;
export type Day1LoadFlags = ReturnType<ReturnType<typeof loadCommand>['opts']>;
export type Day1MachineConfigFlags = ReturnType<ReturnType<typeof machineConfigCommand>['opts']>;

export function registerDay1(program: Program): void {
  const day1 = day1Group(program);
  pullCommand(day1).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./day1.js')).day1Pull(ctx, flags)));
  loadCommand(day1).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./day1.js')).day1Load(ctx, flags)));
  machineConfigCommand(day1).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./day1.js')).day1MachineConfig(ctx, flags)));
}
