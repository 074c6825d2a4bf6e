/**
 * Registers `image pull|inspect|ls|prune` (docs/images.md, docs/cache.md): their flags and defaults; each
 * command's own module is loaded when it runs.
 */
import type { Command, OptionValues } from '@commander-js/extra-typings';
import { DEFAULT_DIR_NAME, DEFAULT_PULL_POLICY } from '../config/defaults.js';
import { DEFAULT_OPERATION_TIMEOUT } from '../image/deadline.js';
import { execute } from './execute.js';
import type { Program } from './global-options.js';

const imageGroup = (program: Program) => program.command('image').description('pull and inspect kmod images');
type ImageGroup = ReturnType<typeof imageGroup>;

/** The flags of every command that reads an image from its registry; `giveUp` says what --timeout bounds. */
function registryFlags<A extends unknown[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>, giveUp: string) {
  return cmd
    .option('--platform <os/arch[/variant]>', 'platform to select from an index')
    .option('--insecure', 'allow plain HTTP and unverified TLS for this registry')
    .option('--json', 'print one JSON object on stdout')
    .option('--timeout <duration>', `${giveUp} after this long (e.g. 90s, 10m)`, DEFAULT_OPERATION_TIMEOUT);
}

const pullCommand = (image: ImageGroup) =>
  registryFlags(image
    .command('pull <ref>')
    .description('pull an image into the cache and extract it')
    .option('--kernel <kver>', 'extract only the modules of this kernel (and the firmware dir)')
    .option('--dir-name <dir>', 'the directory holding lib/modules in the image', DEFAULT_DIR_NAME)
    .option('--firmware-dir <path>', 'the firmware directory inside the image')
    .option('--all', 'extract every file of the image')
    .option('--pull-policy <policy>', 'IfNotPresent | Always | Never', DEFAULT_PULL_POLICY), 'give up the whole pull');

const inspectCommand = (image: ImageGroup) =>
  registryFlags(image
    .command('inspect <ref>')
    .description('show digest, platforms, layers and the kernels and .ko files an image carries'), 'give up');

const lsCommand = (image: ImageGroup) =>
  image
    .command('ls')
    .description('list the cached images')
    .option('--json', 'print JSON on stdout');

const pruneCommand = (image: ImageGroup) =>
  image
    .command('prune')
    .description('remove cache entries unused for a while')
    .option('--older-than <duration>', 'remove entries not used for this long (e.g. 7d, 12h, 0s)', '7d')
    .option('--json', 'print JSON on stdout');

export type ImagePullFlags = ReturnType<ReturnType<typeof pullCommand>['opts']>;
export type ImageInspectFlags = ReturnType<ReturnType<typeof inspectCommand>['opts']>;
export type ImageLsFlags = ReturnType<ReturnType<typeof lsCommand>['opts']>;
export type ImagePruneFlags = ReturnType<ReturnType<typeof pruneCommand>['opts']>;

export function registerImage(program: Program): void {
  const image = imageGroup(program);
  pullCommand(image).action((ref, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./image-pull.js')).imagePull(ctx, ref, flags)));
  inspectCommand(image).action((ref, flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./image-inspect.js')).imageInspect(ctx, ref, flags)));
  lsCommand(image).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./image-store.js')).imageLs(ctx, flags)));
  pruneCommand(image).action((flags, cmd) =>
    execute(cmd, async (ctx) => (await import('./image-store.js')).imagePrune(ctx, flags)));
}
