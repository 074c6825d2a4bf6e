/**
 * The reboot the pull service asks for after storing a new image (docs/day1.md). The command is split on spaces and
 * run without a shell, so nothing in the environment file can smuggle shell syntax into a root command.
 */
import { execa } from 'execa';
import { OperationError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';

export { DEFAULT_REBOOT_COMMAND } from '../config/defaults.js';

/** `"systemctl reboot"` → `["systemctl", "reboot"]`; empty → UsageError (a pull that cannot reboot is a misconfiguration). */
export function parseRebootCommand(command: string): string[] {
  const argv = command.split(' ').filter((word) => word !== '');
  if (argv.length === 0) throw new UsageError('--reboot-command must name a command, got an empty value');
  return argv;
}

/** Runs the reboot command once; its output goes to the log. A failure is an OperationError naming the command. */
export async function runRebootCommand(argv: string[], log: Logger, signal?: AbortSignal): Promise<void> {
  const [file, ...args] = argv as [string, ...string[]];
  log.info({ command: argv }, `rebooting: ${argv.join(' ')}`);
  const result = await execa(file, args, { reject: false, all: true, stdin: 'ignore', cancelSignal: signal });
  const output = (result.all ?? '').trim();
  if (output) log.info({ command: file, output }, `${file}: ${output.split('\n', 1)[0]}`);
  if (result.failed) {
    const why = result.exitCode !== undefined ? `exited with code ${result.exitCode}` : (result.shortMessage ?? 'failed');
    throw new OperationError(`reboot command '${argv.join(' ')}' ${why}`, { detail: output || undefined });
  }
}
