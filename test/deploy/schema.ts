// A small structural schema of the Kubernetes kinds deploy/ uses: required fields, types, and unknown fields
// (a misspelt `readinesProbe` is silently dropped by a lenient apply; here it fails). Only the fields the
// manifests use are modelled; anything else is reported as unknown, so a new field means a schema update.

type S =
  | { t: 'string'; enum?: string[]; pattern?: RegExp }
  | { t: 'int' }
  | { t: 'bool' }
  | { t: 'map' } // string → string
  | { t: 'any' }
  | { t: 'array'; items: S }
  | { t: 'object'; props: Record<string, S>; required?: string[]; oneOf?: string[] };

const str: S = { t: 'string' };
const int: S = { t: 'int' };
const bool: S = { t: 'bool' };
const map: S = { t: 'map' };
const arr = (items: S): S => ({ t: 'array', items });
const obj = (props: Record<string, S>, required: string[] = [], oneOf?: string[]): S => ({ t: 'object', props, required, ...(oneOf ? { oneOf } : {}) });
const dns1123 = { t: 'string', pattern: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/ } as const;

const metadata = obj({ name: dns1123, namespace: dns1123, labels: map, annotations: map, finalizers: arr(str) }, ['name']);
const fieldRef = obj({ fieldPath: str, apiVersion: str }, ['fieldPath']);
const envVar = obj({ name: str, value: str, valueFrom: obj({ fieldRef }, [], ['fieldRef']) }, ['name']);
const httpGet = obj({ path: str, port: { t: 'any' }, scheme: { t: 'string', enum: ['HTTP', 'HTTPS'] } }, ['port']);
const probe = obj({ httpGet, periodSeconds: int, failureThreshold: int, initialDelaySeconds: int, timeoutSeconds: int }, [], ['httpGet']);
const container = obj(
  {
    name: dns1123,
    image: str,
    imagePullPolicy: { t: 'string', enum: ['Always', 'IfNotPresent', 'Never'] },
    command: arr(str),
    args: arr(str),
    env: arr(envVar),
    ports: arr(obj({ name: str, containerPort: int, protocol: { t: 'string', enum: ['TCP', 'UDP', 'SCTP'] } }, ['containerPort'])),
    livenessProbe: probe,
    readinessProbe: probe,
    startupProbe: probe,
    resources: obj({ requests: map, limits: map }),
    securityContext: obj({
      privileged: bool,
      runAsUser: int,
      readOnlyRootFilesystem: bool,
      capabilities: obj({ add: arr(str), drop: arr(str) }),
      seLinuxOptions: obj({ type: str, level: str, role: str, user: str }),
    }),
    volumeMounts: arr(obj({ name: str, mountPath: { t: 'string', pattern: /^\// }, readOnly: bool }, ['name', 'mountPath'])),
  },
  ['name', 'image'],
);
const volume = obj(
  {
    name: dns1123,
    hostPath: obj({ path: { t: 'string', pattern: /^\// }, type: { t: 'string', enum: ['', 'Directory', 'DirectoryOrCreate', 'File', 'FileOrCreate'] } }, ['path']),
    downwardAPI: obj({ items: arr(obj({ path: str, fieldRef }, ['path'])) }, ['items']),
    configMap: obj({ name: str, items: arr(obj({ key: str, path: str }, ['key', 'path'])) }, ['name']),
    emptyDir: obj({ medium: str, sizeLimit: str }),
  },
  ['name'],
  ['hostPath', 'downwardAPI', 'configMap', 'emptyDir'],
);
const podSpec = obj(
  {
    nodeName: str,
    nodeSelector: map,
    restartPolicy: { t: 'string', enum: ['Always', 'OnFailure', 'Never'] },
    serviceAccountName: dns1123,
    priorityClassName: str,
    terminationGracePeriodSeconds: int,
    tolerations: arr(obj({ key: str, operator: { t: 'string', enum: ['Exists', 'Equal'] }, value: str, effect: str })),
    initContainers: arr(container),
    containers: arr(container),
    volumes: arr(volume),
  },
  ['containers'],
);
const policyRule = obj({ apiGroups: arr(str), resources: arr(str), verbs: arr(str), resourceNames: arr(str) }, ['verbs']);

const KINDS: Record<string, { apiVersion: string; schema: S }> = {
  Namespace: { apiVersion: 'v1', schema: obj({ metadata }, ['metadata']) },
  ServiceAccount: { apiVersion: 'v1', schema: obj({ metadata }, ['metadata']) },
  ConfigMap: { apiVersion: 'v1', schema: obj({ metadata, data: map }, ['metadata']) },
  Pod: { apiVersion: 'v1', schema: obj({ metadata, spec: podSpec }, ['metadata', 'spec']) },
  DaemonSet: {
    apiVersion: 'apps/v1',
    schema: obj({
      metadata,
      spec: obj({
        selector: obj({ matchLabels: map }, ['matchLabels']),
        updateStrategy: obj({ type: { t: 'string', enum: ['RollingUpdate', 'OnDelete'] }, rollingUpdate: obj({ maxUnavailable: { t: 'any' }, maxSurge: { t: 'any' } }) }),
        template: obj({ metadata: obj({ labels: map, annotations: map }), spec: podSpec }, ['metadata', 'spec']),
      }, ['selector', 'template']),
    }, ['metadata', 'spec']),
  },
  ClusterRole: { apiVersion: 'rbac.authorization.k8s.io/v1', schema: obj({ metadata, rules: arr(policyRule) }, ['metadata']) },
  ClusterRoleBinding: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    schema: obj({
      metadata,
      roleRef: obj({ apiGroup: str, kind: { t: 'string', enum: ['ClusterRole', 'Role'] }, name: str }, ['apiGroup', 'kind', 'name']),
      subjects: arr(obj({ kind: { t: 'string', enum: ['ServiceAccount', 'User', 'Group'] }, name: str, namespace: str, apiGroup: str }, ['kind', 'name'])),
    }, ['metadata', 'roleRef']),
  },
};

function check(v: unknown, s: S, path: string, errs: string[]): void {
  switch (s.t) {
    case 'any':
      return;
    case 'string':
      if (typeof v !== 'string') return void errs.push(`${path}: must be a string`);
      if (s.enum && !s.enum.includes(v)) errs.push(`${path}: must be one of ${s.enum.join(', ')}`);
      if (s.pattern && !s.pattern.test(v)) errs.push(`${path}: '${v}' does not match ${s.pattern}`);
      return;
    case 'int':
      if (!Number.isInteger(v)) errs.push(`${path}: must be an integer`);
      return;
    case 'bool':
      if (typeof v !== 'boolean') errs.push(`${path}: must be a boolean`);
      return;
    case 'map':
      if (!v || typeof v !== 'object' || Array.isArray(v)) return void errs.push(`${path}: must be a map`);
      for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') errs.push(`${path}.${k}: must be a string`);
      return;
    case 'array':
      if (!Array.isArray(v)) return void errs.push(`${path}: must be an array`);
      v.forEach((x, i) => check(x, s.items, `${path}[${i}]`, errs));
      return;
    case 'object': {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return void errs.push(`${path}: must be an object`);
      const o = v as Record<string, unknown>;
      for (const r of s.required ?? []) if (o[r] === undefined) errs.push(`${path}.${r}: required`);
      for (const [k, x] of Object.entries(o)) {
        const p = s.props[k];
        if (!p) errs.push(`${path}.${k}: unknown field`);
        else check(x, p, `${path}.${k}`, errs);
      }
      if (s.oneOf && s.oneOf.filter((k) => o[k] !== undefined).length !== 1) errs.push(`${path}: exactly one of ${s.oneOf.join(', ')}`);
    }
  }
}

/** Errors of one manifest object (empty when it conforms). */
export function checkSchema(doc: Record<string, unknown>): string[] {
  const kind = String(doc.kind);
  const k = KINDS[kind];
  if (!k) return [`${kind}: kind not modelled`];
  const errs: string[] = [];
  if (doc.apiVersion !== k.apiVersion) errs.push(`${kind}.apiVersion: must be ${k.apiVersion}`);
  const { apiVersion: _a, kind: _k, ...rest } = doc;
  check(rest, k.schema, kind, errs);
  return errs;
}
