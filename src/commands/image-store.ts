import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface ImageLsFlags { [flag: string]: unknown }
export async function imageLs(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('imageLs: not implemented yet');
}

export interface ImagePruneFlags { [flag: string]: unknown }
export async function imagePrune(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('imagePrune: not implemented yet');
}

