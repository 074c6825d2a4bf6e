/**
 * The preflight story (docs/preflight.md): find the kernel and the Modules, validate every Module concurrently
 * (bounded, each with its own time limit), print the report, optionally write it into a
 * PreflightValidation's or PreflightValidationOCP's status. Exit 0 only when every Module succeeded.
 */
import { checkKernelPlatform } from './kernel-arch.js';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { parsePlatform } from '../image/platform.js';
import type { ImageSourceOptions } from '../image/types.js';
import type { KubeClients } from '../report/kube.js';
import { checkKernelArgument } from './kernel.js';
import { day1ModuleResource } from './day1-module.js';
import { isRecord, readModuleFiles, readPreflightKernel, type ModuleResource } from './module-cr.js';
import { runBounded, TaskTimeoutError } from './pool.js';
import { renderJson, renderTable } from './output.js';
import { byNamespaceAndName, moduleStatus, type ModuleStatus, type PreflightReport } from './status.js';
import { readKmodCheckInputs } from './kmod-checks.js';
import { timeoutReason, validateModule, type CredentialSource, type OpenImage } from './validate-module.js';

export interface PreflightOptions {
  kernel?: string;
  /** a PreflightValidationOCP file whose spec.kernelVersion is the kernel */
  preflightFile?: string;
  moduleFiles?: string[];
  fromCluster?: boolean;
  parallel: number;
  timeoutSeconds: number;
  insecure?: boolean;
  platform?: string;
  json?: boolean;
  writeStatus?: string;
  /** --trusted-keys DIR: certificates the module's signature must verify against */
  trustedKeys?: string | undefined;
  /** --symvers FILE: the upcoming kernel's Module.symvers */
  symvers?: string | undefined;
  /** --day1-image REPO with --day1-module NAME (and --day1-dir-name): the Day-1 image REPO:<kernel> */
  day1?: { repo?: string | undefined; moduleName?: string | undefined; dirName?: string | undefined };
}

export interface PreflightDeps {
  openImage: OpenImage;
  /** the Kubernetes clients; undefined when there are no credentials */
  kube: () => Promise<KubeClients | undefined>;
  now?: () => Date;
}

export async function runPreflight(ctx: Context, opts: PreflightOptions, deps: PreflightDeps): Promise<number> {
  const files = opts.moduleFiles ?? [];
  if (files.length > 0 && opts.fromCluster) throw new UsageError('--module and --from-cluster are exclusive: give one');
  const day1 = day1Entry(opts.day1);
  if (files.length === 0 && !opts.fromCluster && !day1) {
    throw new UsageError('give the Modules to validate: --module FILE... or --from-cluster (or a Day-1 image: --day1-image REPO --day1-module NAME)');
  }

  if (opts.platform) parsePlatform(opts.platform); // a wrong --platform is the command line's fault, not each Module's
  const given = await givenKernels(opts); // checked before the (slow to load) Kubernetes client is needed
  const kmodChecks = await readKmodCheckInputs(opts);

  let kube: KubeClients | undefined;
  if (opts.fromCluster || opts.writeStatus) {
    kube = await deps.kube();
    const why = opts.fromCluster ? '--from-cluster' : '--write-status';
    if (!kube) throw new UsageError(`${why} needs Kubernetes credentials: set KUBECONFIG or run in a pod with a service account`);
  }

  const cluster = kube ? await import('./cluster.js') : undefined;
  // PreflightValidation (upstream KMM) or PreflightValidationOCP (OpenShift): whichever the cluster serves
  const kind = opts.writeStatus ? await cluster!.findPreflightKind(kube!, opts.writeStatus, ctx.signal) : undefined;
  const target = opts.writeStatus ? await cluster!.readPreflightValidation(kube!, opts.writeStatus, ctx.signal, kind) : undefined;
  const kernelVersion = chooseKernel(given, kind && `${kind.kind} ${opts.writeStatus}`, target?.kernelVersion);
  checkKernelPlatform(kernelVersion, opts.platform);
  const log = ctx.log.child({ kernel: kernelVersion });

  const all = files.length > 0 ? await readModuleFiles(files) : opts.fromCluster ? await cluster!.listClusterModules(kube!, ctx.signal) : [];
  if (files.length > 0 && all.length === 0) throw new UsageError(`no kmm.sigs.x-k8s.io/v1beta1 Module in ${files.map((f) => (f === '-' ? 'stdin' : f)).join(', ')}`);
  const modules = [...all.filter((m) => keep(m, log)).sort(byNamespaceAndName), ...(day1 ? [day1] : [])];
  log.info({ modules: modules.length, parallel: opts.parallel, timeoutSeconds: opts.timeoutSeconds }, 'validating Modules');

  const now = deps.now ?? (() => new Date());
  const credentials: CredentialSource | undefined = opts.fromCluster ? cluster!.clusterCredentials(kube!) : undefined;
  const imageOptions: ImageSourceOptions = {
    insecure: Boolean(opts.insecure),
    platform: opts.platform,
    authFile: ctx.opts.authFile,
    pullSecretsDir: ctx.opts.pullSecretsDir,
    hostRoot: ctx.opts.hostRoot,
  };
  const logged = (s: ModuleStatus): ModuleStatus => {
    const line = { module: `${s.namespace}/${s.name}`, status: s.verificationStatus, reason: s.statusReason };
    if (s.verificationStatus === 'Success') log.info(line, 'module verified');
    else log.warn(line, 'module not verified');
    return s;
  };
  const validateDeps = { openImage: deps.openImage, imageOptions, credentials, secretsReadable: Boolean(opts.fromCluster), log, now, kmodChecks };
  const statuses = await runBounded(
    modules,
    { limit: opts.parallel, timeoutSeconds: opts.timeoutSeconds, signal: ctx.signal },
    async (mod, signal) => logged(await validateModule(mod, kernelVersion, validateDeps, signal)),
    // validateModule reports its own failures: only a check abandoned at its time limit, or interrupted, lands here
    (mod, err) =>
      logged(
        err instanceof TaskTimeoutError
          ? moduleStatus(mod, 'Failure', timeoutReason(mod, kernelVersion, err), now())
          : moduleStatus(mod, 'InProgress', 'verification was interrupted before it finished', now()),
      ),
  );

  const report: PreflightReport = { kernelVersion, modules: statuses };
  ctx.stdout.write(opts.json ? renderJson(report) : renderTable(report));

  if (opts.writeStatus) {
    const dryRun = ctx.opts.dryRun;
    // the Day-1 image is not a Module of the cluster: the status lists the Modules only (statuses keep the
    // order of `modules`, where the Day-1 entry is last; a real Module may well live in a namespace "day1")
    const moduleStatuses = day1 ? statuses.slice(0, -1) : statuses;
    const patch = await cluster!.writePreflightStatus(kube!, opts.writeStatus, moduleStatuses, { signal: ctx.signal, dryRun, ...(kind ? { kind } : {}) });
    const what = { kind: kind?.kind, name: opts.writeStatus };
    if (dryRun) log.info({ ...what, patch }, `dry run: the status patch that would be written to ${kind?.kind} ${opts.writeStatus}`);
    else log.info(what, `status written to ${kind?.kind} ${opts.writeStatus}`);
  }
  ctx.signal.throwIfAborted();
  const failed = statuses.filter((s) => s.verificationStatus !== 'Success').length;
  if (failed > 0) log.error({ failed, total: statuses.length }, `${failed} of ${statuses.length} Modules failed preflight for kernel ${kernelVersion}`);
  return failed === 0 ? 0 : 1;
}

