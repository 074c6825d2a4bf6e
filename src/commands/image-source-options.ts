/** ImageSourceOptions from the global options and an image command's own flags (--platform, --insecure). */
import type { Context } from '../context.js';
import { parsePlatform } from '../image/platform.js';
import type { ImageSourceOptions } from '../image/types.js';

export function sourceOptions(ctx: Pick<Context, 'opts' | 'signal'>, flags: { platform?: string; insecure?: boolean } = {})
  : ImageSourceOptions {
  // a malformed --platform is a usage error before anything else happens
  if (flags.platform) parsePlatform(flags.platform);
  return {
    insecure: Boolean(flags.insecure),
    platform: flags.platform,
    authFile: ctx.opts.authFile,
    pullSecretsDir: ctx.opts.pullSecretsDir,
    hostRoot: ctx.opts.hostRoot,
    signal: ctx.signal,
  };
}
