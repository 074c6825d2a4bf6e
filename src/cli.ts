/**
 * The command line of README.md "Global options": commands and flags only. Each action loads its command module lazily, so
 * starting `kmm-worker kmod load` does not pay for the Kubernetes client or the registry stack it does not use.
 */
import { Command, CommanderError, Option } from 'commander';
import type { KmodFlags } from './commands/kmod.js';
import type { RunFlags } from './commands/run.js';
import type { ImagePullFlags } from './commands/image-pull.js';
import type { ImageInspectFlags } from './commands/image-inspect.js';
import type { ImageLsFlags, ImagePruneFlags } from './commands/image-store.js';
import type { PreflightFlags } from './commands/preflight.js';
import type { DiagnoseFlags } from './commands/diagnose.js';
import type { Day1LoadFlags, Day1MachineConfigFlags, Day1PullFlags } from './commands/day1.js';
import type { Context, GlobalOptions } from './context.js';
import { InterruptedError, OperationError, UsageError, cutEchoes, exitCodeOf, oneLine } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { addExamples } from './help-examples.js';
import { stepsRunning, whenNoStep } from './stop-guard.js';
import { version } from './version.js';

/** How long a stopping command may take between its steps before the process ends itself (KMM_STOP_GRACE_SECONDS). */
const STOP_GRACE_MS = (Number(process.env.KMM_STOP_GRACE_SECONDS) > 0 ? Number(process.env.KMM_STOP_GRACE_SECONDS) : 5) * 1000;

type Opts = Record<string, unknown>;

function globalOptions(o: Opts): GlobalOptions {
  const env = process.env;
  return {
    hostRoot: String(o.hostRoot),
    modprobe: String(o.modprobe),
    modinfo: env.KMM_MODINFO || 'modinfo',
    depmod: env.KMM_DEPMOD || 'depmod',
    imagesDir: String(o.imagesDir),
    sharedDir: String(o.sharedDir),
    pullSecretsDir: String(o.pullSecretsDir),
    authFile: o.authFile as string | undefined,
    dryRun: Boolean(o.dryRun),
    nodeName: (o.nodeName as string | undefined) || undefined,
    report: o.report as 'auto' | 'off',
    moduleNamespace: (o.moduleNamespace as string | undefined) || undefined,
    moduleName: (o.moduleName as string | undefined) || undefined,
    logLevel: String(o.logLevel),
    logFormat: o.logFormat as GlobalOptions['logFormat'],
  };
}

/** Runs one command with a context; maps errors to the exit codes of README.md "Exit codes" and prints the one-line cause. */
async function execute(cmd: Command, action: (ctx: Context) => Promise<number | void>): Promise<void> {
  const opts = globalOptions(cmd.optsWithGlobals());
  let log: Logger;
  try {
    log = await createLogger({ level: opts.logLevel, format: opts.logFormat });
  } catch (err) {
    throw new UsageError(`--log-level: ${oneLine(err)}`);
  }
  const controller = new AbortController();
  let settled = false;
  // A flow stops between its steps; a step that blocks (or a second signal) must not keep the process up
  // until SIGKILL. Forced exit waits for a running host step (src/stop-guard.ts), then for the action to
  // settle by itself for a moment, and only then ends the process with the signal's exit code.
  let forcing = false;
  const forceExit = async (why: string) => {
    if (forcing || settled) return;
    forcing = true;
    if (stepsRunning() > 0) {
      log.warn({ steps: stepsRunning() }, `${why}: waiting for the running step to finish`);
      await whenNoStep();
    }
    await new Promise((r) => setTimeout(r, 500).unref());
    if (settled) return;
    const reason = controller.signal.reason as InterruptedError;
    log.error({ exitCode: reason.exitCode }, `${reason.message}: ${why}; exiting without waiting for it`);
    log.flush?.();
    // process.exit() would wait for the thread pool, where the blocked step sits (libuv joins its threads at
    // exit): end by the signal's default action instead, which is what the shell and the kubelet then see
    // (128 + the signal number: 143 for SIGTERM, 130 for SIGINT)
    process.removeAllListeners(reason.signal);
    process.kill(process.pid, reason.signal);
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 1000).unref();
  };
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (controller.signal.aborted) {
      log.warn({ signal }, 'second signal received; still finishing cleanup');
      void forceExit('second signal');
      return;
    }
    log.warn({ signal }, 'signal received; stopping');
    controller.abort(new InterruptedError(signal));
    setTimeout(() => void forceExit(`the command did not stop within ${STOP_GRACE_MS / 1000}s`), STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: Context = { opts, log, stdout: process.stdout, signal: controller.signal };
  try {
    // a command that returns a code has dealt with any signal itself (the daemon stops on SIGTERM with 0)
    const code = await action(ctx);
    if (code !== undefined) process.exitCode = code;
    else if (controller.signal.aborted) process.exitCode = exitCodeOf(controller.signal.reason);
  } catch (err) {
    const reason = controller.signal.aborted && !(err instanceof UsageError) ? controller.signal.reason : err;
    const code = exitCodeOf(reason instanceof InterruptedError ? reason : err);
    log.error({ exitCode: code }, oneLine(err));
    if (err instanceof OperationError && err.detail) log.debug({ detail: err.detail }, 'failure detail');
    if (!(err instanceof UsageError || err instanceof OperationError || err instanceof InterruptedError)) {
      log.debug({ err }, 'unexpected error');
    }
    process.exitCode = code;
  } finally {
    settled = true;
    // the handlers stay: a signal arriving while the process exits is logged, not allowed to change the code
    log.flush?.();
  }
}

