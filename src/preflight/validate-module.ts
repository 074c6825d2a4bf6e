/**
 * The preflight of one Module for one kernel: resolve its kernel mapping, then the image stage — the image's
 * manifest is reachable with the Module's credentials, and the `.ko` of moduleName is in its merged layers
 * under `<dirName>/lib/modules/<kernel>/`. Always returns a status; never throws for the module's own failures.
 */
import type { Logger } from '../log.js';
import type { ImageSourceOptions, ResolvedImage } from '../image/types.js';
import { oneLine, errorMessage } from '../errors.js';
import { findKmodInImage } from './find-kmod.js';
import { checkKmodForKernel, kosToRead, type KmodCheckInputs } from './kmod-checks.js';
import { resolveModuleForKernel, type ResolvedModule } from './kernel-mapping.js';
import type { ModuleResource } from './module-cr.js';
import { moduleStatus, type ModuleStatus } from './status.js';
import { TaskTimeoutError } from './pool.js';

export type OpenImage = (ref: string, opts: ImageSourceOptions & { log?: Logger }) => Promise<ResolvedImage>;

/** Credentials for one Module's image; `release` removes anything written for them. */
export interface ModuleCredentials {
  /** a directory holding `.dockerconfigjson` / `.dockercfg` files for this Module only */
  pullSecretsDir?: string;
  /** how to name them in messages, e.g. `imageRepoSecret ns/name` */
  description: string;
  release(): Promise<void>;
}

/** Where each Module's registry credentials come from (the cluster's imageRepoSecret, or the global options). */
export interface CredentialSource {
  forModule(mod: ResolvedModule, signal: AbortSignal): Promise<ModuleCredentials | undefined>;
}

/** A failure the check reports as a status reason (not a crash of preflight). */
export class ModuleCheckFailure extends Error {
  override name = 'ModuleCheckFailure';
}

export interface ValidateDeps {
  openImage: OpenImage;
  /** options every image gets: platform, --insecure, --auth-file, --pull-secrets-dir, --host-root */
  imageOptions: ImageSourceOptions;
  credentials?: CredentialSource;
  /** false when Modules come from files: their imageRepoSecret cannot be read */
  secretsReadable: boolean;
  log: Logger;
  now: () => Date;
  /** --trusted-keys / --symvers, read once for the run */
  kmodChecks?: KmodCheckInputs;
}

export async function validateModule(
  mod: ModuleResource,
  kernelVersion: string,
  deps: ValidateDeps,
  signal: AbortSignal,
): Promise<ModuleStatus> {
  const status = (s: 'Success' | 'Failure', reason: string) => moduleStatus(mod, s, reason, deps.now());
  const resolution = resolveModuleForKernel(mod, kernelVersion);
  if (resolution.kind !== 'resolved') return status('Failure', resolution.message);
  const m = resolution.module;
  const log = deps.log.child({ module: `${m.namespace}/${m.name}`, image: m.containerImage });
  log.debug({ mapping: m.mapping }, 'kernel mapping resolved');

  let creds: ModuleCredentials | undefined;
  try {
    creds = await deps.credentials?.forModule(m, signal);
    return status('Success', await imageStage(m, creds, deps, log, signal));
  } catch (err) {
    if (err instanceof ModuleCheckFailure) return status('Failure', err.message);
    const reason = signal.aborted && signal.reason instanceof TaskTimeoutError ? signal.reason : err;
    return status('Failure', failureReason(m, reason, creds, deps.secretsReadable, mod.imageMissingAdvice));
  } finally {
    await creds?.release().catch((err: unknown) => log.warn({ err: oneLine(err) }, 'could not remove temporary credentials'));
  }
}

