/**
 * The global options of README.md "Global options": declared once, here, with their defaults and environment
 * variables; their type (`GlobalFlags`) is inferred from the declarations, and `globalOptions` turns them into
 * the `GlobalOptions` every command's `Context` carries.
 */
import { Option, type Command } from '@commander-js/extra-typings';
import type { GlobalOptions } from '../context.js';

export function addGlobalOptions(program: Command) {
  return program
    .addOption(new Option('--host-root <dir>', "resolve the node's own paths under DIR").env('KMM_HOST_ROOT').default('/'))
    .addOption(new Option('--modprobe <path>', 'the modprobe binary').env('KMM_MODPROBE').default('modprobe'))
    .addOption(new Option('--images-dir <dir>', 'image cache and Day-1 store').env('KMM_IMAGES_DIR').default('/var/lib/kmm/images'))
    .addOption(new Option('--shared-dir <dir>', 'where a KMM init container left the kmods').env('KMM_SHARED_DIR').default('/tmp'))
    .addOption(
      new Option('--pull-secrets-dir <dir>', 'searched for .dockerconfigjson/.dockercfg files')
        .env('KMM_PULL_SECRETS_DIR')
        .default('/var/run/kmm/pull-secrets'),
    )
    .addOption(new Option('--auth-file <file>', 'containers-auth.json or docker config.json').env('REGISTRY_AUTH_FILE'))
    .addOption(new Option('--dry-run', 'print what would be written and run; touch nothing on the host').default(false))
    .addOption(new Option('--node-name <name>', 'the Node to report Events on').env('NODE_NAME'))
    .addOption(new Option('--report <mode>', 'report Events when possible').env('KMM_REPORT').choices(['auto', 'off']).default('auto'))
    .addOption(new Option('--module-namespace <ns>', 'namespace of the Module being handled').env('KMM_MODULE_NAMESPACE'))
    .addOption(new Option('--module-name <name>', 'name of the Module being handled').env('KMM_MODULE_NAME'))
    .addOption(
      new Option('--log-level <level>', 'log level')
        .env('KMM_LOG_LEVEL')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option('--log-format <format>', 'log format (default: pretty on a terminal, json in a pod, text under journald and in pipes)')
        .env('KMM_LOG_FORMAT')
        .choices(['json', 'pretty', 'text']),
    );
}

/** The program with its global options: every command module registers under it. */
export type Program = ReturnType<typeof addGlobalOptions>;
export type GlobalFlags = ReturnType<Program['opts']>;

export function globalOptions(o: GlobalFlags): GlobalOptions {
  const env = process.env;
  return {
    hostRoot: o.hostRoot,
    modprobe: o.modprobe,
    modinfo: env.KMM_MODINFO || 'modinfo',
    depmod: env.KMM_DEPMOD || 'depmod',
    imagesDir: o.imagesDir,
    sharedDir: o.sharedDir,
    pullSecretsDir: o.pullSecretsDir,
    authFile: o.authFile,
    dryRun: o.dryRun,
    nodeName: o.nodeName || undefined,
    report: o.report,
    moduleNamespace: o.moduleNamespace || undefined,
    moduleName: o.moduleName || undefined,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
  };
}
