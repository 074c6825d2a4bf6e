/**
 * Applies one layer's entries onto the extraction root, with OCI layer semantics: whiteouts and opaque
 * markers delete what lower layers put there, later entries replace earlier ones, and only the selected
 * paths (plus the directories leading to them) are written.
 */
import type { Logger } from '../log.js';
import { InterruptedError, OperationError, errorMessage } from '../errors.js';
import { classifyEntryPath, cleanEntryPath } from './entry-path.js';
import type { RawEntryBody } from './layer-entries.js';
import type { SafeRoot } from './safe-root.js';
import type { PathFilter } from './selection.js';
import type { Header } from 'tar-stream';

export interface LayerStats {
  entries: number;
  files: number;
  bytes: number;
  skipped: number;
}

export async function applyLayer(
  root: SafeRoot,
  entries: AsyncIterable<{ header: Header; stream: RawEntryBody }>,
  filter: PathFilter,
  opts: { log: Logger; layer: string; /** sees the path of every entry, selected or not */ onPath?: (path: string) => void },
): Promise<LayerStats> {
  const stats: LayerStats = { entries: 0, files: 0, bytes: 0, skipped: 0 };
  /** paths this layer wrote: an opaque marker hides only what lower layers left */
  const written = new Set<string>();
  const opaqueDirs: string[] = [];
  const fail = (err: unknown, name: string): never => {
    if (err instanceof InterruptedError) throw err;
    if (err instanceof OperationError) throw new OperationError(`layer ${opts.layer}: ${err.message}`, { cause: err });
    const msg = errorMessage(err);
    throw new OperationError(`layer ${opts.layer}: cannot extract "${name}": ${msg}`, { cause: err });
  };

  for await (const { header, stream } of entries) {
    stats.entries++;
    const name = header.name;
    try {
      const kind = classifyEntryPath(cleanEntryPath(name), name);
      if (kind.kind === 'ignore') {
        await stream.skip();
        continue;
      }
      if (kind.kind === 'opaque') {
        await stream.skip();
        if (filter.classify(kind.dir)) opaqueDirs.push(kind.dir);
        continue;
      }
      if (kind.kind === 'whiteout') {
        await stream.skip();
        if (filter.classify(kind.target) && !written.has(kind.target) && (await root.realParents(kind.target, name))) {
          await root.remove(kind.target);
        }
        continue;
      }
      const path = kind.path;
      opts.onPath?.(path);
      const selected = filter.classify(path);
      if (!selected || path === '') {
        await stream.skip();
        if (!selected) stats.skipped++;
        continue;
      }
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
          // Only directories lead to selected paths; a file at an ancestor position would only be removed.
          if (selected === 'ancestor') {
            await root.remove(path);
            await stream.skip();
            break;
          }
          stats.bytes += await root.writeFile(path, name, stream, header.mode ?? 0o644, header.size ?? 0);
          stats.files++;
          break;
        case 'directory':
          await stream.skip();
          await root.makeDir(path, name, header.mode ?? 0o755);
          break;
        case 'symlink':
          await stream.skip();
          await root.makeSymlink(path, name, header.linkname ?? '');
          break;
        case 'link': {
          await stream.skip();
          const target = cleanEntryPath(header.linkname ?? '', `hardlink target of "${name}"`);
          if (!(await root.makeHardlink(path, name, target))) {
            if (filter.classify(target) === 'inside') {
              throw new OperationError(`hardlink "${name}" points at "${header.linkname}", which no earlier entry created`);
            }
            opts.log.warn({ layer: opts.layer, entry: name, target: header.linkname }, 'hardlink target is outside the selected paths; entry skipped');
            stats.skipped++;
          }
          break;
        }
        default:
          await stream.skip();
          opts.log.warn({ layer: opts.layer, entry: name, type: header.type }, 'device, fifo or unknown entry type dropped');
          stats.skipped++;
          continue;
      }
      written.add(path);
    } catch (err) {
      // No draining: the failure ends the layer, and the iterator's cleanup releases the blob.
      fail(err, name);
    }
  }

  for (const dir of opaqueDirs) {
    if (!(await root.realParents(dir === '' ? 'x' : `${dir}/x`, `${dir}/.wh..wh..opq`))) continue;
    await hideLowerContent(root, dir, written);
  }
  return stats;
}

/** Removes under `dir` everything this layer did not write itself (an opaque directory shows only its layer). */
async function hideLowerContent(root: SafeRoot, dir: string, written: Set<string>): Promise<void> {
  if (!(await root.isRealDir(dir))) return;
  for (const child of await root.listDir(dir)) {
    const rel = dir === '' ? child : `${dir}/${child}`;
    const keep = written.has(rel) || hasWrittenBelow(written, rel);
    if (!keep) await root.remove(rel);
    else if (await root.isRealDir(rel)) await hideLowerContent(root, rel, written);
  }
}

function hasWrittenBelow(written: Set<string>, dir: string): boolean {
  const prefix = dir + '/';
  for (const p of written) if (p.startsWith(prefix)) return true;
  return false;
}
