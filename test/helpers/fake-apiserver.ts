/**
 * A strict in-process stand-in for kube-apiserver (no real one can run on this machine). It speaks the real
 * wire protocol that client-node and kubectl use: discovery (/version, /api, /apis, /api/v1, /apis/G/V), a
 * generic object store keyed by group/version/resource with list (labelSelector, fieldSelector on the fields
 * each resource supports), get, create (409 on a taken name, generateName), update, delete, patch
 * (merge-patch, JSON-patch and strategic-merge per Content-Type) and a `/status` subresource; errors are
 * `Status` objects as the apiserver sends them. Faults (403/404/500, stalls) can be injected per request.
 *
 * Extend it without editing this file: `server.defineResource({...})` adds a kind (e.g. a CRD) with its
 * discovery entry; `server.seed(...)` puts objects in.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface ResourceDef {
  group: string; // '' = core
  version: string;
  resource: string; // plural, e.g. 'events'
  kind: string;
  namespaced: boolean;
  singular?: string;
  shortNames?: string[];
  verbs?: string[];
  /** subresources served; only 'status' is implemented */
  subresources?: 'status'[];
  /** field selector labels this resource supports besides metadata.name / metadata.namespace */
  fields?: Record<string, (obj: KubeObject) => string | undefined>;
  /** built-in kinds omit apiVersion/kind on list items, as the apiserver does; CRDs keep them */
  builtin?: boolean;
  /** validation run on create/update; return error messages (→ 422 Invalid) */
  validate?: (obj: KubeObject) => string[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = Record<string, any>;

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  accept: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

export interface FaultRule {
  method?: string;
  /** matched against the request path (without query) */
  path?: string | RegExp;
  /** an HTTP status to answer with (a Status object built for it), or 'stall' to never answer */
  status: number | 'stall';
  message?: string;
  /** how many requests it applies to; default unlimited */
  times?: number;
}

const DEFAULT_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update'];
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'AlreadyExists',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

const path = (obj: KubeObject, dotted: string): string | undefined => {
  let cur: unknown = obj;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur === undefined || cur === null ? undefined : String(cur);
};
const fieldsOf = (...names: string[]) => Object.fromEntries(names.map((n) => [n, (o: KubeObject) => path(o, n)]));

/** The core/v1 Event validation of the apiserver (legacy path: namespace agreement and, with eventTime, the
 * required reporting fields). */
function validateEvent(e: KubeObject): string[] {
  const errs: string[] = [];
  const invNs = e.involvedObject?.namespace ?? '';
  const ns = e.metadata?.namespace ?? '';
  if (!e.involvedObject) errs.push('involvedObject: Required value');
  if (!e.eventTime) {
    if (invNs === '' && ns !== '' && ns !== 'default') errs.push(`involvedObject.namespace: Invalid value: "": does not match event.namespace`);
    if (invNs !== '' && invNs !== ns) errs.push(`involvedObject.namespace: Invalid value: "${invNs}": does not match event.namespace`);
  } else {
    if (invNs === '' && ns !== 'default' && ns !== 'kube-system') errs.push('involvedObject.namespace: does not match event.namespace');
    for (const f of ['reportingComponent', 'reportingInstance', 'action', 'reason']) if (!e[f]) errs.push(`${f}: Required value`);
    if (typeof e.message === 'string' && e.message.length > 1024) errs.push('message: Too long: must have at most 1024 bytes');
  }
  if (e.count !== undefined && (!Number.isInteger(e.count) || e.count < 0)) errs.push('count: Invalid value: must be a non-negative integer');
  for (const f of ['firstTimestamp', 'lastTimestamp'])
    if (e[f] !== undefined && e[f] !== null && Number.isNaN(Date.parse(e[f]))) errs.push(`${f}: Invalid value: not an RFC 3339 time`);
  return errs;
}

export const BUILTIN_RESOURCES: ResourceDef[] = [
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], subresources: ['status'], builtin: true, fields: fieldsOf('status.phase') },
  {
    group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], subresources: ['status'], builtin: true,
    fields: fieldsOf('spec.unschedulable'),
  },
  {
    group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'], builtin: true,
    fields: {
      ...fieldsOf('involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion',
        'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'type'),
      // the apiserver's field index maps these two as empty string when absent
      'involvedObject.namespace': (o) => o.involvedObject?.namespace ?? '',
      source: (o) => o.source?.component ?? '',
    },
    validate: validateEvent,
  },
  {
    group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'], subresources: ['status'], builtin: true,
    fields: { ...fieldsOf('spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.podIP', 'status.nominatedNodeName'),
      'spec.nodeName': (o) => o.spec?.nodeName ?? '', 'status.phase': (o) => o.status?.phase ?? '' },
  },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true, builtin: true, fields: fieldsOf('type') },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], builtin: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'], builtin: true },
  { group: 'apps', version: 'v1', resource: 'daemonsets', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], subresources: ['status'], builtin: true },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], subresources: ['status'], builtin: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false, builtin: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false, builtin: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', kind: 'Role', namespaced: true, builtin: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', kind: 'RoleBinding', namespaced: true, builtin: true },
];

