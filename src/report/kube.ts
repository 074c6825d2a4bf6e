/**
 * Kubernetes API plumbing shared by reporting and preflight: where the credentials come from, typed clients,
 * per-request time limits, and error descriptions that are safe to log.
 *
 * One HTTP stack: @kubernetes/client-node 2.x sends through undici's fetch, the same library the registry
 * client uses, so no node-fetch and no second TLS/agent configuration.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { of } from '@kubernetes/client-node/dist/gen/rxjsStub.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  customObjects: CustomObjectsApi;
  /** the API server URL, for log lines */
  server: string;
  /** where the credentials came from */
  source: 'kubeconfig' | 'in-cluster';
}

export interface LoadKubeConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** prefix of the service-account directory (tests); '' in production */
  inClusterRoot?: string;
}

/**
 * Finds credentials the way the agent is deployed: `KUBECONFIG` when set (by hand, CI, tests; it wins, as for
 * kubectl), else the pod's service account (in-cluster). Returns undefined when there are none — the caller
 * then runs without reporting. A KUBECONFIG that cannot be read or has no current cluster throws.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): { kubeConfig: KubeConfig; source: KubeClients['source'] } | undefined {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(':').filter(Boolean);
    // the first file provides the context, as kubectl merges; one file is the usual case
    kc.loadFromFile(files[0]!);
    if (!kc.getCurrentCluster()) throw new Error(`KUBECONFIG ${files[0]}: no current context with a cluster`);
    return { kubeConfig: kc, source: 'kubeconfig' };
  }
  const root = opts.inClusterRoot ?? '';
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(join(root + SERVICE_ACCOUNT_DIR, 'token'))) {
    kc.loadFromCluster(root);
    return { kubeConfig: kc, source: 'in-cluster' };
  }
  return undefined;
}

export function kubeClients(loaded: { kubeConfig: KubeConfig; source: KubeClients['source'] }): KubeClients {
  const { kubeConfig, source } = loaded;
  return {
    kubeConfig,
    source,
    server: kubeConfig.getCurrentCluster()?.server ?? '',
    core: kubeConfig.makeApiClient(CoreV1Api),
    customObjects: kubeConfig.makeApiClient(CustomObjectsApi),
  };
}

/**
 * Options for one API call: a time limit (and an outer abort signal) applied to the request, and optionally a
 * Content-Type (patch strategy). client-node has no per-call timeout, so a middleware sets the fetch signal.
 */
export function callOptions(opts: { timeoutMs: number; signal?: AbortSignal; contentType?: string }): ConfigurationOptions<ObservableMiddleware> {
  const limit = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([limit, opts.signal]) : limit;
  const middleware: ObservableMiddleware = {
    pre: (request) => {
      request.setSignal(signal);
      if (opts.contentType) request.setHeaderParam('Content-Type', opts.contentType);
      return of(request);
    },
    post: (response) => of(response),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** The HTTP status of an API error, or undefined when the server was not reached (or no answer came). */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? (err.code as number) : undefined;
}

/**
 * One line naming what went wrong, without the request (headers carry the token) or response headers that
 * ApiException.message includes: `HTTP 403 Forbidden: <apiserver message>` or the network cause.
 */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = (typeof err.body === 'string' ? safeJson(err.body) : err.body) as { message?: string; reason?: string } | undefined;
    const reason = body?.reason ? ` ${body.reason}` : '';
    return `HTTP ${err.code}${reason}${body?.message ? `: ${body.message}` : ''}`;
  }
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'no answer in time';
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
    return err.message.split('\n', 1)[0] ?? err.name;
  }
  return String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}
