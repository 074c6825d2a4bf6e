/** Registers `preflight` (docs/preflight.md): its flags and defaults; `./preflight.js` is loaded when it runs. */
import { DEFAULT_DIR_NAME } from '../config/defaults.js';
import { execute } from './execute.js';
import type { Program } from './global-options.js';
import { positiveInt } from './option-values.js';

const preflightCommand = (program: Program) =>
  program
    .command('preflight')
    .description('validate Modules against an upcoming kernel')
    .option('--kernel <kver>', 'the kernel the cluster upgrades to (or from --preflight / the --write-status target)')
    .option('--preflight <file>', 'read the kernel from a PreflightValidationOCP file')
    .option('--module <file...>', 'Module YAML files (multi-document, kind List too; - reads stdin)')
    .option('--from-cluster', 'validate every Module of the cluster')
    .option('--parallel <n>', 'modules validated at once', positiveInt('--parallel'), 8)
    .option('--timeout <seconds>', 'time limit for each module, in seconds', positiveInt('--timeout'), 60)
    .option('--insecure', 'allow plain HTTP and unverified TLS')
    .option('--platform <os/arch[/variant]>', 'platform to select from an index')
    .option('--json', 'print JSON on stdout')
    .option('--write-status <name>', "write the result into the status of that PreflightValidation (or PreflightValidationOCP, whichever the cluster serves)")
    .option('--trusted-keys <dir>', 'DER/PEM certificates the upcoming kernel trusts: check each module is signed by one')
    .option('--symvers <file>', "the upcoming kernel's Module.symvers: check it exports every symbol a module needs")
    .option('--day1-image <repo>', 'also check the Day-1 image <repo>:<kernel> (with --day1-module): it must be pushed before nodes boot the kernel')
    .option('--day1-module <name>', 'the module the Day-1 units load')
    .option('--day1-dir-name <path>', `the Day-1 image directory holding lib/modules/<kernel> (default ${DEFAULT_DIR_NAME})`);

export type PreflightFlags = ReturnType<ReturnType<typeof preflightCommand>['opts']>;

export function registerPreflight(program: Program): void {
  preflightCommand(program).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./preflight.js')).preflight(ctx, flags)));
}
