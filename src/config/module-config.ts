/**
 * The ModuleConfig of docs/kmod.md, "The config file" (upstream `kmm.sigs.x-k8s.io/v1beta1` ModuleConfig): strict parsing and
 * validation. Every problem is a UsageError whose message starts with the field path, so a user (or the
 * operator's log) sees at once which field to fix.
 */
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { UsageError } from '../errors.js';
import { MAX_CONFIG_BYTES, readRegularFile } from '../bounded-read.js';
import { parseReference } from '../image/reference.js';
import { normaliseModuleName } from '../kmod/names.js';
import { DEFAULT_DIR_NAME, DEFAULT_PULL_POLICY } from './defaults.js';

export type ImagePullPolicy = 'IfNotPresent' | 'Always' | 'Never';

export interface ModprobeArgs {
  load: string[];
  unload: string[];
}

export interface ModprobeSpec {
  /** absent only when rawArgs is set */
  moduleName?: string;
  parameters: string[];
  /** the directory of the image that holds lib/modules; default /opt */
  dirName: string;
  /** directory inside the image whose contents are copied into the host firmware dir */
  firmwarePath?: string;
  /**
   * directory inside the image holding modprobe.d files (regular files only), made visible to every modprobe
   * call beside the node's own configuration (upstream KMM's ModprobeSpec.modprobedDir)
   */
  modprobedDir?: string;
  /** empty, or >= 2 names with [0] == moduleName */
  modulesLoadingOrder: string[];
  args: ModprobeArgs;
  rawArgs?: ModprobeArgs;
}

/** Normalised: defaults applied, the legacy `inTreeModuleToRemove` merged into `inTreeModulesToRemove`. */
export interface ModuleConfig {
  kernelVersion: string;
  containerImage: string;
  imagePullPolicy: ImagePullPolicy;
  insecurePull: boolean;
  inTreeModulesToRemove: string[];
  modprobe: ModprobeSpec;
}

export const PULL_POLICIES: readonly ImagePullPolicy[] = ['IfNotPresent', 'Always', 'Never'];
// Module names as the kernel knows them (KBUILD_MODNAME); nothing that could become a path or an option.
export const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
// A kernel release names a directory: no separators, no whitespace, not "." or "..".
const KERNEL_RELEASE = /^[A-Za-z0-9_.+~-]+$/;

// Limits of the kernel and of exec (F5 of issue 14): checked here so that a load that cannot succeed fails
// before its first host change. MODULE_NAME_LEN is 64 - sizeof(unsigned long): 55 bytes and a NUL on 64-bit;
// a release is a utsname field of 65 bytes with its NUL.
export const MAX_MODULE_NAME_BYTES = 55;
export const MAX_KERNEL_RELEASE_BYTES = 64;
/** items in one list of the config (parameters, args, modules); far above any real module */
export const MAX_LIST_ITEMS = 1000;
/** all the modprobe arguments the config contributes, in bytes: well under exec's 128 KiB per-string and 2 MiB total */
export const MAX_ARGV_BYTES = 64 * 1024;
/** paths inside the image, and the image reference (PATH_MAX) */
const MAX_PATH_BYTES = 4096;

/** A user value for a message: control characters escaped, cut at 80 characters. */
export function shown(v: string): string {
  const cut = v.length > 80 ? `${v.slice(0, 80)}...` : v;
  return cut.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

type Path = string;
const child = (path: Path, key: string) => (path ? `${path}.${key}` : key);
const fail = (path: Path, what: string): never => {
  throw new UsageError(`${path} ${what}`);
};

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `a string`;
  return `a ${typeof v}`;
}

/** Empty values (absent, null, "", [], {}) of optional fields are accepted as "not set" (Go marshalling). */
const isUnset = (v: unknown) => v === undefined || v === null;

function optString(obj: Record<string, unknown>, key: string, path: Path): string | undefined {
  const v = obj[key];
  if (isUnset(v)) return undefined;
  if (typeof v !== 'string') return fail(child(path, key), `must be a string, got ${typeName(v)}`);
  return v === '' ? undefined : v;
}

function reqString(obj: Record<string, unknown>, key: string, path: Path): string {
  const v = optString(obj, key, path);
  if (v === undefined) return fail(child(path, key), 'is required');
  if (v.trim() !== v) return fail(child(path, key), `must not start or end with whitespace`);
  return v;
}

function optBool(obj: Record<string, unknown>, key: string, path: Path): boolean {
  const v = obj[key];
  if (isUnset(v)) return false;
  if (typeof v !== 'boolean') return fail(child(path, key), `must be true or false, got ${typeName(v)}`);
  return v;
}