async function imageStage(
  m: ResolvedModule,
  creds: ModuleCredentials | undefined,
  deps: ValidateDeps,
  log: Logger,
  signal: AbortSignal,
): Promise<string> {
  const image = await deps.openImage(m.containerImage, {
    ...deps.imageOptions,
    insecure: deps.imageOptions.insecure || m.insecure,
    ...(creds?.pullSecretsDir ? { pullSecretsDir: creds.pullSecretsDir } : {}),
    signal,
    log,
  });
  log.debug({ digest: image.manifestDigest, layers: image.layers.length }, 'image found');
  const checks = deps.kmodChecks ?? {};
  const kernelDir = `${m.dirName}/lib/modules/${m.kernelVersion}`;
  const result = await findKmodInImage(image, m, { signal, collect: kosToRead(kernelDir, m.moduleName, checks) });
  const wanted = m.moduleName ? `${m.moduleName}.ko` : 'a .ko file (modprobe.rawArgs)';
  if (!result.found) {
    let present: string;
    if (result.modulesForKernel.length > 0) {
      present = `for this kernel it has ${result.modulesForKernel.map((n) => `${n}.ko`).join(', ')}`;
    } else if (result.kernels.length > 0) {
      present = `the image carries modules for kernel${result.kernels.length > 1 ? 's' : ''} ${result.kernels.join(', ')}`;
    } else {
      present = `the image carries no .ko under ${result.modulesRoot}`;
    }
    throw new ModuleCheckFailure(`${wanted} not found under ${result.lookedIn} in image ${m.containerImage}; ${present}`);
  }
  const found = `image ${m.containerImage} has ${result.path}`;
  const kmod = await checkKmodForKernel(result.path, result.collected ?? new Map(), m.kernelVersion, m.containerImage, checks);
  if (!kmod.ok) throw new ModuleCheckFailure(`${found}, but ${kmod.parts.join('; ')}`);
  return [found, ...kmod.parts].join('; ');
}

/** The reason of a check abandoned at its time limit, naming the image it was waiting for. */
export function timeoutReason(mod: ModuleResource, kernelVersion: string, err: TaskTimeoutError): string {
  const r = resolveModuleForKernel(mod, kernelVersion);
  return r.kind === 'resolved' ? `timed out after ${err.seconds}s checking image ${r.module.containerImage}` : err.message;
}

/** How an image error reads in the status: not found, access denied, timed out, or the error's own line. */
export function failureReason(
  m: ResolvedModule,
  err: unknown,
  creds: ModuleCredentials | undefined,
  secretsReadable: boolean,
  imageMissingAdvice?: ModuleResource['imageMissingAdvice'],
): string {
  const image = m.containerImage;
  if (err instanceof TaskTimeoutError) return `timed out after ${err.seconds}s checking image ${image}`;
  if (err instanceof ModuleCheckFailure) return err.message;
  const kind = classifyImageError(err);
  // the registry client's messages start with "image <ref>: "; the status names the image once
  const detail = oneLine(err).replace(/^image \S+: /, '');
  if (kind === 'not-found') {
    if (m.build || m.sign) {
      const what = m.build && m.sign ? 'build and sign' : m.build ? 'build' : 'sign';
      return `image ${image} does not exist and ${m.mapping} of the Module has ${what}: an in-cluster ${what} is required (KMM's own preflight can run it)`;
    }
    const advice = imageMissingAdvice ? `; ${imageMissingAdvice(image, m.kernelVersion)}` : '';
    return `image ${image} not found: ${detail}${advice}`;
  }
  if (kind === 'denied') {
    let hint = '';
    if (creds) hint = ` (used ${creds.description})`;
    else if (m.imageRepoSecret && !secretsReadable) {
      hint = `; imageRepoSecret ${m.imageRepoSecret} is only read with --from-cluster (use --auth-file or --pull-secrets-dir)`;
    } else if (!m.imageRepoSecret) hint = '; the Module has no imageRepoSecret';
    return `access to image ${image} denied: ${detail}${hint}`;
  }
  return `image ${image}: ${detail}`;
}

/**
 * Classifies a registry error by what it carries: the registry client's stable codes (KMM_IMAGE_NOT_FOUND,
 * KMM_REGISTRY_DENIED), an HTTP status or a distribution error code. Only an error of another library, which
 * carries none of these, is classified by its message.
 */
export function classifyImageError(err: unknown): 'not-found' | 'denied' | 'other' {
  const e = err as { status?: unknown; statusCode?: unknown; code?: unknown; kind?: unknown } | undefined;
  const status = typeof e?.status === 'number' ? e.status : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e?.code === 'string' ? e.code.toUpperCase() : typeof e?.kind === 'string' ? e.kind.toUpperCase() : '';
  if (status === 404 || /MANIFEST_UNKNOWN|NAME_UNKNOWN|NOT[_-]?FOUND/.test(code)) return 'not-found';
  if (status === 401 || status === 403 || /UNAUTHORIZED|DENIED|FORBIDDEN/.test(code)) return 'denied';
  const msg = errorMessage(err);
  if (/\b404\b|not found|manifest unknown|name unknown|no such (image|tag|manifest)/i.test(msg)) return 'not-found';
  if (/\b40[13]\b|unauthori[sz]ed|denied|forbidden|requires authentication|authentication (?:required|failed)/i.test(msg)) return 'denied';
  return 'other';
}
