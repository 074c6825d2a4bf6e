/**
 * Day-1's wiring: the ports of `day1 pull` and `day1 load`, built once from the command's Context and settings.
 * One `Host` per run: the running kernel it reads names the image, and the load's steps use the same one.
 */
import type { Context } from '../context.js';
import { Host } from '../host/host.js';
import type { Day1LoadPorts } from '../day1/load.js';
import type { Day1PullPorts } from '../day1/pull.js';
import { runRebootCommand } from '../day1/reboot.js';
import type { Day1Settings } from '../day1/settings.js';
import { openDay1Store } from '../day1/store.js';
import { createWorkerDeps } from './worker-deps.js';

export function day1PullPorts(ctx: Context, settings: Day1Settings): Day1PullPorts {
  return {
    host: new Host(ctx.opts.hostRoot),
    store: openDay1Store(ctx, settings),
    reboot: (argv) => runRebootCommand(argv, ctx.log, ctx.signal),
  };
}

export function day1LoadPorts(ctx: Context, settings: Day1Settings): Day1LoadPorts {
  const host = new Host(ctx.opts.hostRoot);
  return {
    host,
    store: openDay1Store(ctx, settings),
    // Day-1 runs before the network: no Events, whatever --report says
    wire: (config, choices) => createWorkerDeps(ctx, config, { ...choices, report: false, host }),
  };
}
