import type { Context } from '../context.js';
import { UsageError, oneLine } from '../errors.js';
import { speakTo } from '../messages.js';
import type { PreflightFlags } from './preflight-command.js';

export async function preflight(ctx: Context, flags: PreflightFlags): Promise<number> {
  speakTo('module');
  const { runPreflight } = await import('../preflight/run-preflight.js');
  const { openImage, closeRegistryClients } = await import('../image/open.js');
  // the Kubernetes client is heavy to load: only for --from-cluster / --write-status
  const kube = async () => {
    const { loadKubeConfig, kubeClients } = await import('../report/kube.js');
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
        trustedKeys: flags.trustedKeys,
        symvers: flags.symvers,
        day1: { repo: flags.day1Image, moduleName: flags.day1Module, dirName: flags.day1DirName },
      },
      { openImage, kube },
    );
  } finally {
    // Everything is done here (report printed, status written). Keep-alive connections (registries, the API
    // server) must not hold the process open, nor may a connection stuck in a hung registry's TLS handshake
    // (abandoned at --timeout, but its socket lingers until undici's connect timeout): leave without them.
    void closeRegistryClients().catch(() => undefined);
    setTimeout(exitWhenFlushed, 200).unref();
  }
}

function exitWhenFlushed(): void {
  if (process.stdout.writableLength > 0) process.stdout.once('drain', () => process.exit());
  else process.exit();
}
