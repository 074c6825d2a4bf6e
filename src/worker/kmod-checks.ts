/**
 * Issue 19: before the first host change, ask of every module the load will insert (the config's modules and,
 * through `depends`, the image's modules they pull in) what the kernel will ask: is it signed by a key the node
 * trusts when signatures are enforced, was it built for this kernel, and is every symbol it needs there?
 * A module that cannot load stops the load here, with the in-tree modules and the firmware untouched.
 */
import { OperationError } from '../errors.js';
import type { ModuleConfig } from '../config/module-config.js';
import { normaliseModuleName } from '../kmod/names.js';
import { readKoFile, type KoFile } from '../kmod/ko-file.js';
import { modinfoField } from '../kmod/elf.js';
import { signatureVerdict, symbolsVerdict, vermagicVerdict, type Verdict } from '../kmod/verdicts.js';
import { readNodeKeys, readSignatureEnforcement } from '../host/module-signing.js';
import { kernelSymbolsHaving, moduleTreeSymbols } from '../host/kernel-symbols.js';
import type { WorkerDeps } from './ports.js';
import type { PreparedKmods } from './kmods.js';
import { modulesOfConfig } from './modprobe-argv.js';

/** Symbols the kernel's module loader resolves itself (ppc64's TOC base). */
const LOADER_SYMBOLS = new Set(['.TOC.']);

/** The image's .ko files the load will insert: the config's modules and what they depend on, found in the image. */
export async function modulesToInsert(names: string[], kmods: Pick<PreparedKmods, 'koPaths'>): Promise<Map<string, KoFile>> {
  const out = new Map<string, KoFile>();
  const queue = names.map(normaliseModuleName);
  while (queue.length) {
    const name = queue.shift()!;
    const path = kmods.koPaths.get(name);
    if (out.has(name) || !path) continue;
    const ko = await readKoFile(path);
    out.set(name, ko);
    for (const dep of (modinfoField(ko.elf, 'depends') ?? '').split(',')) if (dep) queue.push(normaliseModuleName(dep));
  }
  return out;
}

function refuse(v: Verdict): void {
  if (!v.ok) throw new OperationError(v.message);
}

export async function checkKmodsFitKernel(deps: WorkerDeps, config: ModuleConfig, kmods: PreparedKmods): Promise<void> {
  const modules = await modulesToInsert(modulesOfConfig(config), kmods);
  if (modules.size === 0) return;
  const [enforcement, { keys }] = await Promise.all([readSignatureEnforcement(deps.host), readNodeKeys(deps.host)]);
  for (const [name, ko] of modules) {
    const v = signatureVerdict(name, ko, enforcement, keys);
    refuse(v);
    deps.log[v.taints ? 'info' : 'debug']({ module: name, path: ko.path }, v.message);
    deps.plan.print(`# signature: ${v.message}`);
  }
  for (const [name, ko] of modules) {
    const v = vermagicVerdict(name, ko, config.kernelVersion);
    refuse(v);
    deps.plan.print(`# abi: ${v.message}`);
  }
  await checkSymbols(deps, modules, kmods);
}

async function checkSymbols(deps: WorkerDeps, modules: Map<string, KoFile>, kmods: PreparedKmods): Promise<void> {
  const fromImage = new Set([...modules.values()].flatMap((ko) => ko.elf.exportedSymbols));
  const wanted = new Set(
    [...modules.values()].flatMap((ko) => ko.elf.undefinedSymbols).filter((s) => !fromImage.has(s) && !LOADER_SYMBOLS.has(s)),
  );
  const kernel = await kernelSymbolsHaving(deps.host, kmods.kernelVersion, wanted);
  if (!kernel) {
    deps.log.info('neither /proc/kallsyms nor a System.map can be read: the symbols the modules need are not checked');
    deps.plan.print('# abi: neither /proc/kallsyms nor a System.map can be read: symbols not checked');
    return;
  }
  const fromKernel = kernel.found;
  const stillWanted = [...wanted].some((s) => !fromKernel.has(s));
  const hostTree = stillWanted ? await moduleTreeSymbols(deps.host.path(`/lib/modules/${kmods.kernelVersion}`)) : new Map<string, string>();
  const hostModules = new Set([...hostTree.values()].map(normaliseModuleName));
  for (const [name, ko] of modules) {
    let missing = ko.elf.undefinedSymbols.filter((s) => wanted.has(s) && !fromKernel.has(s) && !hostTree.has(s));
    if (!kernel.complete && missing.length > 0) {
      // without CONFIG_KALLSYMS_ALL kallsyms lists functions only: an exported variable cannot be told apart
      deps.log.info({ module: name, symbols: missing }, `/proc/kallsyms lists no data symbols (CONFIG_KALLSYMS_ALL off): ${missing.length} symbols of ${name} not found there are not checked`);
      missing = [];
    }
    const missingModules: string[] = [];
    for (const dep of (modinfoField(ko.elf, 'depends') ?? '').split(',').filter(Boolean).map(normaliseModuleName)) {
      if (!modules.has(dep) && !hostModules.has(dep) && (await deps.host.moduleState(dep)).kind === 'absent') missingModules.push(dep);
    }
    const v = symbolsVerdict(name, ko, missing, missingModules, 'the running kernel, the image, the host module tree');
    refuse(v);
    deps.plan.print(`# abi: ${v.message}`);
  }
}
