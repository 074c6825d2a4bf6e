import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface PreflightFlags { [flag: string]: unknown }
export async function preflight(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('preflight: not implemented yet');
}

