/** The modprobe command lines of docs/kmod.md, load step 6 and unload step 3, and the module names a raw argv names. */
import type { ModuleConfig } from '../config/module-config.js';
import { modulesOfArgv } from '../kmod/modprobe-args.js';

/** The load calls, in order: rawArgs.load alone; else modulesLoadingOrder last→second, then moduleName. */
export function loadArgvs(config: ModuleConfig, modulesRoot: string): string[][] {
  const m = config.modprobe;
  if (m.rawArgs) return [[...m.rawArgs.load]];
  const base = ['-v', '-d', modulesRoot, ...m.args.load];
  const deps = m.modulesLoadingOrder.slice(1).reverse();
  return [...deps.map((name) => [...base, name]), [...base, m.moduleName!, ...m.parameters]];
}

/** The one unload call: rawArgs.unload; else `-r -v -d <root> [args.unload] <modules>`. */
export function unloadArgv(config: ModuleConfig, modulesRoot: string): string[] {
  const m = config.modprobe;
  if (m.rawArgs) return [...m.rawArgs.unload];
  const names = m.modulesLoadingOrder.length > 0 ? m.modulesLoadingOrder : [m.moduleName!];
  return ['-r', '-v', '-d', modulesRoot, ...m.args.unload, ...names];
}

/** The modules a config loads: modulesLoadingOrder, else moduleName, else what rawArgs.load names. */
export function modulesOfConfig(config: ModuleConfig): string[] {
  const m = config.modprobe;
  if (m.rawArgs) return modulesOfArgv(m.rawArgs.load);
  return m.modulesLoadingOrder.length > 0 ? [...m.modulesLoadingOrder] : [m.moduleName!];
}
