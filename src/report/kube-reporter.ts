/**
 * Events on the Node (docs/reporting.md), written the way `kubectl describe node` finds them.
 *
 * Repeats: the agent is usually a short-lived process (one `kmod load` per worker pod), so an in-memory
 * correlator like client-go's cannot see the previous event. Instead an event's name is derived from what
 * makes it "identical" (node, module, reason, type, message): a repeat hits 409 on create and is bumped with
 * patches — a no-op merge patch to read the current count (the RBAC grants only create/patch on events), then a
 * JSON patch that tests that count, so two concurrent bumps cannot both write the same value.
 *
 * Bounded: every request has its own time limit, transient failures (network, 5xx, 429, no answer) are retried
 * with backoff inside one overall budget; RBAC or validation refusals are not retried. A Reporter never throws.
 */
import { createHash } from 'node:crypto';
import { PatchStrategy, type CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { identityString, type ModuleIdentity } from '../config/identity.js';
import { apiStatus, callOptions, describeApiError, type KubeClients } from './kube.js';
import type { ModuleEvent, Reporter } from './reporter.js';
import { errorMessage } from '../errors.js';

export const REPORTING_COMPONENT = 'kmm-worker';
export const EVENT_NAMESPACE = 'default';
/** the apiserver caps an event's message at 1 KiB */
const MAX_MESSAGE = 1024;

export interface KubeReporterOptions {
  clients: Pick<KubeClients, 'core' | 'server'>;
  nodeName: string;
  module: ModuleIdentity;
  log: Logger;
  /** attempts per API call for transient failures (default 3) */
  attempts?: number;
  /** time limit of one request (default 2 s) */
  requestTimeoutMs?: number;
  /** overall limit of one report (default 6 s) */
  budgetMs?: number;
  /** first retry delay, doubled each time (default 200 ms) */
  backoffMs?: number;
  now?: () => Date;
}

/** A refusal that retrying will not change; `permission` names the RBAC rule it lacks. */
class Refused extends Error {
  readonly permission: string | undefined;
  constructor(message: string, permission?: string) {
    super(message);
    this.permission = permission;
  }
}

// The Node's uid is fetched once per process and API server, whatever the number of reporters (the daemon
// builds one per config).
const nodeUids = new Map<string, Promise<string | undefined>>();

/** Exposed for tests that start a fresh API server with the same node name. */
export function forgetNodeUids(): void {
  nodeUids.clear();
}

export function eventName(nodeName: string, module: ModuleIdentity, ev: ModuleEvent): string {
  const h = createHash('sha256').update([nodeName, identityString(module), ev.reason, ev.type, ev.message].join('\0')).digest('hex');
  return `${nodeName}.${h.slice(0, 16)}`;
}

export function createKubeReporter(opts: KubeReporterOptions): Reporter {
  const { clients, nodeName, module, log } = opts;
  const attempts = opts.attempts ?? 3;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 2000;
  const budgetMs = opts.budgetMs ?? 6000;
  const backoffMs = opts.backoffMs ?? 200;
  const now = opts.now ?? (() => new Date());

  /** Runs one API call with retries for transient failures, inside the report's deadline. */
  async function call<T>(what: string, permission: string, deadline: number, fn: (o: ReturnType<typeof callOptions>) => Promise<T>, contentType?: string): Promise<T> {
    let delay = backoffMs;
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: gave up after ${budgetMs} ms`);
      try {
        return await fn(callOptions({ timeoutMs: Math.min(requestTimeoutMs, left), ...(contentType ? { contentType } : {}) }));
      } catch (err) {
        const status = apiStatus(err);
        if (status === 403) throw new Refused(`${what}: ${describeApiError(err)}`, permission);
        if (status === 401) throw new Refused(`${what}: the API server rejected the credentials (${describeApiError(err)})`);
        const transient = status === undefined || status >= 500 || status === 429;
        if (!transient || attempt >= attempts || Date.now() + delay >= deadline) {
          const e = new Error(`${what}: ${describeApiError(err)}`) as Error & { status?: number };
          e.status = status;
          throw e;
        }
        log.debug({ attempt, error: describeApiError(err) }, `${what} failed; retrying`);
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }

  function nodeUid(deadline: number): Promise<string | undefined> {
    const key = `${clients.server}\0${nodeName}`;
    let p = nodeUids.get(key);
    if (!p) {
      p = call(`get Node ${nodeName}`, 'get nodes', deadline, (o) => clients.core.readNode({ name: nodeName }, o)).then(
        (node) => node.metadata?.uid,
        (err: unknown) => {
          // kubelet itself refers to its Node by uid = name, and `kubectl describe node` searches both, so the
          // events stay visible; try the real uid again on the next report
          nodeUids.delete(key);
          warn(err, `cannot read Node ${nodeName}; reporting with the node name as its uid`);
          return undefined;
        },
      );
      nodeUids.set(key, p);
    }
    return p;
  }

  function warn(err: unknown, what: string): void {
    if (err instanceof Refused && err.permission) {
      const [verb, resource] = err.permission.split(' ');
      log.warn({ missingPermission: { verb, resource, namespace: resource === 'events' ? EVENT_NAMESPACE : undefined } },
        `${what}: permission denied: not allowed to "${verb}" ${resource}${resource === 'events' ? ` in namespace "${EVENT_NAMESPACE}"` : ''} (RBAC; deploy/rbac.yaml grants what is needed)`);
    } else {
      log.warn(`${what}: ${errorMessage(err)}`);
    }
  }

  async function bump(name: string, deadline: number): Promise<void> {
    for (let round = 0; round < attempts; round++) {
      const current = await call(`read Event ${name}`, 'patch events', deadline, (o) =>
        clients.core.patchNamespacedEvent({ name, namespace: EVENT_NAMESPACE, body: {} }, o), PatchStrategy.MergePatch);
      const count = current.count ?? 1;
      try {
        await call(`update Event ${name}`, 'patch events', deadline, (o) =>
          clients.core.patchNamespacedEvent({
            name, namespace: EVENT_NAMESPACE,
            body: [
              { op: 'test', path: '/count', value: current.count ?? null },
              { op: 'replace', path: '/count', value: count + 1 },
              { op: current.lastTimestamp ? 'replace' : 'add', path: '/lastTimestamp', value: now().toISOString() },
            ],
          }, o), PatchStrategy.JsonPatch);
        return;
      } catch (err) {
        // 422: the count moved under us (another bump) — read it again
        if ((err as { status?: number }).status !== 422) throw err;
      }
    }
    throw new Error(`update Event ${name}: its count kept changing`);
  }

  return {
    async report(ev: ModuleEvent): Promise<void> {
      const deadline = Date.now() + budgetMs;
      const name = eventName(nodeName, module, ev);
      try {
        const uid = (await nodeUid(deadline)) ?? nodeName;
        const at = now();
        const body: CoreV1Event = {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace: EVENT_NAMESPACE, annotations: { module: identityString(module) } },
          involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid },
          reason: ev.reason,
          type: ev.type,
          message: ev.message.length > MAX_MESSAGE ? `${ev.message.slice(0, MAX_MESSAGE - 3)}...` : ev.message,
          count: 1,
          firstTimestamp: at,
          lastTimestamp: at,
          source: { component: REPORTING_COMPONENT, host: nodeName },
          reportingComponent: REPORTING_COMPONENT,
          reportingInstance: nodeName,
          action: ev.reason.startsWith('ModuleUnload') ? 'Unload' : 'Load',
        };
        try {
          await call(`create Event ${name}`, 'create events', deadline, (o) => clients.core.createNamespacedEvent({ namespace: EVENT_NAMESPACE, body }, o));
          log.debug({ event: name, reason: ev.reason }, 'reported event');
        } catch (err) {
          if ((err as { status?: number }).status !== 409) throw err;
          await bump(name, deadline);
          log.debug({ event: name, reason: ev.reason }, 'reported repeated event');
        }
      } catch (err) {
        warn(err, `could not report ${ev.reason} on Node ${nodeName}`);
      }
    },
  };
}
