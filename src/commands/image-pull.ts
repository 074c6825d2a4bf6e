import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface ImagePullFlags { [flag: string]: unknown }
export async function imagePull(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('imagePull: not implemented yet');
}

