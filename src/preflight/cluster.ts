/**
 * Preflight's conversation with the cluster: list every Module (all namespaces), read a Module's
 * imageRepoSecret, find the PreflightValidation (upstream KMM) or PreflightValidationOCP (OpenShift) that
 * --write-status names, and write its status subresource.
 */
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError, UsageError } from '../errors.js';
import { makeTempDir } from '../host/temp-dir.js';
import { apiStatus, callOptions, describeApiError, type KubeClients } from '../report/kube.js';
import type { ResolvedModule } from './kernel-mapping.js';
import { MODULE_GROUP, isRecord, moduleFromObject, type ModuleResource } from './module-cr.js';
import { ModuleCheckFailure, type CredentialSource, type ModuleCredentials } from './validate-module.js';
import { mergeModuleStatuses, type ModuleStatus } from './status.js';

/** One of the two preflight kinds (kmm.sigs.x-k8s.io/v1beta2, cluster-scoped): same spec.kernelVersion and status.modules. */
export interface PreflightKind {
  kind: 'PreflightValidation' | 'PreflightValidationOCP';
  group: string;
  version: string;
  plural: string;
}
export const PREFLIGHT: PreflightKind = { kind: 'PreflightValidation', group: MODULE_GROUP, version: 'v1beta2', plural: 'preflightvalidations' };
export const PREFLIGHT_OCP: PreflightKind = { kind: 'PreflightValidationOCP', group: MODULE_GROUP, version: 'v1beta2', plural: 'preflightvalidationsocp' };
const PREFLIGHT_KINDS = [PREFLIGHT, PREFLIGHT_OCP];
const where = (k: PreflightKind) => ({ group: k.group, version: k.version, plural: k.plural });
const MODULES = { group: MODULE_GROUP, version: 'v1beta1', plural: 'modules' } as const;
const API_TIMEOUT_MS = 30_000;

/** All Modules of the cluster, every namespace, page by page. */
export async function listClusterModules(kube: KubeClients, signal?: AbortSignal): Promise<ModuleResource[]> {
  const modules: ModuleResource[] = [];
  let token: string | undefined;
  do {
    let page: { items?: unknown[]; metadata?: { continue?: string } };
    try {
      page = await kube.customObjects.listClusterCustomObject(
        { ...MODULES, limit: 500, ...(token ? { _continue: token } : {}) },
        callOptions({ timeoutMs: API_TIMEOUT_MS, signal }),
      );
    } catch (err) {
      throw new OperationError(`cannot list Modules (${MODULES.group}/${MODULES.version}) at ${kube.server}: ${describeApiError(err)}`);
    }
    for (const item of page.items ?? []) {
      // a list's items may omit apiVersion/kind; they are Modules by construction
      const obj = isRecord(item) ? { apiVersion: `${MODULES.group}/${MODULES.version}`, kind: 'Module', ...item } : item;
      const m = moduleFromObject(obj, 'cluster');
      if (m) modules.push({ ...m, namespace: m.namespace ?? 'default' });
    }
    token = page.metadata?.continue || undefined;
  } while (token);
  return modules;
}

/**
 * Reads each Module's imageRepoSecret (once per secret) and hands its docker config to the registry client as
 * a private pull-secrets directory (mode 0700, removed after the check).
 */
export function clusterCredentials(kube: KubeClients): CredentialSource {
  const secrets = new Map<string, Promise<{ key: string; data: Buffer }>>();
  const fetchSecret = (namespace: string, name: string, signal: AbortSignal) => {
    const id = `${namespace}/${name}`;
    let p = secrets.get(id);
    if (!p) {
      p = readDockerSecret(kube, namespace, name, signal);
      secrets.set(id, p);
      p.catch(() => secrets.delete(id)); // a failed read (e.g. a timeout) is retried by the next module
    }
    return p;
  };
  return {
    async forModule(mod: ResolvedModule, signal: AbortSignal): Promise<ModuleCredentials | undefined> {
      if (!mod.imageRepoSecret) return undefined;
      const { key, data } = await fetchSecret(mod.namespace, mod.imageRepoSecret, signal);
      const dir = await makeTempDir('kmm-preflight-secret-');
      await chmod(dir, 0o700);
      await writeFile(join(dir, key), data, { mode: 0o600 });
      return {
        pullSecretsDir: dir,
        description: `imageRepoSecret ${mod.namespace}/${mod.imageRepoSecret}`,
        release: () => rm(dir, { recursive: true, force: true }),
      };
    },
  };
}

async function readDockerSecret(kube: KubeClients, namespace: string, name: string, signal: AbortSignal): Promise<{ key: string; data: Buffer }> {
  const id = `imageRepoSecret ${namespace}/${name}`;
  let secret: { data?: Record<string, string> };
  try {
    secret = await kube.core.readNamespacedSecret({ name, namespace }, callOptions({ timeoutMs: API_TIMEOUT_MS, signal }));
  } catch (err) {
    if (apiStatus(err) === 404) throw new ModuleCheckFailure(`${id} not found`);
    throw new ModuleCheckFailure(`cannot read ${id}: ${describeApiError(err)}`);
  }
  for (const key of ['.dockerconfigjson', '.dockercfg']) {
    const value = secret.data?.[key];
    if (typeof value === 'string') return { key, data: Buffer.from(value, 'base64') };
  }
  throw new ModuleCheckFailure(`${id} has no .dockerconfigjson or .dockercfg key`);
}