function optStringList(obj: Record<string, unknown>, key: string, path: Path): string[] {
  const v = obj[key];
  const p = child(path, key);
  if (isUnset(v)) return [];
  if (!Array.isArray(v)) return fail(p, `must be a list of strings, got ${typeName(v)}`);
  if (v.length > MAX_LIST_ITEMS) return fail(p, `has ${v.length} items; at most ${MAX_LIST_ITEMS} are allowed`);
  return v.map((item, i) => {
    if (typeof item !== 'string') return fail(`${p}[${i}]`, `must be a string, got ${typeName(item)}`);
    if (item === '') return fail(`${p}[${i}]`, 'must not be empty');
    return item;
  });
}

function optMap(obj: Record<string, unknown>, key: string, path: Path): Record<string, unknown> | undefined {
  const v = obj[key];
  if (isUnset(v)) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) return fail(child(path, key), `must be a mapping, got ${typeName(v)}`);
  return v as Record<string, unknown>;
}

function onlyKnownFields(obj: Record<string, unknown>, known: readonly string[], path: Path): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) fail(child(path, key), `is not a known field (known: ${known.join(', ')})`);
  }
}

function checkModuleName(name: string, path: Path): void {
  if (!MODULE_NAME.test(name)) fail(path, `'${shown(name)}' is not a valid module name (letters, digits, '_' and '-')`);
  if (byteLength(name) > MAX_MODULE_NAME_BYTES) {
    fail(path, `'${shown(name)}' is ${byteLength(name)} bytes long; the kernel allows module names of at most ${MAX_MODULE_NAME_BYTES}`);
  }
}

function checkImagePath(value: string, path: Path): void {
  if (byteLength(value) > MAX_PATH_BYTES) fail(path, `is longer than ${MAX_PATH_BYTES} bytes`);
  if (!value.startsWith('/')) fail(path, `must be an absolute path inside the image, got '${value}'`);
  if (value.split('/').some((seg) => seg === '..')) fail(path, `must not contain '..', got '${value}'`);
}

function noDuplicates(names: string[], path: Path): void {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const norm = normaliseModuleName(name);
    const first = seen.get(norm);
    if (first !== undefined) fail(`${path}[${i}]`, `'${name}' duplicates ${path}[${first}]`);
    seen.set(norm, i);
  });
}

function parseArgs(obj: Record<string, unknown>, key: string, path: Path): ModprobeArgs | undefined {
  const m = optMap(obj, key, path);
  if (!m) return undefined;
  const p = child(path, key);
  onlyKnownFields(m, ['load', 'unload'], p);
  return { load: optStringList(m, 'load', p), unload: optStringList(m, 'unload', p) };
}

