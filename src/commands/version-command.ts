/** Registers `version`. */
import { execute } from './execute.js';
import type { Program } from './global-options.js';

export function registerVersion(program: Program): void {
  program
    .command('version')
    .description('print the version')
    .action((_flags, cmd) =>
      execute(cmd, async (ctx) => {
        const { version } = await import('../version.js');
        ctx.stdout.write(`kmm-worker ${version()}\n`);
      }));
}
