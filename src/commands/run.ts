import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface RunFlags { [flag: string]: unknown }
export async function runDaemon(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('runDaemon: not implemented yet');
}