class HttpError extends Error {
  readonly code: number;
  readonly details: KubeObject | undefined;
  readonly reason: string | undefined;
  constructor(code: number, message: string, details?: KubeObject, reason?: string) {
    super(message);
    this.code = code;
    this.details = details;
    this.reason = reason;
  }
}

const gvKey = (group: string, version: string) => (group ? `${group}/${version}` : version);
const clone = <T>(v: T): T => structuredClone(v);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? clone(target as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
const deepEqual = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** RFC 6902 JSON patch; failures are 422 as the apiserver answers them ("test" failing included). */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new HttpError(400, 'json patch must be an array of operations');
  let root = clone(doc);
  const resolve = (pointer: string): { parent: any; key: string } => {
    if (typeof pointer !== 'string' || (pointer !== '' && !pointer.startsWith('/'))) throw new HttpError(422, `invalid JSON pointer "${pointer}"`);
    const parts = pointer.split('/').slice(1).map(unescapePointer);
    const key = parts.pop();
    if (key === undefined) return { parent: undefined, key: '' };
    let parent: any = root;
    for (const p of parts) {
      if (parent === null || typeof parent !== 'object' || !(p in parent)) throw new HttpError(422, `the server rejected our request due to an error in our request: doc is missing path: "${pointer}"`);
      parent = parent[p];
    }
    if (parent === null || typeof parent !== 'object') throw new HttpError(422, `doc is missing path: "${pointer}"`);
    return { parent, key };
  };
  const get = (pointer: string) => {
    const { parent, key } = resolve(pointer);
    if (parent === undefined) return root;
    if (!(key in parent)) throw new HttpError(422, `doc is missing path: "${pointer}"`);
    return parent[key];
  };
  const remove = (pointer: string) => {
    const { parent, key } = resolve(pointer);
    if (!(key in parent)) throw new HttpError(422, `doc is missing path: "${pointer}"`);
    const v = parent[key];
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
    return v;
  };
  const add = (pointer: string, value: unknown) => {
    const { parent, key } = resolve(pointer);
    if (parent === undefined) { root = value; return; }
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new HttpError(422, `index out of range: "${pointer}"`);
      parent.splice(i, 0, value);
    } else parent[key] = value;
  };
  for (const op of ops as KubeObject[]) {
    switch (op.op) {
      case 'add': add(op.path, clone(op.value)); break;
      case 'remove': remove(op.path); break;
      case 'replace': remove(op.path); add(op.path, clone(op.value)); break;
      case 'move': add(op.path, remove(op.from)); break;
      case 'copy': add(op.path, clone(get(op.from))); break;
      case 'test':
        if (!deepEqual(get(op.path), op.value)) throw new HttpError(422, `the server rejected our request due to an error in our request: testing value ${op.path} failed`);
        break;
      default: throw new HttpError(400, `unknown JSON patch operation "${op.op}"`);
    }
  }
  return root;
}

