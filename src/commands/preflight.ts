import type { Context } from '../context.js';
import { UsageError, oneLine } from '../errors.js';

/** The flags of `kmm-worker preflight` as commander gives them (see src/cli.ts). */
export interface PreflightFlags {
  kernel?: string;
  preflight?: string;
  module?: string[];
  fromCluster?: boolean;
  parallel: number;
  timeout: number;
  insecure?: boolean;
  platform?: string;
  json?: boolean;
  writeStatus?: string;
  [flag: string]: unknown;
}

export async function preflight(ctx: Context, flags: PreflightFlags): Promise<number> {
  const { runPreflight } = await import('../preflight/run-preflight.js');
  const { openImage, closeRegistryClients } = await import('../image/open.js');
  const { loadKubeConfig, kubeClients } = await import('../report/kube.js');
  const kube = () => {
    let loaded: ReturnType<typeof loadKubeConfig>;
    try {
      loaded = loadKubeConfig();
    } catch (err) {
      throw new UsageError(`Kubernetes credentials: ${oneLine(err)}`);
    }
    return loaded ? kubeClients(loaded) : undefined;
  };
  try {
    return await runPreflight(
      ctx,
      {
        kernel: flags.kernel,
        preflightFile: flags.preflight,
        moduleFiles: flags.module,
        fromCluster: flags.fromCluster,
        parallel: flags.parallel,
        timeoutSeconds: flags.timeout,
        insecure: flags.insecure,
        platform: flags.platform,
        json: flags.json,
        writeStatus: flags.writeStatus,
      },
      { openImage, kube },
    );
  } finally {
    // keep-alive connections to registries must not hold the process open
    await closeRegistryClients();
  }
}
