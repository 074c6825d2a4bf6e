/**
 * Which image, module name and directory a Module uses for one kernel — KMM's kernel-mapping resolution:
 * mappings in order, a literal matches the kernel string exactly, a regexp matches anywhere in it (Go
 * `MatchString`, unanchored), the first match wins; mapping values override the container-level ones; then
 * the variables of docs/preflight.md are substituted in the image name.
 */
import { compileGoRegexp, GoRegexpError } from './go-regexp.js';
import { DEFAULT_DIR_NAME } from '../config/defaults.js';
import { kernelVariables } from './kernel.js';
import { isRecord, type ModuleResource } from './module-cr.js';
import { substituteVariables, SubstitutionError } from './substitute.js';

export interface ResolvedModule {
  name: string;
  namespace: string;
  kernelVersion: string;
  /** e.g. `kernelMappings[1] (regexp '^.+$')`, for messages */
  mapping: string;
  containerImage: string;
  /** undefined when the Module loads with modprobe.rawArgs (no module name to look for) */
  moduleName: string | undefined;
  /** modprobe.dirName, `/opt` by default */
  dirName: string;
  /** the mapping or the container has a build / sign section for this kernel */
  build: boolean;
  sign: boolean;
  /** registryTLS.insecure or insecureSkipTLSVerify (mapping's registryTLS overrides the container's) */
  insecure: boolean;
  /** spec.imageRepoSecret.name */
  imageRepoSecret: string | undefined;
}

export type Resolution =
  | { kind: 'resolved'; module: ResolvedModule }
  | { kind: 'no-mapping'; message: string }
  | { kind: 'invalid'; message: string };

/** A Module whose spec cannot be interpreted; the message starts with the field's path. */
export class ModuleSpecError extends Error {
  override name = 'ModuleSpecError';
}

const CONTAINER = 'spec.moduleLoader.container';

export function resolveModuleForKernel(mod: ModuleResource, kernelVersion: string): Resolution {
  try {
    return resolve(mod, kernelVersion);
  } catch (err) {
    if (err instanceof ModuleSpecError || err instanceof GoRegexpError || err instanceof SubstitutionError) {
      return { kind: 'invalid', message: `invalid Module: ${err.message}` };
    }
    throw err;
  }
}

