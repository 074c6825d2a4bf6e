/**
 * `kmm-worker diagnose [<config>]`: a read-only support bundle of this node's KMM state (what must-gather is
 * for a cluster). Prints a summary with a verdict per check, or JSON, and can write a .tar.gz for a ticket.
 */
import path from 'node:path';
import type { Context } from '../context.js';
import { OperationError, UsageError, oneLine } from '../errors.js';
import { readModuleConfig } from '../config/module-config.js';
import { ExecModinfo } from '../host/runners.js';
import { version } from '../version.js';
import { collectDiagnosis } from '../diagnose/collect.js';
import { renderSummary } from '../diagnose/render.js';
import { writeBundle } from '../diagnose/bundle.js';
import type { DiagnoseFlags } from './diagnose-command.js';

export async function diagnose(ctx: Context, configPath: string | undefined, flags: DiagnoseFlags): Promise<void> {
  if (flags.output !== undefined && !/\.(tar\.gz|tgz)$/.test(flags.output)) {
    throw new UsageError(`--output must name a .tar.gz (or .tgz) file, got '${flags.output}'`);
  }
  const config = configPath ? { path: configPath, config: await readModuleConfig(configPath) } : undefined;
  const { resolveDigest, closeRegistryClients } = await import('../image/open.js');
  const timeoutMs = 20_000;
  try {
    const report = await collectDiagnosis(config, {
      hostRoot: ctx.opts.hostRoot,
      imagesDir: ctx.opts.imagesDir,
      version: version(),
      firmwarePath: flags.firmwarePath,
      modinfo: new ExecModinfo(ctx.opts.modinfo, ctx.log),
      resolveDigest: flags.registry === false ? undefined : (ref) => resolveDigest(ref, {
        insecure: config?.config.insecurePull,
        authFile: ctx.opts.authFile,
        pullSecretsDir: ctx.opts.pullSecretsDir,
        hostRoot: ctx.opts.hostRoot,
        log: ctx.log,
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]),
        // one try: a support bundle reports an unreachable registry, it does not wait it out
        retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
      }),
    });
    const summary = renderSummary(report);
    if (flags.output) {
      try {
        await writeBundle(flags.output, report, summary);
      } catch (err) {
        throw new OperationError(`cannot write ${flags.output}: ${oneLine(err)}`);
      }
      ctx.log.info({ file: path.resolve(flags.output) }, 'support bundle written');
    }
    ctx.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : summary);
  } finally {
    void closeRegistryClients().catch(() => undefined);
  }
}
