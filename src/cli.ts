/**
 * The command line of README.md "Global options": the program, its global options, and one registration per
 * command module. Each `commands/*-command.ts` declares its command's flags and defaults (their types are
 * inferred from those declarations) and loads the command's code only when it runs, so starting
 * `kmm-worker kmod load` does not pay for the Kubernetes client or the registry stack it does not use.
 */
import { Command, CommanderError } from '@commander-js/extra-typings';
import { cutEchoes, exitCodeOf, oneLine, UsageError } from './errors.js';
import { addExamples } from './help-examples.js';
import { version } from './version.js';
import { addGlobalOptions } from './commands/global-options.js';
import { registerVersion } from './commands/version-command.js';
import { registerKmod } from './commands/kmod-command.js';
import { registerRun } from './commands/run-command.js';
import { registerImage } from './commands/image-command.js';
import { registerPreflight } from './commands/preflight-command.js';
import { registerDiagnose } from './commands/diagnose-command.js';
import { registerDay1 } from './commands/day1-command.js';
import { registerCompletion } from './commands/completion-command.js';

export function buildProgram() {
  const program = addGlobalOptions(
    new Command('kmm-worker')
      .description('Node-side agent of Kernel Module Management: pull kmod images, install firmware, load modules')
      .showHelpAfterError('(run with --help for usage)')
      .exitOverride()
      // commander's own errors echo the argument too ("unknown option '...'")
      .configureOutput({ outputError: (text, write) => write(text.split('\n').map(cutEchoes).join('\n')) })
      // every subcommand's help lists the global options too: they are where --dry-run and --host-root live
      .configureHelp({ showGlobalOptions: true })
      .version(`kmm-worker ${version()}`, '-V, --version', 'print the version'),
  );
  // in the order of the help's command list
  for (const register of [registerVersion, registerKmod, registerRun, registerImage, registerPreflight, registerDiagnose,
    registerDay1, registerCompletion]) {
    register(program);
  }
  addExamples(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not failures; every other parse error is a command-line error (exit 2)
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`kmm-worker: ${oneLine(err)}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`kmm-worker: ${oneLine(err)}\n`);
    process.exitCode = exitCodeOf(err);
  }
}
