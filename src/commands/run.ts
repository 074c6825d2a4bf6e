/** `kmm-worker run <config>` — the daemon of DESIGN §9. */
import { isAbsolute } from 'node:path';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { parseHealthAddr } from '../daemon/health.js';
import { runModuleDaemon } from '../daemon/daemon.js';

export interface RunFlags {
  firmwarePath?: string;
  healthAddr?: string;
  /** seconds */
  checkInterval?: string;
}

let stoppedBySignal = false;
/** True once the daemon unloaded and stopped because of SIGTERM/SIGINT: that is success (exit 0), not 143. */
export const daemonStoppedBySignal = () => stoppedBySignal;

export async function runDaemon(ctx: Context, configPath: string, flags: RunFlags): Promise<number> {
  const firmwarePath = flags.firmwarePath ? flags.firmwarePath.replace(/(.)\/+$/, '$1') : undefined;
  if (firmwarePath !== undefined && !isAbsolute(firmwarePath)) {
    throw new UsageError(`--firmware-path must be an absolute host path, got '${flags.firmwarePath}'`);
  }
  const healthAddr = parseHealthAddr(flags.healthAddr ?? '127.0.0.1:8081');
  const seconds = Number(flags.checkInterval ?? '10');
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`--check-interval must be a positive number of seconds, got '${flags.checkInterval}'`);
  }
  await runModuleDaemon(ctx, { configPath, firmwarePath, healthAddr, checkIntervalMs: Math.round(seconds * 1000) });
  stoppedBySignal = ctx.signal.aborted;
  return 0;
}
