import type { Context } from '../context.js';
import { OperationError } from '../errors.js';

export interface Day1PullFlags { [flag: string]: unknown }
export async function day1Pull(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('day1Pull: not implemented yet');
}

export interface Day1LoadFlags { [flag: string]: unknown }
export async function day1Load(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('day1Load: not implemented yet');
}

export interface Day1MachineConfigFlags { [flag: string]: unknown }
export async function day1MachineConfig(_ctx: Context, ..._args: unknown[]): Promise<number | void> {
  throw new OperationError('day1MachineConfig: not implemented yet');
}