type KernelSource = { value: string; source: string };

/** The kernels the command line names: --kernel and --preflight FILE. */
async function givenKernels(opts: PreflightOptions): Promise<KernelSource[]> {
  const given: KernelSource[] = [];
  if (opts.kernel !== undefined) given.push({ value: checkKernelArgument(opts.kernel, '--kernel'), source: '--kernel' });
  if (opts.preflightFile) {
    const { kernel } = await readPreflightKernel(opts.preflightFile);
    const source = `--preflight ${opts.preflightFile}`;
    given.push({ value: checkKernelArgument(kernel, source), source });
  }
  return given;
}

/** --kernel, --preflight FILE, or the PreflightValidation(OCP) named by --write-status; they must agree. */
function chooseKernel(given: KernelSource[], target: string | undefined, fromTarget: string | undefined): string {
  const candidates = [...given];
  if (target !== undefined && fromTarget !== undefined && fromTarget.trim() !== '') {
    const source = target;
    candidates.push({ value: checkKernelArgument(fromTarget, source), source });
  }
  const first = candidates[0];
  if (!first) throw new UsageError('give the kernel to validate for: --kernel KVER or --preflight FILE');
  const other = candidates.find((c) => c.value !== first.value);
  if (other) throw new UsageError(`${first.source} says kernel ${first.value} but ${other.source} says ${other.value}`);
  return first.value;
}

function day1Entry(d: PreflightOptions['day1']): ModuleResource | undefined {
  if (!d?.repo && !d?.moduleName) {
    if (d?.dirName) throw new UsageError('--day1-dir-name needs --day1-image and --day1-module');
    return undefined;
  }
  if (!d.repo) throw new UsageError('--day1-module needs --day1-image REPO (the Day-1 image repository)');
  if (!d.moduleName) throw new UsageError('--day1-image needs --day1-module NAME (the module the Day-1 units load)');
  return day1ModuleResource({ repo: d.repo, moduleName: d.moduleName, dirName: d.dirName });
}

/** Modules being deleted, or without a moduleLoader (device plugin only), have nothing to validate. */
function keep(m: ModuleResource, log: Context['log']): boolean {
  if (m.deleting) {
    log.info({ module: `${m.namespace}/${m.name}` }, 'Module is being deleted: skipped');
    return false;
  }
  if (isRecord(m.spec) && (m.spec.moduleLoader === undefined || m.spec.moduleLoader === null)) {
    log.info({ module: `${m.namespace}/${m.name}` }, 'Module has no moduleLoader: nothing to load, skipped');
    return false;
  }
  return true;
}
