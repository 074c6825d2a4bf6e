import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface ImageInspectFlags { [flag: string]: unknown }
export async function imageInspect(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('imageInspect: not implemented yet');
}

