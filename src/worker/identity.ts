import { readFile } from 'node:fs/promises';

/** The `<ns>/<name>` a module is known by in Events and in the firmware record (DESIGN §8). */
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
