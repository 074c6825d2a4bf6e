/**
 * Chooses the Reporter for a command (docs/reporting.md): Kubernetes Events when `--report auto`, a node name and
 * credentials exist; otherwise none. A dry run reports nothing (it touches nothing, the cluster included).
 */
import type { Context } from '../context.js';
import { oneLine } from '../errors.js';
import type { ModuleIdentity } from '../config/identity.js';
import type { LoadKubeConfigOptions } from './kube.js';
import type { KubeReporterOptions } from './kube-reporter.js';
import { noReporter, type Reporter } from './reporter.js';

export async function createReporter(
  ctx: Pick<Context, 'opts' | 'log'>,
  module: ModuleIdentity,
  tuning: Partial<Pick<KubeReporterOptions, 'attempts' | 'requestTimeoutMs' | 'budgetMs' | 'backoffMs'>> & LoadKubeConfigOptions = {},
): Promise<Reporter> {
  const { opts, log } = ctx;
  if (opts.report === 'off') return noReporter;
  if (opts.dryRun) {
    log.debug('dry run: not reporting Events');
    return noReporter;
  }
  if (!opts.nodeName) {
    sayEventsOffOnce(log);
    return noReporter;
  }
  // loaded only now: commands that do not report do not pay for the Kubernetes client
  const { kubeClients, loadKubeConfig } = await import('./kube.js');
  const { createKubeReporter } = await import('./kube-reporter.js');
  let loaded;
  try {
    loaded = loadKubeConfig(tuning);
  } catch (err) {
    log.warn(`Kubernetes credentials unusable, not reporting Events: ${oneLine(err)}`);
    return noReporter;
  }
  if (!loaded) {
    log.info(`no Kubernetes credentials (KUBECONFIG or in-cluster service account): not reporting Events on Node ${opts.nodeName}`);
    return noReporter;
  }
  const clients = kubeClients(loaded);
  log.debug({ server: clients.server, credentials: loaded.source, node: opts.nodeName }, 'reporting Events on the Node');
  return createKubeReporter({ clients, nodeName: opts.nodeName, module, log, ...budgetFromEnv(tuning.env ?? process.env, log), ...pick(tuning) });
}

let eventsOffSaid = false;

/**
 * KMM's own worker pod sets no NODE_NAME, so without this line Events would stop silently. Said once per
 * process (the daemon builds a reporter for every load).
 */
function sayEventsOffOnce(log: Pick<Context, 'log'>['log']): void {
  if (eventsOffSaid) return;
  eventsOffSaid = true;
  log.info(
    'Events are off: no node name (--node-name or NODE_NAME), and KMM\'s worker pod sets neither; to turn them on, ' +
      'give the worker container env NODE_NAME from fieldRef spec.nodeName (see deploy/worker-pod.yaml), or pass --report off to silence this',
  );
}

/** `KMM_REPORT_TIMEOUT` (seconds, default 6): how long one report may take, retries included. */
function budgetFromEnv(env: NodeJS.ProcessEnv, log: Pick<Context, 'log'>['log']): Partial<KubeReporterOptions> {
  const raw = env.KMM_REPORT_TIMEOUT;
  if (raw === undefined || raw === '') return {};
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    log.warn(`KMM_REPORT_TIMEOUT must be a positive number of seconds, got '${raw}'; using the default`);
    return {};
  }
  const budgetMs = Math.round(seconds * 1000);
  return { budgetMs, requestTimeoutMs: Math.min(2000, Math.max(100, Math.round(budgetMs / 2))) };
}

function pick(t: Partial<KubeReporterOptions>): Partial<KubeReporterOptions> {
  const out: Partial<KubeReporterOptions> = {};
  if (t.attempts !== undefined) out.attempts = t.attempts;
  if (t.requestTimeoutMs !== undefined) out.requestTimeoutMs = t.requestTimeoutMs;
  if (t.budgetMs !== undefined) out.budgetMs = t.budgetMs;
  if (t.backoffMs !== undefined) out.backoffMs = t.backoffMs;
  return out;
}
