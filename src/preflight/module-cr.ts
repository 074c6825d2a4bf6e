/**
 * Module custom resources (`kmm.sigs.x-k8s.io/v1beta1`, kind Module) as preflight reads them: from
 * multi-document YAML files or from a cluster list. Only identity is checked here; the spec is interpreted
 * (and its mistakes reported per module) by the kernel-mapping resolver.
 */
import { parseAllDocuments } from 'yaml';
import { FileRefusedError, MAX_CONFIG_BYTES, MiB, readRegularFile } from '../bounded-read.js';
import { UsageError, oneLine } from '../errors.js';

export const MODULE_GROUP = 'kmm.sigs.x-k8s.io';
export const MODULE_API_VERSION = `${MODULE_GROUP}/v1beta1`;

export interface ModuleResource {
  name: string;
  namespace: string;
  /** where it came from, for messages: `file.yaml#2` or `cluster` */
  origin: string;
  /** `spec` as found; interpreted by resolveModuleForKernel */
  spec: unknown;
  /** metadata.deletionTimestamp is set: KMM's preflight skips such Modules */
  deleting: boolean;
  /** what to do when the image does not exist (a Day-1 image names the tag to push) */
  imageMissingAdvice?: (image: string, kernel: string) => string;
}

/** The Module CRs of one YAML text (documents of other kinds are ignored). */
export function parseModuleDocuments(text: string, source: string, defaultNamespace = 'default'): ModuleResource[] {
  const docs = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(docs)) return []; // an empty stream
  const modules: ModuleResource[] = [];
  docs.forEach((doc, index) => {
    const where = docs.length > 1 ? `${source} (document ${index + 1})` : source;
    if (doc.errors.length > 0) throw new UsageError(`${where}: invalid YAML: ${oneLine(doc.errors[0])}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    for (const obj of value && typeof value === 'object' && isList(value) ? listItems(value) : [value]) {
      const m = moduleFromObject(obj, where);
      if (m) modules.push({ ...m, namespace: m.namespace ?? defaultNamespace });
    }
  });
  return modules;
}

/** A Module from an API object (cluster list item or YAML document); undefined when it is another kind. */
export function moduleFromObject(
  obj: unknown,
  where: string,
): (Omit<ModuleResource, 'namespace'> & { namespace: string | undefined }) | undefined {
  if (!isRecord(obj)) return undefined;
  if (obj.kind !== 'Module' || typeof obj.apiVersion !== 'string' || !obj.apiVersion.startsWith(`${MODULE_GROUP}/`)) {
    return undefined;
  }
  if (obj.apiVersion !== MODULE_API_VERSION) {
    throw new UsageError(`${where}: Module apiVersion must be ${MODULE_API_VERSION}, got ${obj.apiVersion}`);
  }
  const meta = obj.metadata;
  if (!isRecord(meta) || typeof meta.name !== 'string' || meta.name === '') {
    throw new UsageError(`${where}: Module metadata.name is required`);
  }
  if (meta.namespace !== undefined && meta.namespace !== null && typeof meta.namespace !== 'string') {
    throw new UsageError(`${where}: Module ${meta.name}: metadata.namespace must be a string`);
  }
  return {
    name: meta.name,
    namespace: (meta.namespace as string | undefined | null) || undefined,
    origin: where,
    spec: obj.spec,
    deleting: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
  };
}

/** `kubectl get modules -A -o yaml | kmm-worker preflight --module -` */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `kubectl get modules -A -o yaml` of a large cluster: thousands of Modules, managedFields included */
const MAX_MODULE_LIST_BYTES = 64 * MiB;

/** A file named on the command line: a regular file of at most `maxBytes` (a FIFO or a device is refused at once). */
export async function readInputFile(file: string, maxBytes: number): Promise<string> {
  return (await readRegularFile(file, maxBytes)).toString('utf8');
}

/** `is a FIFO, not a regular file`, `is larger than …`, or the system's error code (ENOENT, EACCES). */
export function whyUnreadable(err: unknown): string {
  if (err instanceof FileRefusedError) return err.message;
  return (err as NodeJS.ErrnoException).code ?? oneLine(err);
}

/** Reads the Module files in order (`-` = stdin); a Module named twice (same namespace/name) is a usage error. */
export async function readModuleFiles(files: string[], defaultNamespace = 'default'): Promise<ModuleResource[]> {
  const all: ModuleResource[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readInputFile(file, MAX_MODULE_LIST_BYTES);
    } catch (err) {
      throw new UsageError(`--module ${file}: cannot read: ${whyUnreadable(err)}`);
    }
    for (const m of parseModuleDocuments(text, file === '-' ? 'stdin' : file, defaultNamespace)) {
      const key = `${m.namespace}/${m.name}`;
      const before = seen.get(key);
      if (before) throw new UsageError(`Module ${key} is defined twice: in ${before} and in ${m.origin}`);
      seen.set(key, m.origin);
      all.push(m);
    }
  }
  return all;
}

/** `spec.kernelVersion` of a PreflightValidationOCP (or PreflightValidation) file. */
export async function readPreflightKernel(file: string): Promise<{ kernel: string; name: string | undefined }> {
  let text: string;
  try {
    text = await readInputFile(file, MAX_CONFIG_BYTES);
  } catch (err) {
    throw new UsageError(`--preflight ${file}: cannot read: ${whyUnreadable(err)}`);
  }
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const found: { kernel: string; name: string | undefined }[] = [];
  for (const doc of Array.isArray(docs) ? docs : []) {
    if (doc.errors.length > 0) throw new UsageError(`--preflight ${file}: invalid YAML: ${oneLine(doc.errors[0])}`);
    const obj: unknown = doc.toJS();
    if (!isRecord(obj) || (obj.kind !== 'PreflightValidationOCP' && obj.kind !== 'PreflightValidation')) continue;
    const spec = obj.spec;
    const kernel = isRecord(spec) ? spec.kernelVersion : undefined;
    if (typeof kernel !== 'string' || kernel.trim() === '') {
      throw new UsageError(`--preflight ${file}: spec.kernelVersion is required`);
    }
    const meta = obj.metadata;
    found.push({ kernel, name: isRecord(meta) && typeof meta.name === 'string' ? meta.name : undefined });
  }
  if (found.length === 0) throw new UsageError(`--preflight ${file}: no PreflightValidationOCP found`);
  if (found.length > 1) throw new UsageError(`--preflight ${file}: more than one PreflightValidationOCP`);
  return found[0]!;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isList(v: object): boolean {
  const o = v as Record<string, unknown>;
  return typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items);
}

function listItems(v: object): unknown[] {
  return (v as { items: unknown[] }).items;
}
