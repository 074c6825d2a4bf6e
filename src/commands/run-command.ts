/** Registers `run <config>` (docs/daemon.md): its flags and defaults; `./run.js` is loaded when it runs. */
import { execute } from './execute.js';
import type { Program } from './global-options.js';

const runCommand = (program: Program) =>
  program
    .command('run <config>')
    .description('load, then stay up: health endpoints, config changes, re-load; unload on SIGTERM')
    .option('--firmware-path <dir>', 'host firmware directory (also written to firmware_class.path)')
    .option('--health-addr <host:port>', 'address of /healthz and /readyz', '127.0.0.1:8081')
    .option('--check-interval <seconds>', 'how often the config file and the module are checked', '10');

export type RunFlags = ReturnType<ReturnType<typeof runCommand>['opts']>;

export function registerRun(program: Program): void {
  runCommand(program).action((config, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./run.js')).runDaemon(ctx, config, flags)));
}
