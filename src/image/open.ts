/**
 * The entry point every image consumer uses: a reference (registry or `oci:` layout) → a ResolvedImage for the
 * wanted platform, and `resolveDigest` for the cache's `Always` policy. Every command that pulls or inspects
 * (kmod, run, image, preflight, day1) comes through here, so this is where the node's registries.conf applies:
 * mirrors are tried in order, then the primary location; the image keeps its original reference, so the cache
 * files it under the name the user gave.
 *
 *   const img = await openImage('quay.io/org/kmod:6.1.0', { authFile, pullSecretsDir, hostRoot, log });
 *   for (const layer of img.layers) (await img.openBlob(layer)).pipe(...)
 */
import { createHash } from 'node:crypto';
import { OperationError, UsageError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { credentialPlaces, loadCredentials } from './credentials.js';
import { netLimitsFromEnv, type NetLimits } from './net-limits.js';
import { openLayoutImage, resolveLayoutDigest } from './layout-source.js';
import { hostPlatform, parsePlatform } from './platform.js';
import { bypassesProxy, proxyDispatcher, proxyFailure, proxySettings, redactProxy, type ProxySettings } from './proxy.js';
import { pullLocations, type PullLocation } from './pull-locations.js';
import { parseReference, type RegistryReference } from './reference.js';
import { loadRegistriesConf } from './registries-conf.js';
import { RegistryClient } from './registry-client.js';
import type { RetryPolicy } from './transport/retry.js';
import { openRegistryImage, resolveRegistryDigest } from './registry-source.js';
import { registryTls } from './trust.js';
import type { ImageSourceOptions, Platform, ResolvedImage } from './types.js';

export type OpenImageOptions = ImageSourceOptions & {
  log?: Logger;
  /** tests: faster retries */
  retry?: RetryPolicy;
  /** per-attempt time bounds; from KMM_NET_LIMITS or the defaults when absent */
  limits?: NetLimits;
};

/**
 * Clients are kept per registry, trust settings and credential, so a daemon re-using a registry re-uses its
 * connections and tokens. The key holds a hash of the credential, never the credential.
 */
const clients = new Map<string, RegistryClient>();

/** The proxy settings a registry endpoint is reached with (none for loopback and NO_PROXY's CIDRs). */
function proxyFor(endpoint: string): ProxySettings | undefined {
  const s = proxySettings();
  return s && !bypassesProxy(endpoint, s) ? s : undefined;
}

async function clientFor(ref: RegistryReference, insecure: boolean, opts: OpenImageOptions, log: Logger)
  : Promise<RegistryClient> {
  const proxy = proxyFor(ref.endpoint);
  const hostRoot = opts.hostRoot ?? '/';
  const sources = { pullSecretsDir: opts.pullSecretsDir, authFile: opts.authFile, hostRoot, log };
  const store = await loadCredentials(sources);
  const credential = await store.resolve(ref.registry, ref.repository, log);
  const tls = await registryTls(hostRoot, ref.endpoint, log);
  if (credential) log.debug({ registry: ref.registry, from: credential.source, key: credential.key }, 'using credentials');
  const credHash = credential
    ? createHash('sha256').update(JSON.stringify([credential.username, credential.password, credential.identityToken,
      credential.registryToken])).digest('hex')
    : '-';
  const proxyHash = proxy ? createHash('sha256').update(JSON.stringify(proxy)).digest('hex') : '-';
  const limits = opts.limits ?? netLimitsFromEnv();
  const key = JSON.stringify([ref.endpoint, ref.registry, insecure, credHash, tls.extraCAs,
    tls.clientCert?.cert ?? '', opts.retry ?? null, proxyHash, limits]);
  let client = clients.get(key);
  if (!client) {
    client = new RegistryClient({
      registry: ref.registry, endpoint: ref.endpoint, insecure, credential, tls, log,
      credentialHint: `${credentialPlaces(sources).join(', ')}${opts.authFile ? '' : '; give --auth-file'}`, retry: opts.retry,
      limits,
      ...(proxy ? { makeDispatcher: (o) => proxyDispatcher(o, proxy) } : {}),
    });
    if (proxy) {
      log.debug({ registry: ref.registry, httpsProxy: proxy.httpsProxy && redactProxy(proxy.httpsProxy),
        httpProxy: proxy.httpProxy && redactProxy(proxy.httpProxy) }, 'registry traffic goes through a proxy');
    }
    clients.set(key, client);
  }
  return client;
}

function wantedPlatform(opts: OpenImageOptions): Platform {
  return opts.platform ? parsePlatform(opts.platform) : hostPlatform();
}

/** The locations to try for a registry reference, by the host's registries.conf. */
async function locationsOf(ref: RegistryReference, opts: OpenImageOptions, log: Logger): Promise<PullLocation[]> {
  const conf = await loadRegistriesConf(opts.hostRoot ?? '/', log);
  return pullLocations(ref, conf);
}

/**
 * Runs `fn` against each location in turn until one succeeds. A mirror that fails (unreachable, missing the
 * image, serving other bytes for a digest) is skipped with a warning; the primary's failure is the answer.
 */
async function firstServing<T>(ref: RegistryReference, opts: OpenImageOptions, log: Logger,
  fn: (client: RegistryClient, at: RegistryReference) => Promise<T>): Promise<T> {
  const locations = await locationsOf(ref, opts, log);
  let failedMirrors = 0;
  let lastError: unknown;
  for (const loc of locations) {
    try {
      const client = await clientFor(loc.ref, Boolean(opts.insecure) || loc.insecure, opts, log);
      const out = await fn(client, loc.ref);
      if (locations.length > 1 || loc.ref.name !== ref.name) {
        log.info({ image: ref.name, location: loc.ref.name },
          loc.mirror ? 'image served by a mirror' : 'image served by its primary location');
      }
      return out;
    } catch (e) {
      opts.signal?.throwIfAborted();
      const proxy = proxyFor(loc.ref.endpoint);
      const err = (proxy && proxyFailure(e, proxy, loc.ref.registry, loc.ref.endpoint)) || e;
      if (err instanceof UsageError) throw err;
      if (!loc.mirror) {
        if (failedMirrors === 0 || !(err instanceof OperationError)) throw err;
        // the primary's failure is the answer, but a disconnected node's admin must learn the mirrors failed too
        const s = failedMirrors === 1 ? '' : 's';
        throw new OperationError(`${err.message} (after ${failedMirrors} mirror${s} failed; see the warnings)`,
          { cause: err, detail: err.detail, located: err.located });
      }
      failedMirrors++;
      lastError = err;
      log.warn({ image: ref.name, location: loc.ref.name, reason: errorMessage(err) },
        'mirror failed; trying the next location');
    }
  }
  // not reached: the primary is always the last location
  throw lastError instanceof Error ? lastError : new OperationError(`image ${ref.name}: no location served it`, { located: true });
}

/** Opens an image for reading: manifest (platform selected), config descriptor, layers, verified blobs. */
export async function openImage(ref: string, opts: OpenImageOptions = {}): Promise<ResolvedImage> {
  const log = opts.log ?? silentLogger();
  const parsed = parseReference(ref);
  const want = wantedPlatform(opts);
  if (parsed.kind === 'oci') return openLayoutImage(parsed, want, log);
  const img = await firstServing(parsed, opts, log, (client, at) => openRegistryImage(client, at, want, log, opts.signal));
  // reached through a mirror or a rewrite, it is still the image the user named
  return { ...img, reference: parsed.name };
}

/**
 * The digest the reference points at (an index digest for a multi-arch tag), the same as `openImage(...).digest`:
 * exactly one manifest request to a registry (none for a digest reference or an `oci:` layout).
 */
export async function resolveDigest(ref: string, opts: OpenImageOptions = {}): Promise<string> {
  const log = opts.log ?? silentLogger();
  const parsed = parseReference(ref);
  if (opts.platform) parsePlatform(opts.platform);
  if (parsed.kind === 'oci') return resolveLayoutDigest(parsed);
  if (parsed.digest) {
    // no request, but a blocked registry or a broken registries.conf is still refused
    await locationsOf(parsed, opts, log);
    return parsed.digest;
  }
  return firstServing(parsed, opts, log, (client, at) => resolveRegistryDigest(client, at, opts.signal));
}

/** Closes the cached registry connections (a long-running process that is done with registries). */
export async function closeRegistryClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((c) => c.close()));
}