function parseModprobe(obj: Record<string, unknown>): ModprobeSpec {
  const path = 'modprobe';
  onlyKnownFields(
    obj,
    ['moduleName', 'parameters', 'dirName', 'firmwarePath', 'modprobedDir', 'modulesLoadingOrder', 'args', 'rawArgs'],
    path,
  );
  const moduleName = optString(obj, 'moduleName', path);
  const parameters = optStringList(obj, 'parameters', path);
  const dirName = optString(obj, 'dirName', path) ?? DEFAULT_DIR_NAME;
  const firmwarePath = optString(obj, 'firmwarePath', path);
  const modprobedDir = optString(obj, 'modprobedDir', path);
  const modulesLoadingOrder = optStringList(obj, 'modulesLoadingOrder', path);
  const args = parseArgs(obj, 'args', path) ?? { load: [], unload: [] };
  let rawArgs = parseArgs(obj, 'rawArgs', path);
  // `rawArgs: {}` or both lists null is what an unset pointer looks like after some marshallers: not set.
  if (rawArgs && rawArgs.load.length === 0 && rawArgs.unload.length === 0) rawArgs = undefined;

  checkImagePath(dirName, 'modprobe.dirName');
  if (firmwarePath !== undefined) {
    checkImagePath(firmwarePath, 'modprobe.firmwarePath');
    if (firmwarePath.split('/').every((s) => s === '' || s === '.')) {
      fail('modprobe.firmwarePath', 'must name a directory below the image root, not the root itself');
    }
  }

  if (modprobedDir !== undefined) {
    checkImagePath(modprobedDir, 'modprobe.modprobedDir');
    if (modprobedDir.split('/').every((s) => s === '' || s === '.')) {
      fail('modprobe.modprobedDir', 'must name a directory below the image root, not the root itself');
    }
  }

  if (rawArgs) {
    if (moduleName !== undefined) fail('modprobe.rawArgs', 'cannot be combined with modprobe.moduleName');
    if (rawArgs.load.length === 0) fail('modprobe.rawArgs.load', 'is required when modprobe.rawArgs is set');
    if (rawArgs.unload.length === 0) fail('modprobe.rawArgs.unload', 'is required when modprobe.rawArgs is set');
    if (parameters.length > 0) fail('modprobe.parameters', 'cannot be combined with modprobe.rawArgs');
    if (args.load.length > 0 || args.unload.length > 0) fail('modprobe.args', 'cannot be combined with modprobe.rawArgs');
    if (modulesLoadingOrder.length > 0) fail('modprobe.modulesLoadingOrder', 'cannot be combined with modprobe.rawArgs');
  } else {
    if (moduleName === undefined) fail('modprobe.moduleName', 'is required unless modprobe.rawArgs is set');
    checkModuleName(moduleName!, 'modprobe.moduleName');
  }

  parameters.forEach((p, i) => {
    // modprobe would read a leading '-' as an option, not a module parameter
    if (p.startsWith('-')) fail(`modprobe.parameters[${i}]`, `'${shown(p)}' is not a module parameter (name or name=value)`);
    if (!/^[A-Za-z0-9_-]+(=|$)/.test(p)) fail(`modprobe.parameters[${i}]`, `'${shown(p)}' is not a module parameter (name or name=value)`);
  });
  for (const list of ['load', 'unload'] as const) {
    args[list].forEach((a, i) => {
      if (!a.startsWith('-')) fail(`modprobe.args.${list}[${i}]`, `'${shown(a)}' must be a modprobe option (starting with '-')`);
    });
  }

  if (modulesLoadingOrder.length > 0) {
    modulesLoadingOrder.forEach((n, i) => checkModuleName(n, `modprobe.modulesLoadingOrder[${i}]`));
    if (modulesLoadingOrder.length < 2) {
      fail('modprobe.modulesLoadingOrder', 'must list at least 2 modules (moduleName first, then what it depends on)');
    }
    if (modulesLoadingOrder[0] !== moduleName) {
      fail('modprobe.modulesLoadingOrder[0]', `must equal modprobe.moduleName ('${moduleName}'), got '${modulesLoadingOrder[0]}'`);
    }
    noDuplicates(modulesLoadingOrder, 'modprobe.modulesLoadingOrder');
  }

  // what reaches modprobe's command line: bounded so exec cannot fail with E2BIG after host changes
  const argv = [...parameters, ...args.load, ...args.unload, ...(rawArgs?.load ?? []), ...(rawArgs?.unload ?? []), ...modulesLoadingOrder];
  const argvBytes = argv.reduce((n, a) => n + byteLength(a) + 1, 0);
  if (argvBytes > MAX_ARGV_BYTES) {
    fail('modprobe', `parameters and arguments add up to ${argvBytes} bytes; at most ${MAX_ARGV_BYTES} are allowed on modprobe's command line`);
  }

  return {
    ...(moduleName !== undefined ? { moduleName } : {}),
    parameters,
    dirName,
    ...(firmwarePath !== undefined ? { firmwarePath } : {}),
    ...(modprobedDir !== undefined ? { modprobedDir } : {}),
    modulesLoadingOrder,
    args,
    ...(rawArgs ? { rawArgs } : {}),
  };
}

