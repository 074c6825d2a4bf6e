/**
 * `kmm-worker image ls` and `image prune`: the image cache under --images-dir.
 */
import type { Context } from '../context.js';
import { parseDuration } from '../duration.js';
import { listImages, pruneImages, type ListedImage } from '../store/inventory.js';
import type { ImageLsFlags, ImagePruneFlags } from './image-command.js';

function size(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)}GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)}MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)}KiB`;
  return `${bytes}B`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function machine(img: ListedImage) {
  const { reference, digest, root, bytes, lastUsed, files, manifestDigest, references, platform, selection } = img;
  return { reference, digest, root, bytes, lastUsed, files, manifestDigest, references, platform, selection };
}

export async function imageLs(ctx: Context, flags: ImageLsFlags): Promise<number | void> {
  const images = await listImages(ctx.opts.imagesDir);
  if (flags.json) {
    ctx.stdout.write(JSON.stringify(images.map(machine)) + '\n');
    return;
  }
  const rows = [['REFERENCE', 'DIGEST', 'SELECTION', 'SIZE', 'LAST USED', 'ROOT']];
  for (const i of images) {
    rows.push([i.reference, i.digest.slice(0, 19), i.selection, size(i.bytes), i.lastUsed, i.root]);
  }
  ctx.stdout.write(table(rows));
}

export async function imagePrune(ctx: Context, flags: ImagePruneFlags): Promise<number | void> {
  const olderThanMs = parseDuration(flags.olderThan);
  const dryRun = ctx.opts.dryRun;
  const removed = await pruneImages(ctx.opts.imagesDir, { olderThanMs, log: ctx.log, dryRun });
  if (flags.json) {
    ctx.stdout.write(JSON.stringify(removed.map((r) => ({ ...machine(r), reason: r.reason, ...(dryRun ? { dryRun: true } : {}) }))) + '\n');
    return;
  }
  const verb = dryRun ? 'would remove' : 'removed';
  for (const r of removed) ctx.stdout.write(`${verb} ${r.reference} ${r.digest.slice(0, 19)} ${size(r.bytes)} (${r.reason})\n`);
  const total = removed.reduce((n, r) => n + r.bytes, 0);
  const entries = `${removed.length} entr${removed.length === 1 ? 'y' : 'ies'}`;
  ctx.stdout.write(dryRun ? `# dry run: ${entries} would be removed, ${size(total)} would be freed\n` : `${entries} removed, ${size(total)} freed\n`);
}
