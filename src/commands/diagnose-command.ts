/** Registers `diagnose [config]` (docs/diagnose.md): its flags; `./diagnose.js` is loaded when it runs. */
import { DEFAULT_FIRMWARE_DIR } from '../config/defaults.js';
import { execute } from './execute.js';
import type { Program } from './global-options.js';

const diagnoseCommand = (program: Program) =>
  program
    .command('diagnose [config]')
    .description("read-only support bundle: kernel, module signing, the modules' live state against the image, firmware, cache, modprobe.d, kernel log, registry")
    .option('--firmware-path <dir>', `a host firmware directory to look for KMM firmware records in (also: firmware_class.path, ${DEFAULT_FIRMWARE_DIR})`)
    .option('--no-registry', 'do not contact the registry')
    .option('--json', 'print the report as JSON on stdout')
    .option('--output <file.tar.gz>', 'also write the report and the raw lines it was made from into a .tar.gz');

export type DiagnoseFlags = ReturnType<ReturnType<typeof diagnoseCommand>['opts']>;

export function registerDiagnose(program: Program): void {
  diagnoseCommand(program).action((config, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./diagnose.js')).diagnose(ctx, config, flags)));
}
