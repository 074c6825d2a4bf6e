import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface KmodFlags { [flag: string]: unknown }
export async function kmodLoad(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('kmodLoad: not implemented yet');
}

export async function kmodUnload(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('kmodUnload: not implemented yet');
}

