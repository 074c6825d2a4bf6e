/**
 * How every command runs: its action gets a `Context` (global options, logger, stdout, stop signal), and what it
 * throws becomes the one-line message and exit code of README.md "Exit codes". Command modules call `execute`
 * from their commander action, after the flags are parsed and before the command's own code is loaded.
 */
import type { Context } from '../context.js';
import { InterruptedError, OperationError, UsageError, exitCodeOf, oneLine } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { stepsRunning, whenNoStep } from '../stop-guard.js';
import { globalOptions, type GlobalFlags } from './global-options.js';

/** How long a stopping command may take between its steps before the process ends itself (KMM_STOP_GRACE_SECONDS). */
const STOP_GRACE_MS = (Number(process.env.KMM_STOP_GRACE_SECONDS) > 0 ? Number(process.env.KMM_STOP_GRACE_SECONDS) : 5) * 1000;

/** Runs one command with a context; maps errors to the exit codes of README.md "Exit codes" and prints the one-line cause. */
export async function execute(cmd: { optsWithGlobals(): GlobalFlags }, action: (ctx: Context) => Promise<number | void>): Promise<void> {
  const opts = globalOptions(cmd.optsWithGlobals());
  let log: Logger;
  try {
    log = await createLogger({ level: opts.logLevel, format: opts.logFormat });
  } catch (err) {
    throw new UsageError(`--log-level: ${oneLine(err)}`);
  }
  const controller = new AbortController();
  let settled = false;
  // A flow stops between its steps; a step that blocks (or a second signal) must not keep the process up
  // until SIGKILL. Forced exit waits for a running host step (src/stop-guard.ts), then for the action to
  // settle by itself for a moment, and only then ends the process with the signal's exit code.
  let forcing = false;
  const forceExit = async (why: string) => {
    if (forcing || settled) return;
    forcing = true;
    if (stepsRunning() > 0) {
      log.warn({ steps: stepsRunning() }, `${why}: waiting for the running step to finish`);
      await whenNoStep();
    }
    await new Promise((r) => setTimeout(r, 500).unref());
    if (settled) return;
    const reason = controller.signal.reason as InterruptedError;
    log.error({ exitCode: reason.exitCode }, `${reason.message}: ${why}; exiting without waiting for it`);
    log.flush?.();
    // process.exit() would wait for the thread pool, where the blocked step sits (libuv joins its threads at
    // exit): end by the signal's default action instead, which is what the shell and the kubelet then see
    // (128 + the signal number: 143 for SIGTERM, 130 for SIGINT)
    process.removeAllListeners(reason.signal);
    process.kill(process.pid, reason.signal);
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 1000).unref();
  };
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (controller.signal.aborted) {
      log.warn({ signal }, 'second signal received; still finishing cleanup');
      void forceExit('second signal');
      return;
    }
    log.warn({ signal }, 'signal received; stopping');
    controller.abort(new InterruptedError(signal));
    setTimeout(() => void forceExit(`the command did not stop within ${STOP_GRACE_MS / 1000}s`), STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: Context = { opts, log, stdout: process.stdout, signal: controller.signal };
  try {
    // a command that returns a code has dealt with any signal itself (the daemon stops on SIGTERM with 0)
    const code = await action(ctx);
    if (code !== undefined) process.exitCode = code;
    else if (controller.signal.aborted) process.exitCode = exitCodeOf(controller.signal.reason);
  } catch (err) {
    const reason = controller.signal.aborted && !(err instanceof UsageError) ? controller.signal.reason : err;
    const code = exitCodeOf(reason instanceof InterruptedError ? reason : err);
    log.error({ exitCode: code }, oneLine(err));
    if (err instanceof OperationError && err.detail) log.debug({ detail: err.detail }, 'failure detail');
    if (!(err instanceof UsageError || err instanceof OperationError || err instanceof InterruptedError)) {
      log.debug({ err }, 'unexpected error');
    }
    process.exitCode = code;
  } finally {
    settled = true;
    // the handlers stay: a signal arriving while the process exits is logged, not allowed to change the code
    log.flush?.();
  }
}