/** The preflight kinds the cluster serves, from the discovery document of kmm.sigs.x-k8s.io/v1beta2. */
export async function servedPreflightKinds(kube: KubeClients, signal?: AbortSignal): Promise<PreflightKind[]> {
  let plurals: string[];
  try {
    const list = await kube.customObjects.getAPIResources({ group: MODULE_GROUP, version: 'v1beta2' }, callOptions({ timeoutMs: API_TIMEOUT_MS, signal }));
    plurals = (list.resources ?? []).map((r) => r.name);
  } catch (err) {
    if (apiStatus(err) === 404) return [];
    throw new OperationError(`cannot discover ${MODULE_GROUP}/v1beta2: ${describeApiError(err)}`);
  }
  return PREFLIGHT_KINDS.filter((k) => plurals.includes(k.plural));
}

/**
 * The kind that holds the object --write-status names: of the kinds the cluster serves (upstream KMM serves
 * PreflightValidation, OpenShift's KMM PreflightValidationOCP), the first where `name` exists.
 */
export async function findPreflightKind(kube: KubeClients, name: string, signal?: AbortSignal): Promise<PreflightKind> {
  const served = await servedPreflightKinds(kube, signal);
  if (served.length === 0) {
    throw new UsageError(`--write-status: the cluster serves neither PreflightValidation nor PreflightValidationOCP (${MODULE_GROUP}/v1beta2); is KMM installed?`);
  }
  for (const kind of served) {
    const found = await readPreflightValidation(kube, name, signal, kind).then(
      () => true,
      (err: unknown) => (err instanceof UsageError ? false : Promise.reject(err)),
    );
    if (found) return kind;
  }
  throw new UsageError(`--write-status: ${served.map((k) => `${k.kind} ${name}`).join(' or ')} not found`);
}

/** spec.kernelVersion, resourceVersion and status.modules of a PreflightValidation(OCP) in the cluster. */
export async function readPreflightValidation(
  kube: KubeClients,
  name: string,
  signal?: AbortSignal,
  kind: PreflightKind = PREFLIGHT_OCP,
): Promise<{ kernelVersion: string | undefined; resourceVersion: string | undefined; modules: unknown[] }> {
  let obj: unknown;
  try {
    obj = await kube.customObjects.getClusterCustomObject({ ...where(kind), name }, callOptions({ timeoutMs: API_TIMEOUT_MS, signal }));
  } catch (err) {
    if (apiStatus(err) === 404) throw new UsageError(`--write-status: ${kind.kind} ${name} not found`);
    throw new OperationError(`cannot read ${kind.kind} ${name}: ${describeApiError(err)}`);
  }
  const o = isRecord(obj) ? obj : {};
  const meta = isRecord(o.metadata) ? o.metadata : {};
  const spec = isRecord(o.spec) ? o.spec : {};
  const status = isRecord(o.status) ? o.status : {};
  return {
    kernelVersion: typeof spec.kernelVersion === 'string' ? spec.kernelVersion : undefined,
    resourceVersion: typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined,
    modules: Array.isArray(status.modules) ? status.modules : [],
  };
}

export interface StatusPatch {
  metadata: { resourceVersion?: string };
  status: { modules: ModuleStatus[] };
}

/**
 * Writes the results into the PreflightValidation(OCP)'s status subresource with a JSON merge patch:
 * `{"metadata":{"resourceVersion"},"status":{"modules":[...]}}` — the list merged with the entries already
 * there (other modules kept), and the resourceVersion making a concurrent writer (KMM's own controller) a
 * conflict that is retried on a fresh read rather than overwritten. Returns the patch that was applied.
 */
export async function writePreflightStatus(
  kube: KubeClients,
  name: string,
  results: readonly ModuleStatus[],
  opts: { signal?: AbortSignal; dryRun?: boolean; kind?: PreflightKind } = {},
): Promise<StatusPatch> {
  const { signal } = opts;
  const kind = opts.kind ?? PREFLIGHT_OCP;
  for (let attempt = 1; ; attempt++) {
    const current = await readPreflightValidation(kube, name, signal, kind).catch((err: unknown) => {
      // it existed when preflight started: gone now is an operation failure, not a command-line mistake
      throw err instanceof UsageError ? new OperationError(`cannot write the status: ${kind.kind} ${name} no longer exists`) : err;
    });
    const body: StatusPatch = {
      metadata: current.resourceVersion ? { resourceVersion: current.resourceVersion } : {},
      status: { modules: mergeModuleStatuses(current.modules, results) },
    };
    if (opts.dryRun) return body;
    try {
      await kube.customObjects.patchClusterCustomObjectStatus(
        { ...where(kind), name, body },
        callOptions({ timeoutMs: API_TIMEOUT_MS, signal, contentType: 'application/merge-patch+json' }),
      );
      return body;
    } catch (err) {
      if (apiStatus(err) === 409 && attempt < 3) continue;
      throw new OperationError(`cannot write the status of ${kind.kind} ${name}: ${describeApiError(err)}`);
    }
  }
}
