/**
 * Image references as users write them (docs/images.md):
 *   registry:  [host[:port]/]repo[:tag][@sha256:<hex>]   — Docker Hub short names normalised as docker does
 *   layout:    oci:PATH[:tag] | oci:PATH@sha256:<hex>      — a local OCI image layout
 * The grammar follows distribution/reference, so a name docker accepts is accepted here and vice versa.
 */
import path from 'node:path';
import { UsageError } from '../errors.js';

export const DOCKER_HUB = 'docker.io';
/** where docker.io's API actually lives */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

export interface RegistryReference {
  kind: 'registry';
  /** normalised registry name as it appears in references and auth files: docker.io, 127.0.0.1:5000 */
  registry: string;
  /** host[:port] to connect to (registry-1.docker.io for docker.io) */
  endpoint: string;
  /** library/busybox, org/kmod */
  repository: string;
  tag?: string;
  digest?: string;
  /** normalised form: docker.io/library/busybox:latest, host/repo@sha256:... */
  name: string;
}

export interface LayoutReference {
  kind: 'oci';
  /** absolute path of the layout directory */
  path: string;
  tag?: string;
  digest?: string;
  /** normalised form: oci:/abs/path[:tag][@digest] */
  name: string;
}

export type ImageReference = RegistryReference | LayoutReference;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
// host: DNS labels (or an IPv4 address), optional port; or a bracketed IPv6 address
const HOST = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?$/;

/** The digest (the part after '@'), checked: only sha256 is supported, as by the registries KMM talks to. */
function parseDigest(ref: string, d: string): string {
  if (DIGEST.test(d)) return d;
  if (ANY_DIGEST.test(d)) {
    throw new UsageError(`image reference '${ref}': unsupported digest '${d}' (only sha256:<64 hex> is supported)`);
  }
  throw new UsageError(`image reference '${ref}': malformed digest '${d}' (expected sha256:<64 lowercase hex>)`);
}

/**
 * A host the grammar accepts can still name nothing a socket can reach: a port above 65535, or a dotted-number
 * host that is no IPv4 address (999.999.999.999). Those are usage errors here, not a failed request later.
 */
function checkHostAddress(ref: string, hostPort: string): void {
  const m = /^(.*?)(?::([0-9]+))?$/.exec(hostPort)!;
  const port = m[2];
  if (port !== undefined && (port.length > 5 || Number(port) < 1 || Number(port) > 65535)) {
    throw new UsageError(`image reference '${ref}': registry port ${port} is out of range (1-65535)`);
  }
  try {
    // the WHATWG URL parser is what the HTTP client will use: a host it refuses cannot be connected to
    new URL(`https://${hostPort}/`);
  } catch {
    const numeric = /^[0-9.]+$/.test(m[1]!);
    throw new UsageError(`image reference '${ref}': registry host '${m[1]}' is ${numeric ? 'not a valid IPv4 address' : 'not a valid host name'}`);
  }
}

/** Parses and normalises a reference; a malformed one is a UsageError naming what is wrong. */
export function parseReference(ref: string): ImageReference {
  if (typeof ref !== 'string' || ref.trim() === '') throw new UsageError('image reference is empty');
  if (ref !== ref.trim() || /\s/.test(ref)) throw new UsageError(`image reference '${ref}' contains whitespace`);
  if (ref.startsWith('oci:')) return parseLayoutReference(ref);
  // skopeo's transport prefix names the same thing as a bare reference
  if (ref.startsWith('docker://')) return parseReference(ref.slice('docker://'.length));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) {
    throw new UsageError(`image reference '${ref}' must not have a URL scheme (write host/repo:tag)`);
  }

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseDigest(ref, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) {
      throw new UsageError(`image reference '${ref}': malformed tag '${tag}' (letters, digits, '_', '.', '-'; at most 128)`);
    }
  }

  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // docker's rule: the first component is a host when it has a '.' or ':' or is localhost (or uppercase)
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      if (!HOST.test(first)) throw new UsageError(`image reference '${ref}': malformed registry host '${first}'`);
      checkHostAddress(ref, first);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_ENDPOINT) registry = DOCKER_HUB;
  if (repository === '') throw new UsageError(`image reference '${ref}' has no repository`);
  for (const c of repository.split('/')) {
    if (!COMPONENT.test(c)) {
      throw new UsageError(
        `image reference '${ref}': invalid repository name '${repository}' (lowercase letters, digits and separators)`,
      );
    }
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (`${registry}/${repository}`.length > 255) {
    throw new UsageError(`image reference '${ref}': repository name longer than 255 characters`);
  }
  if (!tag && !digest) tag = 'latest';
  const name = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return {
    kind: 'registry',
    registry,
    endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry,
    repository,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    name,
  };
}

function parseLayoutReference(ref: string): LayoutReference {
  let rest = ref.slice('oci:'.length);
  let digest: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && rest.slice(at + 1).includes(':')) {
    digest = parseDigest(ref, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  // the tag is what follows the last ':' unless that part looks like a path
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.slice(colon + 1).includes('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === '') tag = undefined;
    else if (!/^[\w][\w.:/+@-]*$/.test(tag)) throw new UsageError(`image reference '${ref}': malformed tag '${tag}'`);
  }
  if (rest === '') throw new UsageError(`image reference '${ref}' has no layout path (write oci:PATH[:tag])`);
  if (tag && digest) throw new UsageError(`image reference '${ref}': give a tag or a digest for a layout, not both`);
  const abs = path.resolve(rest);
  return {
    kind: 'oci',
    path: abs,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    name: `oci:${abs}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`,
  };
}

/** The tag or digest to ask the registry for: the digest when both are given (it is what is pinned). */
export function manifestRef(r: RegistryReference): string {
  return r.digest ?? r.tag ?? 'latest';
}

/** Loopback hosts, which may be reached over plain HTTP when HTTPS fails (docs/images.md), as docker allows. */
export function isLoopbackHost(hostPort: string): boolean {
  let host = hostPort;
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else host = host.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