function validate(root: unknown): ModuleConfig {
  if (root === null || typeof root !== 'object' || Array.isArray(root)) {
    throw new UsageError(`the config must be a mapping of ModuleConfig fields, got ${typeName(root)}`);
  }
  const obj = root as Record<string, unknown>;
  onlyKnownFields(
    obj,
    ['kernelVersion', 'containerImage', 'imagePullPolicy', 'insecurePull', 'inTreeModulesToRemove', 'inTreeModuleToRemove', 'modprobe'],
    '',
  );
  const kernelVersion = reqString(obj, 'kernelVersion', '');
  if (!KERNEL_RELEASE.test(kernelVersion) || kernelVersion === '.' || kernelVersion === '..') {
    fail('kernelVersion', `'${shown(kernelVersion)}' is not a kernel release (like 6.1.0-27-amd64)`);
  }
  if (byteLength(kernelVersion) > MAX_KERNEL_RELEASE_BYTES) {
    fail('kernelVersion', `'${shown(kernelVersion)}' is ${byteLength(kernelVersion)} bytes long; a kernel release has at most ${MAX_KERNEL_RELEASE_BYTES}`);
  }
  const containerImage = reqString(obj, 'containerImage', '');
  checkContainerImage(containerImage);
  const policy = optString(obj, 'imagePullPolicy', '') ?? DEFAULT_PULL_POLICY;
  if (!PULL_POLICIES.includes(policy as ImagePullPolicy)) {
    fail('imagePullPolicy', `must be one of ${PULL_POLICIES.join(', ')}, got '${policy}'`);
  }
  const insecurePull = optBool(obj, 'insecurePull', '');
  const list = optStringList(obj, 'inTreeModulesToRemove', '');
  const legacy = optString(obj, 'inTreeModuleToRemove', '');
  if (legacy !== undefined && list.length > 0) {
    fail('inTreeModuleToRemove', 'cannot be combined with inTreeModulesToRemove (it is the deprecated form of it)');
  }
  const inTree = legacy !== undefined ? [legacy] : list;
  const inTreePath = legacy !== undefined ? 'inTreeModuleToRemove' : 'inTreeModulesToRemove';
  inTree.forEach((n, i) => checkModuleName(n, legacy !== undefined ? inTreePath : `${inTreePath}[${i}]`));
  noDuplicates(inTree, inTreePath);

  const modprobeObj = optMap(obj, 'modprobe', '');
  if (!modprobeObj) fail('modprobe', 'is required');
  const modprobe = parseModprobe(modprobeObj!);

  return {
    kernelVersion,
    containerImage,
    imagePullPolicy: policy as ImagePullPolicy,
    insecurePull,
    inTreeModulesToRemove: inTree,
    modprobe,
  };
}

/**
 * The reference is parsed even when the shared dir already holds the kmods (F6 of issue 14): a config naming
 * an image that could never be pulled is invalid whatever the node has on disk.
 */
function checkContainerImage(ref: string): void {
  if (byteLength(ref) > MAX_PATH_BYTES) fail('containerImage', `is longer than ${MAX_PATH_BYTES} bytes`);
  if (/[\x00-\x1f\x7f-\x9f]/.test(ref)) fail('containerImage', `'${shown(ref)}' contains control characters`);
  try {
    parseReference(ref);
  } catch (err) {
    if (err instanceof UsageError) fail('containerImage', `is not a valid image reference: ${err.message}`);
    throw err;
  }
}

/** Finds a duplicated key anywhere in the document and names its path (the yaml library only names a line). */
function findDuplicateKey(node: YamlNode | null | undefined, path: Path): string | undefined {
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (seen.has(key)) return child(path, key);
      seen.add(key);
      const found = findDuplicateKey(pair.value as YamlNode, child(path, key));
      if (found) return found;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const found = findDuplicateKey(item as YamlNode, `${path}[${i}]`);
      if (found) return found;
    }
  }
  return undefined;
}

/** Parses YAML or JSON text into a validated, normalised ModuleConfig. `source` names the file in messages. */
export function parseModuleConfig(text: string, source: string): ModuleConfig {
  try {
    return parseModuleConfigText(text, source);
  } catch (err) {
    // the YAML parser recurses: a document nested thousands of levels deep exhausts the stack
    if (err instanceof RangeError) throw new UsageError(`${source}: the document is nested too deeply`);
    throw err;
  }
}

function parseModuleConfigText(text: string, source: string): ModuleConfig {
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false, version: '1.2' });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    throw new UsageError(`${source}${where}: not valid YAML/JSON: ${e.message.split('\n', 1)[0]}`);
  }
  const dup = findDuplicateKey(doc.contents as YamlNode, '');
  if (dup) throw new UsageError(`${dup} is duplicated in ${source}`);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new UsageError(`${source}: ${(err as Error).message.split('\n', 1)[0]}`);
  }
  if (root === undefined || root === null) throw new UsageError(`${source}: the config is empty`);
  try {
    return validate(root);
  } catch (err) {
    if (err instanceof UsageError) {
      const e = new UsageError(`${err.message} (in ${source})`);
      throw e;
    }
    throw err;
  }
}

/** Reads and parses a config file; an unreadable, oversized or non-regular file is a UsageError naming the path (exit 2). */
export async function readModuleConfig(path: string): Promise<ModuleConfig> {
  return parseModuleConfig(await readConfigText(path), path);
}

/** The text of a config file: a regular file of at most MAX_CONFIG_BYTES (a FIFO or a device is refused at once). */
export async function readConfigText(path: string): Promise<string> {
  try {
    return (await readRegularFile(path, MAX_CONFIG_BYTES)).toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}
