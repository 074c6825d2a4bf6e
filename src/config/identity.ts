import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';

/** The `<ns>/<name>` a module is known by in Events and in the firmware record (docs/reporting.md). */
export interface ModuleIdentity {
  namespace: string;
  name: string;
}

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export async function moduleIdentity(
  opts: { moduleNamespace?: string | undefined; moduleName?: string | undefined },
  fallbackName: string,
  env: NodeJS.ProcessEnv = process.env,
  saNamespaceFile = SA_NAMESPACE_FILE,
): Promise<ModuleIdentity> {
  let namespace = opts.moduleNamespace || env.POD_NAMESPACE || '';
  if (!namespace) {
    namespace = (await readFile(saNamespaceFile, 'utf8').catch(() => '')).trim() || 'default';
  }
  return { namespace, name: opts.moduleName || fallbackName };
}

export const identityString = (id: ModuleIdentity) => `${id.namespace}/${id.name}`;

/**
 * The identity names a file of the firmware record (`<ns>/<name>.json`), so it must be a plain name: what
 * Kubernetes allows for namespaces and object names (and module names, the fallback) never has a `/`.
 */
export function checkIdentity(id: ModuleIdentity): ModuleIdentity {
  for (const [flag, value] of [['--module-namespace', id.namespace], ['--module-name', id.name]] as const) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value) || value.length > 253) {
      throw new UsageError(`${flag} '${value}' is not a Kubernetes name (letters, digits, '.', '_', '-')`);
    }
  }
  return id;
}
