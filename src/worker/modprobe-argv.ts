/** The modprobe command lines of docs/kmod.md, load step 6 and unload step 3, and the module names a raw argv names. */
import type { ModuleConfig } from '../config/module-config.js';

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

// modprobe options that take a value as the next argument
const WITH_VALUE = new Set(['-d', '--dirname', '-S', '--set-version', '-C', '--config']);

/** The modules an arbitrary modprobe argv acts on (for rawArgs): all operands with -a/-r, else the first. */
export function modulesOfArgv(argv: string[]): string[] {
  const operands: string[] = [];
  let all = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('--')) {
      if (a === '--all' || a === '--remove') all = true;
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      const flags = a.slice(1);
      if (/[ar]/.test(flags.replace(/[dSC].*$/, ''))) all = true;
      // a value glued to or following a short option that takes one (-d/opt, -dv /opt is not valid modprobe)
      if (/^[^dSC]*[dSC]$/.test(flags)) i++;
      continue;
    }
    operands.push(a);
  }
  return all ? operands : operands.slice(0, 1);
}

/** The modules a config loads: modulesLoadingOrder, else moduleName, else what rawArgs.load names. */
export function modulesOfConfig(config: ModuleConfig): string[] {
  const m = config.modprobe;
  if (m.rawArgs) return modulesOfArgv(m.rawArgs.load);
  return m.modulesLoadingOrder.length > 0 ? [...m.modulesLoadingOrder] : [m.moduleName!];
}
