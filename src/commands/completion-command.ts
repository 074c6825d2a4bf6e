/** Registers `completion <shell>`: the script is made from the whole command tree, so register it last. */
import { UsageError } from '../errors.js';
import { execute } from './execute.js';
import type { Program } from './global-options.js';

export function registerCompletion(program: Program): void {
  program
    .command('completion <shell>')
    .description('print a bash or zsh completion script')
    .addHelpText('after', '\nExamples:\n  $ kmm-worker completion bash > /etc/bash_completion.d/kmm-worker\n  $ source <(kmm-worker completion zsh)\n')
    .action((shell, _flags, cmd) =>
      execute(cmd, async (ctx) => {
        if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`completion: shell must be bash or zsh, got '${shell}'`);
        const { completionScript } = await import('../completion.js');
        ctx.stdout.write(completionScript(program, shell));
      }));
}
