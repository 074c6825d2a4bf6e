/**
 * Chooses the Reporter for a command (DESIGN §8): Kubernetes Events when `--report auto`, a node name and
 * credentials exist; otherwise none. A dry run reports nothing (it touches nothing, the cluster included).
 */
import type { Context } from '../context.js';
import { oneLine } from '../errors.js';
import type { ModuleIdentity } from '../worker/identity.js';
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
    log.debug('no --node-name / NODE_NAME: not reporting Events');
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
  return createKubeReporter({ clients, nodeName: opts.nodeName, module, log, ...pick(tuning) });
}

function pick(t: Partial<KubeReporterOptions>): Partial<KubeReporterOptions> {
  const out: Partial<KubeReporterOptions> = {};
  if (t.attempts !== undefined) out.attempts = t.attempts;
  if (t.requestTimeoutMs !== undefined) out.requestTimeoutMs = t.requestTimeoutMs;
  if (t.budgetMs !== undefined) out.budgetMs = t.budgetMs;
  if (t.backoffMs !== undefined) out.backoffMs = t.backoffMs;
  return out;
}
