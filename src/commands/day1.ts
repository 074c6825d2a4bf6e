/** `kmm-worker day1 pull|load|machineconfig` (docs/day1.md): flags in, one flow out. */
import type { Context } from '../context.js';
import type { Day1LoadFlags, Day1MachineConfigFlags, Day1PullFlags } from './day1-command.js';

export async function day1Pull(ctx: Context, flags: Day1PullFlags): Promise<number | void> {
  const { day1Settings } = await import('../day1/settings.js');
  const settings = day1Settings(flags);
  const { runDay1Pull } = await import('../day1/pull.js');
  const { day1PullPorts } = await import('../app/day1-deps.js');
  await runDay1Pull(ctx, settings, day1PullPorts(ctx, settings));
}

export async function day1Load(ctx: Context, flags: Day1LoadFlags): Promise<number | void> {
  const { day1Settings } = await import('../day1/settings.js');
  const settings = day1Settings(flags);
  const { runDay1Load } = await import('../day1/load.js');
  const { day1LoadPorts } = await import('../app/day1-deps.js');
  await runDay1Load(ctx, settings, day1LoadPorts(ctx, settings));
}

export async function day1MachineConfig(ctx: Context, flags: Day1MachineConfigFlags): Promise<number | void> {
  const { renderMachineConfig } = await import('../day1/machineconfig.js');
  ctx.stdout.write(renderMachineConfig(flags));
}