/** Wraps an action: `(args..., cmdOpts, cmd)` as commander calls it. */
function act(run: (ctx: Context, args: string[], flags: Opts) => Promise<number | void>) {
  return async (...params: unknown[]) => {
    const cmd = params[params.length - 1] as Command;
    const flags = params[params.length - 2] as Opts;
    const args = params.slice(0, -2) as string[];
    await execute(cmd, (ctx) => run(ctx, args, flags));
  };
}

const list = (v: string, prev: string[] = []) => prev.concat(v.split(',').map((s) => s.trim()).filter(Boolean));
function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive whole number, got '${v}'`);
    return n;
  };
}

export function buildProgram(): Command {
  const program = new Command('kmm-worker')
    .description('Node-side agent of Kernel Module Management: pull kmod images, install firmware, load modules')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // commander's own errors echo the argument too ("unknown option '...'")
    .configureOutput({ outputError: (text, write) => write(text.split('\n').map(cutEchoes).join('\n')) })
    // every subcommand's help lists the global options too: they are where --dry-run and --host-root live
    .configureHelp({ showGlobalOptions: true })
    .version(`kmm-worker ${version()}`, '-V, --version', 'print the version')
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

  program
    .command('version')
    .description('print the version')
    .action(
      act(async (ctx) => {
        const { version } = await import('./version.js');
        ctx.stdout.write(`kmm-worker ${version()}\n`);
      }),
    );

  const kmod = program.command('kmod').description('load or unload a module as the KMM worker does');
  for (const verb of ['load', 'unload'] as const) {
    const sub = kmod
      .command(`${verb} <config>`)
      .description(`${verb} the module described by a ModuleConfig file`)
      .option('--firmware-path <dir>', 'host firmware directory (also written to firmware_class.path)')
      // the upstream Go worker's flags, as the KMM operator passes them
      .option('--set-firmware-mount-path <dir>', 'upstream form: host firmware directory (no firmware_class.path write)');
    if (verb === 'load') sub.option('--set-firmware-class-path <dir>', 'upstream form: value to write to firmware_class.path');
    sub
      .action(
        act(async (ctx, [config], flags) => {
          const m = await import('./commands/kmod.js');
          return verb === 'load' ? m.kmodLoad(ctx, config!, flags as KmodFlags) : m.kmodUnload(ctx, config!, flags as KmodFlags);
        }),
      );
  }

  program
    .command('run <config>')
    .description('load, then stay up: health endpoints, config changes, re-load; unload on SIGTERM')
    .option('--firmware-path <dir>', 'host firmware directory (also written to firmware_class.path)')
    .option('--health-addr <host:port>', 'address of /healthz and /readyz', '127.0.0.1:8081')
    .option('--check-interval <seconds>', 'how often the config file and the module are checked', '10')
    .action(
      act(async (ctx, [config], flags) => {
        const m = await import('./commands/run.js');
        return m.runDaemon(ctx, config!, flags as RunFlags);
      }),
    );

  const image = program.command('image').description('pull and inspect kmod images');
  image
    .command('pull <ref>')
    .description('pull an image into the cache and extract it')
    .option('--kernel <kver>', 'extract only the modules of this kernel (and the firmware dir)')
    .option('--dir-name <dir>', 'the directory holding lib/modules in the image', '/opt')
    .option('--firmware-dir <path>', 'the firmware directory inside the image')
    .option('--all', 'extract every file of the image')
    .option('--pull-policy <policy>', 'IfNotPresent | Always | Never', 'IfNotPresent')
    .option('--platform <os/arch[/variant]>', 'platform to select from an index')
    .option('--insecure', 'allow plain HTTP and unverified TLS for this registry')
    .option('--json', 'print one JSON object on stdout')
    .option('--timeout <duration>', 'give up the whole pull after this long (e.g. 90s, 10m)', '10m')
    .action(
      act(async (ctx, [ref], flags) => {
        const m = await import('./commands/image-pull.js');
        return m.imagePull(ctx, ref!, flags as ImagePullFlags);
      }),
    );
  image
    .command('inspect <ref>')
    .description('show digest, platforms, layers and the kernels and .ko files an image carries')
    .option('--platform <os/arch[/variant]>', 'platform to select from an index')
    .option('--insecure', 'allow plain HTTP and unverified TLS for this registry')
    .option('--json', 'print one JSON object on stdout')
    .option('--timeout <duration>', 'give up after this long (e.g. 90s, 10m)', '10m')
    .action(
      act(async (ctx, [ref], flags) => {
        const m = await import('./commands/image-inspect.js');
        return m.imageInspect(ctx, ref!, flags as ImageInspectFlags);
      }),
    );
  image
    .command('ls')
    .description('list the cached images')
    .option('--json', 'print JSON on stdout')
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/image-store.js');
        return m.imageLs(ctx, flags as ImageLsFlags);
      }),
    );
  image
    .command('prune')
    .description('remove cache entries unused for a while')
    .option('--older-than <duration>', 'remove entries not used for this long (e.g. 7d, 12h, 0s)', '7d')
    .option('--json', 'print JSON on stdout')
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/image-store.js');
        return m.imagePrune(ctx, flags as ImagePruneFlags);
      }),
    );

  program
    .command('preflight')
    .description('validate Modules against an upcoming kernel')
    .option('--kernel <kver>', 'the kernel the cluster upgrades to (or from --preflight / the --write-status target)')
    .option('--preflight <file>', 'read the kernel from a PreflightValidationOCP file')
    .option('--module <file...>', 'Module YAML files (multi-document, kind List too; - reads stdin)')
    .option('--from-cluster', 'validate every Module of the cluster')
    .option('--parallel <n>', 'modules validated at once', positiveInt('--parallel'), 8)
    .option('--timeout <seconds>', 'time limit for each module, in seconds', positiveInt('--timeout'), 60)
    .option('--insecure', 'allow plain HTTP and unverified TLS')
    .option('--platform <os/arch[/variant]>', 'platform to select from an index')
    .option('--json', 'print JSON on stdout')
    .option('--write-status <name>', "write the result into the status of that PreflightValidation (or PreflightValidationOCP, whichever the cluster serves)")
    .option('--trusted-keys <dir>', 'DER/PEM certificates the upcoming kernel trusts: check each module is signed by one')
    .option('--symvers <file>', "the upcoming kernel's Module.symvers: check it exports every symbol a module needs")
    .option('--day1-image <repo>', 'also check the Day-1 image <repo>:<kernel> (with --day1-module): it must be pushed before nodes boot the kernel')
    .option('--day1-module <name>', 'the module the Day-1 units load')
    .option('--day1-dir-name <path>', 'the Day-1 image directory holding lib/modules/<kernel> (default /opt)')
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/preflight.js');
        return m.preflight(ctx, flags as PreflightFlags);
      }),
    );

  program
    .command('diagnose [config]')
    .description("read-only support bundle: kernel, module signing, the modules' live state against the image, firmware, cache, modprobe.d, kernel log, registry")
    .option('--firmware-path <dir>', 'a host firmware directory to look for KMM firmware records in (also: firmware_class.path, /var/lib/firmware)')
    .option('--no-registry', 'do not contact the registry')
    .option('--json', 'print the report as JSON on stdout')
    .option('--output <file.tar.gz>', 'also write the report and the raw lines it was made from into a .tar.gz')
    .action(
      act(async (ctx, [config], flags) => {
        const m = await import('./commands/diagnose.js');
        return m.diagnose(ctx, config, flags as DiagnoseFlags);
      }),
    );

  const day1 = program.command('day1').description('Day-1: load a module before the network, pull its image after');
  // Every day1 flag also reads a KMM_DAY1_* variable, so the systemd units take their settings from one
  // EnvironmentFile (systemd/kmm-day1.env); an empty variable means the default.
  const day1Option = (flags: string, description: string, env: string) => new Option(flags, description).env(env);
  day1
    .command('pull')
    .description('store <image>:<running kernel> in the images dir; reboot if something new was stored')
    .addOption(day1Option('--image <repo>', 'image repository (the tag is the running kernel release)', 'KMM_DAY1_IMAGE').makeOptionMandatory())
    .addOption(day1Option('--module <name>', 'module name', 'KMM_DAY1_MODULE').makeOptionMandatory())
    .addOption(day1Option('--dir-name <dir>', 'the directory holding lib/modules in the image (default /opt)', 'KMM_DAY1_DIR_NAME'))
    .addOption(day1Option('--firmware-dir <path>', 'the firmware directory inside the image', 'KMM_DAY1_FIRMWARE_DIR'))
    .addOption(
      day1Option('--reboot-command <cmd>', 'run (split on spaces, no shell) after storing a new image (default "systemctl reboot")', 'KMM_DAY1_REBOOT_COMMAND'),
    )
    .option('--insecure', 'allow plain HTTP and unverified TLS')
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/day1.js');
        return m.day1Pull(ctx, flags as Day1PullFlags);
      }),
    );
  day1
    .command('load')
    .description('load the module from the local store only; never touches the network')
    .addOption(day1Option('--image <repo>', 'image repository (the tag is the running kernel release)', 'KMM_DAY1_IMAGE').makeOptionMandatory())
    .addOption(day1Option('--module <name>', 'module name', 'KMM_DAY1_MODULE').makeOptionMandatory())
    .addOption(day1Option('--in-tree-modules <a,b>', 'in-tree modules to remove first', 'KMM_DAY1_IN_TREE_MODULES').argParser(list))
    .addOption(day1Option('--dir-name <dir>', 'the directory holding lib/modules in the image (default /opt)', 'KMM_DAY1_DIR_NAME'))
    .addOption(day1Option('--firmware-dir <path>', 'the firmware directory inside the image', 'KMM_DAY1_FIRMWARE_DIR'))
    .addOption(day1Option('--firmware-path <dir>', 'host firmware directory (default /var/lib/firmware)', 'KMM_DAY1_HOST_FIRMWARE_PATH'))
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/day1.js');
        return m.day1Load(ctx, flags as Day1LoadFlags);
      }),
    );
  day1
    .command('machineconfig')
    .description('print a MachineConfig that installs the Day-1 units on RHCOS nodes')
    .requiredOption('--name <name>', 'MachineConfig name')
    .requiredOption('--pool <pool>', 'machine config pool (role label)')
    .requiredOption('--image <repo>', 'kmod image repository')
    .requiredOption('--module <name>', 'module name')
    .option('--in-tree-modules <a,b>', 'in-tree modules to remove first', list)
    .option('--firmware-dir <path>', 'the firmware directory inside the image')
    .option('--worker-image <ref>', 'the kmm-worker container image run by podman')
    .action(
      act(async (ctx, _args, flags) => {
        const m = await import('./commands/day1.js');
        return m.day1MachineConfig(ctx, flags as unknown as Day1MachineConfigFlags);
      }),
    );

  program
    .command('completion <shell>')
    .description('print a bash or zsh completion script')
    .addHelpText('after', '\nExamples:\n  $ kmm-worker completion bash > /etc/bash_completion.d/kmm-worker\n  $ source <(kmm-worker completion zsh)\n')
    .action(
      act(async (ctx, [shell]) => {
        if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`completion: shell must be bash or zsh, got '${shell}'`);
        const { completionScript } = await import('./completion.js');
        ctx.stdout.write(completionScript(program, shell));
      }),
    );

  addExamples(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not failures; every other parse error is a command-line error (exit 2)
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`kmm-worker: ${oneLine(err)}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`kmm-worker: ${oneLine(err)}\n`);
    process.exitCode = exitCodeOf(err);
  }
}
