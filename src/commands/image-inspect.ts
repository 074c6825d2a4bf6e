/**
 * `kmm-worker image inspect <ref> [--json] [--platform P] [--insecure]` (docs/images.md): what an image is
 * (digest, media type, platforms, layers) and which kernels and .ko files it carries, read from the layers
 * without writing to disk.
 */
import type { Context } from '../context.js';
import { listKernelModules } from '../extract/kmod-listing.js';
import { openImage } from '../image/open.js';
import { sourceOptions } from './image-source-options.js';
import { parseTimeout, withDeadline } from '../image/deadline.js';
import { parseReference } from '../image/reference.js';
import type { ImageInspectFlags } from './image-command.js';

export interface ImageInspectResult {
  reference: string;
  digest: string;
  mediaType: string;
  manifestDigest: string;
  platforms: string[];
  config: { digest: string; size: number; mediaType: string };
  layers: Array<{ digest: string; size: number; mediaType: string }>;
  kernels: Record<string, string[]>;
}

export async function inspectImage(ctx: Context, ref: string, flags: ImageInspectFlags): Promise<ImageInspectResult> {
  const ms = parseTimeout(flags.timeout);
  const name = parseReference(ref).name;
  return withDeadline({ signal: ctx.signal, ms, what: `image ${name}: inspect` }, (signal) =>
    inspectWithin({ ...ctx, signal }, ref, flags));
}

async function inspectWithin(ctx: Context, ref: string, flags: ImageInspectFlags): Promise<ImageInspectResult> {
  const img = await openImage(ref, { ...sourceOptions(ctx, flags), log: ctx.log });
  const { kernels } = await listKernelModules(img, { signal: ctx.signal });
  return {
    reference: img.reference,
    digest: img.digest,
    mediaType: img.mediaType,
    manifestDigest: img.manifestDigest,
    platforms: img.platforms,
    config: { digest: img.config.digest, size: img.config.size, mediaType: img.config.mediaType },
    layers: img.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    kernels,
  };
}

function human(r: ImageInspectResult): string {
  const lines = [
    `Reference:  ${r.reference}`,
    `Digest:     ${r.digest}`,
    `Media type: ${r.mediaType}`,
  ];
  if (r.manifestDigest !== r.digest) lines.push(`Manifest:   ${r.manifestDigest} (selected platform)`);
  lines.push(`Platforms:  ${r.platforms.join(', ') || '-'}`, `Layers:     ${r.layers.length}`);
  for (const l of r.layers) lines.push(`  ${l.digest}  ${String(l.size).padStart(10)}  ${l.mediaType}`);
  const kvers = Object.keys(r.kernels);
  lines.push(`Kernels:    ${kvers.length ? kvers.join(', ') : 'none (no lib/modules/<kernel>/ in the image)'}`);
  for (const k of kvers) {
    const mods = r.kernels[k]!;
    lines.push(`  ${k}: ${mods.length} module${mods.length === 1 ? '' : 's'}`);
    for (const m of mods) lines.push(`    ${m}`);
  }
  return lines.join('\n') + '\n';
}

export async function imageInspect(ctx: Context, ref: string, flags: ImageInspectFlags): Promise<number> {
  const result = await inspectImage(ctx, ref, flags);
  ctx.stdout.write(flags.json ? JSON.stringify(result) + '\n' : human(result));
  return 0;
}
