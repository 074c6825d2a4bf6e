/** Registers `kmod load|unload <config>` (docs/kmod.md): their flags; `./kmod.js` is loaded when one runs. */
import type { Command, OptionValues } from '@commander-js/extra-typings';
import { execute } from './execute.js';
import type { Program } from './global-options.js';

function firmwareFlags<A extends unknown[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>) {
  return cmd
    .option('--firmware-path <dir>', 'host firmware directory (also written to firmware_class.path)')
    // the upstream Go worker's flags, as the KMM operator passes them
    .option('--set-firmware-mount-path <dir>', 'upstream form: host firmware directory (no firmware_class.path write)');
}

const loadCommand = (kmod: KmodGroup) =>
  firmwareFlags(kmod.command('load <config>').description('load the module described by a ModuleConfig file'))
    .option('--set-firmware-class-path <dir>', 'upstream form: value to write to firmware_class.path');

const unloadCommand = (kmod: KmodGroup) =>
  firmwareFlags(kmod.command('unload <config>').description('unload the module described by a ModuleConfig file'));

const kmodGroup = (program: Program) => program.command('kmod').description('load or unload a module as the KMM worker does');
type KmodGroup = ReturnType<typeof kmodGroup>;

/** `kmod load`'s flags; `kmod unload` has all but --set-firmware-class-path */
export type KmodFlags = ReturnType<ReturnType<typeof loadCommand>['opts']>;

export function registerKmod(program: Program): void {
  const kmod = kmodGroup(program);
  loadCommand(kmod).action((config, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./kmod.js')).kmodLoad(ctx, config, flags)));
  unloadCommand(kmod).action((config, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./kmod.js')).kmodUnload(ctx, config, flags)));
}
