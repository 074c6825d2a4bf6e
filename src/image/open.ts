/**
 * The entry point every image consumer uses: a reference (registry or `oci:` layout) → a ResolvedImage for the
 * wanted platform, and `resolveDigest` for the cache's `Always` policy.
 *
 *   const img = await openImage('quay.io/org/kmod:6.1.0', { authFile, pullSecretsDir, hostRoot, log });
 *   for (const layer of img.layers) (await img.openBlob(layer)).pipe(...)
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { loadCredentials } from './credentials.js';
import { openLayoutImage, resolveLayoutDigest } from './layout-source.js';
import { hostPlatform, parsePlatform } from './platform.js';
import { parseReference, type RegistryReference } from './reference.js';
import { netLimitsFromEnv, type NetLimits } from './net-limits.js';
import { RegistryClient, type RetryPolicy } from './registry-client.js';
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

async function clientFor(ref: RegistryReference, opts: OpenImageOptions, log: Logger): Promise<RegistryClient> {
  const store = await loadCredentials({ pullSecretsDir: opts.pullSecretsDir, authFile: opts.authFile, log });
  const credential = store.lookup(ref.registry, ref.repository);
  const tls = await registryTls(opts.hostRoot ?? '/', ref.endpoint, log);
  if (credential) log.debug({ registry: ref.registry, from: credential.source, key: credential.key }, 'using credentials');
  const credHash = credential
    ? createHash('sha256').update(JSON.stringify([credential.username, credential.password, credential.identityToken,
      credential.registryToken])).digest('hex')
    : '-';
  const limits = opts.limits ?? netLimitsFromEnv();
  const key = JSON.stringify([ref.endpoint, ref.registry, Boolean(opts.insecure), credHash, tls.extraCAs,
    tls.clientCert?.cert ?? '', opts.retry ?? null, limits]);
  let client = clients.get(key);
  if (!client) {
    const hint = [opts.pullSecretsDir && `pull secrets ${opts.pullSecretsDir}`, opts.authFile && `auth file ${opts.authFile}`]
      .filter(Boolean).join(', ');
    client = new RegistryClient({
      registry: ref.registry, endpoint: ref.endpoint, insecure: opts.insecure, credential, tls, log,
      credentialHint: hint || undefined, retry: opts.retry, limits,
    });
    clients.set(key, client);
  }
  return client;
}

function wantedPlatform(opts: OpenImageOptions): Platform {
  return opts.platform ? parsePlatform(opts.platform) : hostPlatform();
}

/** Opens an image for reading: manifest (platform selected), config descriptor, layers, verified blobs. */
export async function openImage(ref: string, opts: OpenImageOptions = {}): Promise<ResolvedImage> {
  const log = opts.log ?? silentLogger();
  const parsed = parseReference(ref);
  const want = wantedPlatform(opts);
  if (parsed.kind === 'oci') return openLayoutImage(parsed, want, log);
  const client = await clientFor(parsed, opts, log);
  return openRegistryImage(client, parsed, want, log, opts.signal);
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
  const client = await clientFor(parsed, opts, log);
  return resolveRegistryDigest(client, parsed, opts.signal);
}

/** Closes the cached registry connections (a long-running process that is done with registries). */
export async function closeRegistryClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((c) => c.close()));
}