function resolve(mod: ModuleResource, kernelVersion: string): Resolution {
  const spec = record(mod.spec, 'spec');
  const loader = record(spec.moduleLoader, 'spec.moduleLoader');
  const container = record(loader.container, CONTAINER);
  const mappings = array(container.kernelMappings, `${CONTAINER}.kernelMappings`);
  if (mappings.length === 0) throw new ModuleSpecError(`${CONTAINER}.kernelMappings: at least one mapping is required`);

  let found: { index: number; mapping: Record<string, unknown>; how: string } | undefined;
  for (const [index, raw] of mappings.entries()) {
    const path = `${CONTAINER}.kernelMappings[${index}]`;
    const mapping = record(raw, path);
    const literal = str(mapping.literal, `${path}.literal`);
    const regexp = str(mapping.regexp, `${path}.regexp`);
    if (literal && regexp) throw new ModuleSpecError(`${path}: regexp and literal are mutually exclusive`);
    if (!literal && !regexp) throw new ModuleSpecError(`${path}: regexp or literal must be set`);
    if (literal) {
      if (literal === kernelVersion) {
        found = { index, mapping, how: `literal '${literal}'` };
        break;
      }
      continue;
    }
    let re: RegExp;
    try {
      re = compileGoRegexp(regexp!);
    } catch (err) {
      throw new ModuleSpecError(`${path}.regexp: ${(err as Error).message}`);
    }
    if (re.test(kernelVersion)) {
      found = { index, mapping, how: `regexp '${regexp}'` };
      break;
    }
  }
  if (!found) {
    return { kind: 'no-mapping', message: `no kernel mapping matches kernel ${kernelVersion}` };
  }

  const mpath = `${CONTAINER}.kernelMappings[${found.index}]`;
  const m = found.mapping;
  const imageTemplate = str(m.containerImage, `${mpath}.containerImage`) || str(container.containerImage, `${CONTAINER}.containerImage`);
  if (!imageTemplate) {
    throw new ModuleSpecError(`${mpath}.containerImage: missing, and ${CONTAINER}.containerImage is not set either`);
  }
  const modprobe = record(container.modprobe, `${CONTAINER}.modprobe`);
  const moduleName = str(modprobe.moduleName, `${CONTAINER}.modprobe.moduleName`);
  const rawArgs = optionalRecord(modprobe.rawArgs, `${CONTAINER}.modprobe.rawArgs`);
  if (!moduleName && !rawArgs) throw new ModuleSpecError(`${CONTAINER}.modprobe.moduleName is required (or rawArgs)`);
  const dirName = str(modprobe.dirName, `${CONTAINER}.modprobe.dirName`) || DEFAULT_DIR_NAME;
  if (!dirName.startsWith('/') || dirName.split('/').includes('..')) {
    throw new ModuleSpecError(`${CONTAINER}.modprobe.dirName must be an absolute path without '..', got '${dirName}'`);
  }

  const tls = optionalRecord(m.registryTLS, `${mpath}.registryTLS`) ?? optionalRecord(container.registryTLS, `${CONTAINER}.registryTLS`);
  const insecure = tls !== undefined && (bool(tls.insecure, 'registryTLS.insecure') || bool(tls.insecureSkipTLSVerify, 'registryTLS.insecureSkipTLSVerify'));
  const secret = optionalRecord(spec.imageRepoSecret, 'spec.imageRepoSecret');
  const imageRepoSecret = secret ? str(secret.name, 'spec.imageRepoSecret.name') || undefined : undefined;

  const vars: Record<string, string> = { ...kernelVariables(kernelVersion), MOD_NAME: mod.name, MOD_NAMESPACE: mod.namespace };
  let containerImage: string;
  try {
    containerImage = substituteVariables(imageTemplate, vars);
  } catch (err) {
    throw new ModuleSpecError(`${mpath}.containerImage: ${(err as Error).message}`);
  }
  if (!containerImage.trim()) throw new ModuleSpecError(`${mpath}.containerImage is empty after substitution`);

  return {
    kind: 'resolved',
    module: {
      name: mod.name,
      namespace: mod.namespace,
      kernelVersion,
      mapping: `kernelMappings[${found.index}] (${found.how})`,
      containerImage,
      moduleName: moduleName || undefined,
      dirName,
      build: present(m.build) || present(container.build),
      sign: present(m.sign) || present(container.sign),
      insecure,
      imageRepoSecret,
    },
  };
}

// Go's JSON/YAML decoding treats an absent field and `null` alike; so do these readers.
function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function record(v: unknown, path: string): Record<string, unknown> {
  if (!present(v)) throw new ModuleSpecError(`${path} is required`);
  if (!isRecord(v)) throw new ModuleSpecError(`${path} must be an object`);
  return v;
}

function optionalRecord(v: unknown, path: string): Record<string, unknown> | undefined {
  if (!present(v)) return undefined;
  if (!isRecord(v)) throw new ModuleSpecError(`${path} must be an object`);
  return v;
}

function array(v: unknown, path: string): unknown[] {
  if (!present(v)) throw new ModuleSpecError(`${path} is required`);
  if (!Array.isArray(v)) throw new ModuleSpecError(`${path} must be a list`);
  return v;
}

function str(v: unknown, path: string): string | undefined {
  if (!present(v)) return undefined;
  if (typeof v !== 'string') throw new ModuleSpecError(`${path} must be a string`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (!present(v)) return false;
  if (typeof v !== 'boolean') throw new ModuleSpecError(`${path} must be true or false`);
  return v;
}
