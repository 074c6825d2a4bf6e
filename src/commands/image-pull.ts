/**
 * `kmm-worker image pull <ref>`: pull an image into the cache (--images-dir) and extract the kernel's modules
 * and firmware dir (or everything with --all); prints where the files are.
 */
import type { Context } from '../context.js';
import { UsageError, oneLine } from '../errors.js';
import { Host } from '../host/host.js';
import type { Selection } from '../extract/selection.js';
import { describeDownload, parsePullPolicy, planPull, pullImage } from '../store/pull.js';
import { progressReporter } from '../store/progress.js';
import { parseTimeout } from '../image/deadline.js';
import type { ImagePullFlags } from './image-command.js';

/** Without --kernel the running kernel's modules are wanted; a host whose release cannot be read is a usage error. */
function runningKernel(hostRoot: string): Promise<string> {
  return new Host(hostRoot).runningKernel().catch((err: unknown) => {
    throw new UsageError(`--kernel not given and ${oneLine(err)}; give --kernel KVER or --all`);
  });
}

export async function imagePull(ctx: Context, ref: string, flags: ImagePullFlags): Promise<number | void> {
  const policy = parsePullPolicy(flags.pullPolicy);
  const timeoutMs = parseTimeout(flags.timeout);
  if (flags.all && flags.kernel) throw new UsageError('--all and --kernel exclude each other');
  const selection: Selection = flags.all
    ? 'all'
    : {
        dirName: flags.dirName,
        kernelVersion: flags.kernel ?? (await runningKernel(ctx.opts.hostRoot)),
        ...(flags.firmwareDir ? { firmwarePath: flags.firmwareDir } : {}),
      };
  if (ctx.opts.dryRun) {
    // --dry-run writes nothing: not the cache, not its lock files, not even the last-used time
    const plan = await planPull(ref, {
      imagesDir: ctx.opts.imagesDir, policy, selection, insecure: flags.insecure, platform: flags.platform,
      authFile: ctx.opts.authFile, pullSecretsDir: ctx.opts.pullSecretsDir, hostRoot: ctx.opts.hostRoot, log: ctx.log, signal: ctx.signal,
    });
    if (flags.json) ctx.stdout.write(JSON.stringify({ dryRun: true, ...plan }) + '\n');
    else if (plan.action === 'download') ctx.stdout.write(`# dry run: ${describeDownload(plan)}\n`);
    else ctx.stdout.write(`# dry run: ${plan.image.reference} ${plan.image.digest} is in the cache: ${plan.image.root}\n`);
    return;
  }
  const progress = progressReporter(process.stderr, ctx.log, ref);
  let pulled;
  try {
    pulled = await pullImage(ref, {
      imagesDir: ctx.opts.imagesDir,
      policy,
      selection,
      insecure: flags.insecure,
      platform: flags.platform,
      authFile: ctx.opts.authFile,
      pullSecretsDir: ctx.opts.pullSecretsDir,
      hostRoot: ctx.opts.hostRoot,
      log: ctx.log,
      signal: ctx.signal,
      onProgress: progress?.update,
      timeoutMs,
    });
  } finally {
    progress?.done();
  }
  const { reference, digest, root, files, bytes } = pulled;
  if (flags.json) {
    ctx.stdout.write(JSON.stringify({ reference, digest, root, files, bytes, manifestDigest: pulled.manifestDigest, fromCache: pulled.fromCache }) + '\n');
  } else {
    ctx.stdout.write(`${reference} ${digest}\n${root} (${files} files, ${bytes} bytes${pulled.fromCache ? ', from the cache' : ''})\n`);
  }
}