type Requirement = (labels: Record<string, string>) => boolean;
/** Label selector syntax of the apiserver: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`. */
export function parseLabelSelector(sel: string): Requirement[] {
  const reqs: Requirement[] = [];
  const parts = sel.match(/([^,(]+(\([^)]*\))?)/g) ?? [];
  for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
    let m: RegExpMatchArray | null;
    if ((m = raw.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, k, op, vals] = m;
      const set = new Set(vals!.split(',').map((v) => v.trim()));
      reqs.push(op === 'in' ? (l) => k! in l && set.has(l[k!]!) : (l) => !(k! in l) || !set.has(l[k!]!));
    } else if ((m = raw.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      const [, k, op, v] = m;
      reqs.push(op === '!=' ? (l) => l[k!] !== v : (l) => l[k!] === v);
    } else if ((m = raw.match(/^!([\w./-]+)$/))) {
      const k = m[1]!;
      reqs.push((l) => !(k in l));
    } else if ((m = raw.match(/^([\w./-]+)$/))) {
      const k = m[1]!;
      reqs.push((l) => k in l);
    } else throw new HttpError(400, `unable to parse requirement: ${raw}`);
  }
  return reqs;
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly defs = new Map<string, ResourceDef>(); // "group/version/resource"
  private readonly store = new Map<string, Map<string, KubeObject>>(); // def key → "ns/name" → object
  private faults: (FaultRule & { used: number })[] = [];
  private rv = 1000;
  private stalled = new Set<ServerResponse>();
  url = '';

  private readonly server: Server;
  readonly token: string | undefined;

  private constructor(server: Server, token: string | undefined) {
    this.server = server;
    this.token = token;
  }

  /** PEM of the CA (= the self-signed serving certificate) when started with `tls`. */
  caPem: string | undefined;

  /**
   * Starts on 127.0.0.1 on a free port. With `token`, every request must carry `Authorization: Bearer <token>`
   * (kubectl sends bearer tokens only over HTTPS: use `tls: true` with a token when kubectl is the client).
   */
  static async start(opts: { token?: string; tls?: boolean; resources?: ResourceDef[] } = {}): Promise<FakeApiServer> {
    let server: Server;
    let caPem: string | undefined;
    if (opts.tls) {
      const { key, cert } = selfSignedCert();
      server = createHttpsServer({ key, cert }) as unknown as Server;
      caPem = cert;
    } else server = createServer();
    const fake = new FakeApiServer(server, opts.token);
    fake.caPem = caPem;
    for (const d of [...BUILTIN_RESOURCES, ...(opts.resources ?? [])]) fake.defineResource(d);
    server.on('request', (req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return fake;
  }

  async close(): Promise<void> {
    for (const res of this.stalled) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  defineResource(def: ResourceDef): void {
    this.defs.set(`${def.group}/${def.version}/${def.resource}`, def);
  }

  /** Injects a fault: the next matching requests (all, or `times`) get `status` or never get an answer. */
  fail(rule: FaultRule): void {
    this.faults.push({ ...rule, used: 0 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Puts an object in the store as if created (uid, resourceVersion, creationTimestamp filled in). */
  seed(apiVersionResource: { group?: string; version?: string; resource: string }, obj: KubeObject): KubeObject {
    const def = this.def(apiVersionResource.group ?? '', apiVersionResource.version ?? 'v1', apiVersionResource.resource);
    const ns = def.namespaced ? obj.metadata?.namespace ?? 'default' : undefined;
    return this.create(def, ns, clone(obj));
  }

  /** Objects of a resource, optionally only one namespace (copies). */
  objects(resource: string, opts: { group?: string; version?: string; namespace?: string } = {}): KubeObject[] {
    const def = this.def(opts.group ?? '', opts.version ?? 'v1', resource);
    return [...this.bucket(def).values()].filter((o) => opts.namespace === undefined || o.metadata.namespace === opts.namespace).map(clone);
  }

  /** Writes a kubeconfig pointing at this server (plain HTTP needs insecure-skip-tls-verify: client-node
   * refuses http:// otherwise) (with the token, if any) and returns its path. */
  async writeKubeconfig(file: string, opts: { token?: string; namespace?: string } = {}): Promise<string> {
    const token = opts.token ?? this.token;
    const user = token ? `\n    token: ${JSON.stringify(token)}` : ' {}';
    const text = `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${this.url}${this.caPem ? `\n    certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}`
      : '\n    insecure-skip-tls-verify: true'}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake${opts.namespace ? `\n    namespace: ${opts.namespace}` : ''}
current-context: fake
users:
- name: fake
  user:${user}
`;
    await writeFile(file, text, { mode: 0o600 });
    return file;
  }

  // ---- request handling -------------------------------------------------------------------------------

  private def(group: string, version: string, resource: string): ResourceDef {
    const d = this.defs.get(`${group}/${version}/${resource}`);
    if (!d) throw new HttpError(404, `the server could not find the requested resource`);
    return d;
  }

  private bucket(def: ResourceDef): Map<string, KubeObject> {
    const k = `${def.group}/${def.version}/${def.resource}`;
    let b = this.store.get(k);
    if (!b) this.store.set(k, (b = new Map()));
    return b;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    let body: unknown = undefined;
    const rec: RecordedRequest = {
      method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, contentType,
      accept: req.headers.accept, authorization: req.headers.authorization, body: undefined,
    };
    this.requests.push(rec);
    try {
      if (raw) {
        if (contentType === 'application/apply-patch+yaml') throw new HttpError(415, 'apply patches are not supported by this server');
        try { body = JSON.parse(raw); } catch { throw new HttpError(400, `the body of the request was not valid JSON`); }
        rec.body = body;
      }
      const fault = this.faults.find((f) => (f.times === undefined || f.used < f.times) && (!f.method || f.method === rec.method) &&
        (!f.path || (typeof f.path === 'string' ? f.path === rec.path : f.path.test(rec.path))));
      if (fault) {
        fault.used++;
        if (fault.status === 'stall') { this.stalled.add(res); return; }
        throw new HttpError(fault.status, fault.message ?? `injected ${fault.status}`);
      }
      if (this.token && req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(401, 'Unauthorized');
      const out = this.route(rec.method, url.pathname, url.searchParams, contentType, body);
      const wantsTable = /as=Table;v=v1;g=meta\.k8s\.io/.test(rec.accept ?? '');
      this.send(res, out.code, wantsTable && rec.method === 'GET' && out.code === 200 ? this.table(out.body as KubeObject, url.searchParams) : out.body);
    } catch (err) {
      if (err instanceof HttpError) {
        this.send(res, err.code, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message,
          reason: err.reason ?? REASONS[err.code] ?? 'Unknown', ...(err.details ? { details: err.details } : {}), code: err.code,
        });
      } else {
        this.send(res, 500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: String(err), reason: 'InternalError', code: 500 });
      }
    }
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private route(method: string, p: string, q: URLSearchParams, contentType: string | undefined, body: unknown): { code: number; body: unknown } {
    const seg = p.split('/').filter(Boolean);
    if (method === 'GET' && p === '/version') {
      return { code: 200, body: { major: '1', minor: '32', gitVersion: 'v1.32.0-fake', platform: 'linux/amd64', goVersion: 'go1.23', compiler: 'gc' } };
    }
    if (method === 'GET' && p === '/api') {
      return { code: 200, body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.url.replace('http://', '') }] } };
    }
    if (method === 'GET' && p === '/apis') return { code: 200, body: this.groupList() };
    let group: string, version: string, rest: string[];
    if (seg[0] === 'api' && seg.length >= 2) [group, version, rest] = ['', seg[1]!, seg.slice(2)];
    else if (seg[0] === 'apis' && seg.length >= 3) [group, version, rest] = [seg[1]!, seg[2]!, seg.slice(3)];
    else if (seg[0] === 'apis' && seg.length === 2) {
      const g = this.groupList().groups.find((x) => x.name === seg[1]);
      if (!g) throw new HttpError(404, 'the server could not find the requested resource');
      return { code: 200, body: { kind: 'APIGroup', apiVersion: 'v1', ...g } };
    } else throw new HttpError(404, 'the server could not find the requested resource');
    if (rest.length === 0) {
      if (method !== 'GET') throw new HttpError(405, 'method not allowed');
      return { code: 200, body: this.resourceList(group, version) };
    }
    let ns: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) { ns = rest[1]; rest = rest.slice(2); }
    const [resource, name, sub, ...extra] = rest as [string, string | undefined, string | undefined];
    if (extra.length) throw new HttpError(404, 'the server could not find the requested resource');
    const def = this.def(group, version, resource);
    if (def.namespaced === false && ns !== undefined) throw new HttpError(404, 'the server could not find the requested resource');
    if (sub !== undefined && !(sub === 'status' && def.subresources?.includes('status'))) throw new HttpError(404, 'the server could not find the requested resource');
    if (q.get('watch') === 'true' || q.get('watch') === '1') throw new HttpError(405, 'watch is not supported by the fake API server');
    const dryRun = q.getAll('dryRun').includes('All');

    if (name === undefined) {
      if (method === 'GET') return { code: 200, body: this.list(def, ns, q) };
      if (method === 'POST') {
        if (def.namespaced && ns === undefined) throw new HttpError(405, 'the server does not allow this method on the requested resource');
        this.requireJson(contentType);
        return { code: 201, body: this.create(def, ns, clone(body as KubeObject), dryRun) };
      }
      throw new HttpError(405, 'the server does not allow this method on the requested resource');
    }
    if (def.namespaced && ns === undefined) throw new HttpError(404, 'the server could not find the requested resource');
    const key = `${ns ?? ''}/${name}`;
    const bucket = this.bucket(def);
    const current = bucket.get(key);
    const notFound = () => new HttpError(404, `${def.resource}${def.group ? '.' + def.group : ''} "${name}" not found`, { name, group: def.group, kind: def.resource }, 'NotFound');
    switch (method) {
      case 'GET':
        if (!current) throw notFound();
        return { code: 200, body: clone(current) };
      case 'DELETE':
        if (!current) throw notFound();
        if (!dryRun) bucket.delete(key);
        return { code: 200, body: clone(current) };
      case 'PUT': {
        this.requireJson(contentType);
        if (!current) throw notFound();
        const next = clone(body as KubeObject);
        if (next.metadata?.name !== name) throw new HttpError(400, 'the name of the object does not match the name on the URL');
        return { code: 200, body: this.replace(def, key, current, next, sub, dryRun) };
      }
      case 'PATCH': {
        if (!current) throw notFound();
        let next: KubeObject;
        if (contentType === 'application/merge-patch+json') next = mergePatch(current, body) as KubeObject;
        else if (contentType === 'application/json-patch+json') next = jsonPatch(current, body) as KubeObject;
        else if (contentType === 'application/strategic-merge-patch+json') {
          if (!def.builtin) throw new HttpError(415, 'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml');
          next = mergePatch(current, body) as KubeObject; // close enough for the scalar fields patched here
        } else throw new HttpError(415, `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
        const patchRv = (body as KubeObject)?.metadata?.resourceVersion;
        if (patchRv === undefined) next.metadata = { ...next.metadata, resourceVersion: current.metadata.resourceVersion };
        return { code: 200, body: this.replace(def, key, current, next, sub, dryRun) };
      }
      default:
        throw new HttpError(405, 'the server does not allow this method on the requested resource');
    }
  }

  private requireJson(contentType: string | undefined): void {
    if (contentType !== 'application/json') throw new HttpError(415, `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
  }

  private typeMeta(def: ResourceDef) {
    return { apiVersion: gvKey(def.group, def.version), kind: def.kind };
  }

  private create(def: ResourceDef, ns: string | undefined, obj: KubeObject, dryRun = false): KubeObject {
    if (!obj || typeof obj !== 'object') throw new HttpError(400, 'the body of the request was not a JSON object');
    const tm = this.typeMeta(def);
    if (obj.kind !== undefined && obj.kind !== tm.kind) throw new HttpError(400, `the kind "${obj.kind}" does not match the resource "${def.resource}"`);
    if (obj.apiVersion !== undefined && obj.apiVersion !== tm.apiVersion) throw new HttpError(400, `the API version "${obj.apiVersion}" does not match the expected API version "${tm.apiVersion}"`);
    const meta: KubeObject = { ...(obj.metadata ?? {}) };
    if (def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== ns) throw new HttpError(400, 'the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = ns;
    } else delete meta.namespace;
    if (!meta.name) {
      if (!meta.generateName) throw new HttpError(422, `${def.kind} "" is invalid: metadata.name: Required value: name or generateName is required`, undefined, 'Invalid');
      meta.name = meta.generateName + randomUUID().slice(0, 5);
    }
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name) || meta.name.length > 253) {
      throw new HttpError(422, `${def.kind} "${meta.name}" is invalid: metadata.name: Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`, undefined, 'Invalid');
    }
    const key = `${ns ?? ''}/${meta.name}`;
    const bucket = this.bucket(def);
    if (bucket.has(key)) {
      throw new HttpError(409, `${def.resource}${def.group ? '.' + def.group : ''} "${meta.name}" already exists`, { name: meta.name, group: def.group, kind: def.resource }, 'AlreadyExists');
    }
    const full: KubeObject = { ...tm, ...obj, metadata: { ...meta, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } };
    this.validate(def, full);
    if (!dryRun) bucket.set(key, full);
    return clone(full);
  }

  private replace(def: ResourceDef, key: string, current: KubeObject, next: KubeObject, sub: string | undefined, dryRun: boolean): KubeObject {
    const rv = next.metadata?.resourceVersion;
    if (rv !== undefined && rv !== current.metadata.resourceVersion) {
      throw new HttpError(409, `Operation cannot be fulfilled on ${def.resource} "${current.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`, undefined, 'Conflict');
    }
    let merged: KubeObject;
    if (sub === 'status') merged = { ...clone(current), status: next.status };
    else {
      merged = { ...next, ...this.typeMeta(def) };
      if (def.subresources?.includes('status')) merged.status = clone(current.status);
      if (merged.status === undefined) delete merged.status;
    }
    // identity fields are the server's
    merged.metadata = { ...merged.metadata, name: current.metadata.name, namespace: current.metadata.namespace, uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp, resourceVersion: String(++this.rv) };
    if (!def.namespaced) delete merged.metadata.namespace;
    this.validate(def, merged);
    if (!dryRun) this.bucket(def).set(key, merged);
    return clone(merged);
  }

  private validate(def: ResourceDef, obj: KubeObject): void {
    const errs = def.validate?.(obj) ?? [];
    if (errs.length) throw new HttpError(422, `${def.kind} "${obj.metadata.name}" is invalid: ${errs.join(', ')}`, { name: obj.metadata.name, group: def.group, kind: def.kind }, 'Invalid');
  }

  private list(def: ResourceDef, ns: string | undefined, params: URLSearchParams): KubeObject {
    let items = [...this.bucket(def).values()].filter((o) => ns === undefined || o.metadata.namespace === ns);
    const ls = params.get('labelSelector');
    if (ls) {
      const reqs = parseLabelSelector(ls);
      items = items.filter((o) => reqs.every((r) => r(o.metadata.labels ?? {})));
    }
    const fs = params.get('fieldSelector');
    if (fs) {
      for (const term of fs.split(',').filter(Boolean)) {
        const m = term.match(/^([^!=]+)(==|=|!=)(.*)$/);
        if (!m) throw new HttpError(400, `invalid field selector: ${term}`);
        const [, field, op, value] = m as unknown as [string, string, string, string];
        const getter = field === 'metadata.name' ? (o: KubeObject) => o.metadata.name
          : field === 'metadata.namespace' ? (o: KubeObject) => o.metadata.namespace ?? ''
          : def.fields?.[field];
        if (!getter) throw new HttpError(400, `field label not supported: ${field}`);
        items = items.filter((o) => (op === '!=' ? getter(o) !== value : (getter(o) ?? '') === value));
      }
    }
    items.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    const tm = this.typeMeta(def);
    return {
      kind: `${def.kind}List`, apiVersion: tm.apiVersion, metadata: { resourceVersion: String(this.rv) },
      items: items.map((o) => {
        const c = clone(o);
        if (def.builtin) { delete c.kind; delete c.apiVersion; }
        return c;
      }),
    };
  }

  /** The server-side printing kubectl asks for (`Accept: ...;as=Table`): events get the apiserver's columns,
   * everything else NAME / Created At as for a CRD without printer columns. */
  private table(body: KubeObject, q: URLSearchParams): KubeObject {
    if (!body || !body.metadata || (body.kind === 'APIResourceList' || body.kind === 'APIGroupList')) return body;
    const items: KubeObject[] = Array.isArray(body.items) ? body.items : [body];
    const isEvent = (body.kind === 'EventList' || body.kind === 'Event') && (body.apiVersion === 'v1');
    const col = (name: string, type = 'string', priority = 0) => ({ name, type, format: name === 'Name' ? 'name' : '', description: '', priority });
    const columnDefinitions = isEvent
      ? [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Subobject', 'string', 1), col('Source', 'string', 1), col('Message'), col('First Seen', 'string', 1), col('Count', 'string', 1), col('Name', 'string', 1)]
      : [col('Name'), col('Created At', 'date')];
    const objectOf = (o: KubeObject) => (q.get('includeObject') === 'Object' ? o
      : q.get('includeObject') === 'None' ? undefined : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata });
    const rows = items.map((o) => {
      const cells = isEvent
        ? [since(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp), o.type ?? '', o.reason ?? '',
            `${String(o.involvedObject?.kind ?? '').toLowerCase()}/${o.involvedObject?.name ?? ''}`, o.involvedObject?.fieldPath ?? '',
            [o.source?.component, o.source?.host].filter(Boolean).join(', '), o.message ?? '', since(o.firstTimestamp ?? o.eventTime), String(o.count ?? 1), o.metadata.name]
        : [o.metadata.name, o.metadata.creationTimestamp];
      return { cells, object: objectOf(o) };
    });
    return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: body.metadata.resourceVersion ?? '' }, columnDefinitions, rows };
  }

  private groupList() {
    const groups = new Map<string, Set<string>>();
    for (const d of this.defs.values()) if (d.group) (groups.get(d.group) ?? groups.set(d.group, new Set()).get(d.group)!).add(d.version);
    return {
      kind: 'APIGroupList', apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: vs, preferredVersion: vs[0]! };
      }),
    };
  }

  private resourceList(group: string, version: string) {
    const defs = [...this.defs.values()].filter((d) => d.group === group && d.version === version);
    if (!defs.length) throw new HttpError(404, 'the server could not find the requested resource');
    const resources = defs.flatMap((d) => [
      { name: d.resource, singularName: d.singular ?? d.kind.toLowerCase(), namespaced: d.namespaced, kind: d.kind, verbs: d.verbs ?? [...DEFAULT_VERBS, 'watch'], ...(d.shortNames ? { shortNames: d.shortNames } : {}) },
      ...(d.subresources ?? []).map((s) => ({ name: `${d.resource}/${s}`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] })),
    ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gvKey(group, version), resources };
  }
}

/** kubectl's short ages: 5s, 3m, 2h, 4d. */
function since(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : s < 172800 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;
}

function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fake-apiserver-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=fake-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A 403 as the apiserver words it for a service account lacking `verb` on `resource`. */
export function forbiddenMessage(verb: string, resource: string, opts: { group?: string; namespace?: string; name?: string; user?: string } = {}): string {
  const user = opts.user ?? 'system:serviceaccount:kmm-worker:kmm-worker';
  const what = opts.name ? `${resource} "${opts.name}"` : resource;
  const where = opts.namespace ? ` in the namespace "${opts.namespace}"` : ' at the cluster scope';
  return `${what} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${opts.group ?? ''}"${where}`;
}
