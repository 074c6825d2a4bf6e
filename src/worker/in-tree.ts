/** docs/kmod.md, load step 4: take out the in-tree modules an image replaces, with one `modprobe -r -v` on the host's tree. */
import { OperationError } from '../errors.js';
import type { WorkerDeps } from './ports.js';

/** An in-use failure that names the holders, or undefined when the module is not in use. */
export async function inUseError(deps: WorkerDeps, name: string): Promise<OperationError | undefined> {
  const s = await deps.host.moduleState(name);
  if (s.kind !== 'loaded' || s.refcnt <= 0) return undefined;
  const by = s.holders.length > 0 ? `used by ${s.holders.join(', ')}` : 'held by a process or the kernel';
  return new OperationError(`module ${name} is in use (refcnt ${s.refcnt}, ${by}); unload those first`);
}

export async function removeInTreeModules(deps: WorkerDeps, names: string[], field: string): Promise<void> {
  if (names.length === 0) return;
  const loaded: string[] = [];
  for (const name of names) {
    const s = await deps.host.moduleState(name);
    if (s.kind === 'builtin') {
      throw new OperationError(`${field}: ${name} is built into the running kernel and cannot be removed or replaced`);
    }
    if (s.kind === 'absent') {
      deps.log.info({ module: name }, `in-tree module ${name} is not loaded; nothing to remove`);
      deps.plan.print(`# in-tree module ${name} is not loaded: nothing to remove`);
    } else loaded.push(name);
  }
  if (loaded.length === 0) return;
  try {
    await deps.modprobe.run(['-r', '-v', ...loaded]);
  } catch (err) {
    for (const name of loaded) {
      const inUse = await inUseError(deps, name);
      if (inUse) throw new OperationError(`cannot remove in-tree module: ${inUse.message}`, { cause: err });
    }
    throw err;
  }
}
