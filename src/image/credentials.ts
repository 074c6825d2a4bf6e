/**
 * Registry credentials from the places a KMM node has them (README.md "Global options", docs/images.md):
 *  - the pull-secrets dir: Kubernetes image pull secrets mounted as files named exactly `.dockerconfigjson`
 *    (`{"auths": {...}}`) or `.dockercfg` (the legacy `{host: {...}}` map), at any depth;
 *  - `--auth-file`: containers-auth.json or a docker config.json; without it, the places podman, skopeo and the
 *    kubelet read (containers-auth.json(5)): ${XDG_RUNTIME_DIR}/containers/auth.json,
 *    $HOME/.config/containers/auth.json, $HOME/.docker/config.json (or $DOCKER_CONFIG/config.json), and the
 *    kubelet's <host-root>/var/lib/kubelet/config.json.
 * A docker config's `credHelpers` (per registry) and `credsStore` (default) name `docker-credential-<name>`
 * programs (./cred-helper.ts): credHelpers first, then the files' entries, then credsStore.
 * Entries carry `auth` (base64 user:password), or `username`/`password`, or `identitytoken` (an OAuth2 refresh
 * token) or `registrytoken` (a ready bearer token). Keys are matched like podman does: the most specific of
 * `host/ns/repo`, `host/ns`, `host` wins; keys written with a scheme (`https://index.docker.io/v1/`) are reduced to
 * their host, and Docker Hub's aliases all mean docker.io.
 * Nothing here ever logs a credential: only file paths and registry names.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { UsageError } from '../errors.js';
import { FileRefusedError, MAX_INDEX_BYTES, parseBoundedJson, readRegularFile } from '../bounded-read.js';
import { runCredentialHelper } from './cred-helper.js';
import { DOCKER_HUB } from './reference.js';

export interface Credential {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (docker's identitytoken) */
  identityToken?: string;
  /** a bearer token used as is */
  registryToken?: string;
  /** the file it came from (for log lines; never its contents) */
  source: string;
  /** the key it was found under */
  key: string;
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

/** A key of an auth file reduced to what references are compared with: host[/path] without scheme. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(k);
  if (scheme) {
    // docker writes "https://index.docker.io/v1/": with a scheme, the key is only a host
    k = k.slice(scheme[0].length).split('/')[0]!;
  }
  k = k.replace(/\/+$/, '');
  const slash = k.indexOf('/');
  const host = slash < 0 ? k : k.slice(0, slash);
  const rest = slash < 0 ? '' : k.slice(slash);
  const h = host.toLowerCase();
  const hub = h === 'index.docker.io' || h === 'registry-1.docker.io' || h === 'docker.io';
  return (hub ? DOCKER_HUB : h) + rest;
}

function toCredential(entry: AuthEntry, source: string, key: string, log?: Logger): Credential | undefined {
  const c: Credential = { source, key };
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const dec = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = dec.indexOf(':');
    if (i <= 0) {
      log?.warn({ file: source, registry: key }, 'ignoring an auth entry whose "auth" is not base64 of user:password');
      return undefined;
    }
    c.username = dec.slice(0, i);
    c.password = dec.slice(i + 1);
  }
  if (typeof entry.username === 'string' && entry.username !== '') c.username = entry.username;
  if (typeof entry.password === 'string' && entry.password !== '') c.password = entry.password;
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') c.identityToken = entry.identitytoken;
  if (typeof entry.registrytoken === 'string' && entry.registrytoken !== '') c.registryToken = entry.registrytoken;
  if (!c.password && !c.identityToken && !c.registryToken) return undefined;
  return c;
}

/**
 * A kubelet-style globbed key (`*.example.com[:port][/path]`): each `*` stands for one DNS label's worth of
 * characters, the label count and port must be equal, and the path must be a prefix of the repository.
 */
function globMatches(key: string, registry: string, repository: string): boolean {
  const slash = key.indexOf('/');
  const keyHost = slash < 0 ? key : key.slice(0, slash);
  const keyPath = slash < 0 ? '' : key.slice(slash + 1);
  const [kName, kPort = ''] = keyHost.split(':') as [string, string?];
  const [rName, rPort = ''] = registry.split(':') as [string, string?];
  if (kPort !== rPort) return false;
  const kLabels = kName.split('.');
  const rLabels = rName.split('.');
  if (kLabels.length !== rLabels.length) return false;
  const labelOk = (k: string, r: string) =>
    new RegExp(`^${k.split('*').map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*')}$`).test(r);
  if (!kLabels.every((k, i) => labelOk(k, rLabels[i]!))) return false;
  return keyPath === '' || repository === keyPath || repository.startsWith(`${keyPath}/`);
}

interface HelperConfig {
  source: string;
  /** normalised registry → helper name */
  perRegistry: Map<string, string>;
  /** credsStore */
  fallback?: string;
}

/** What a credential helper is asked for: the registry as docker names it (Docker Hub by its old index URL). */
function helperServerUrl(registry: string): string {
  return registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
}

export class CredentialStore {
  /** in priority order: earlier sources win for the same key */
  private readonly entries: Array<Map<string, Credential>> = [];
  private readonly helpers: HelperConfig[] = [];

  add(source: string, doc: unknown, log?: Logger): number {
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 0;
    const o = doc as Record<string, unknown>;
    const perRegistry = new Map<string, string>();
    if (o.credHelpers && typeof o.credHelpers === 'object') {
      for (const [k, v] of Object.entries(o.credHelpers as Record<string, unknown>)) {
        if (typeof v === 'string' && v) perRegistry.set(normalizeAuthKey(k), v);
      }
    }
    const fallback = typeof o.credsStore === 'string' && o.credsStore ? o.credsStore : undefined;
    if (perRegistry.size || fallback) this.helpers.push({ source, perRegistry, fallback });
    const auths = (o.auths && typeof o.auths === 'object' ? o.auths : 'auths' in o ? {} : o) as Record<string, unknown>;
    const map = new Map<string, Credential>();
    for (const [key, entry] of Object.entries(auths)) {
      if (!entry || typeof entry !== 'object') continue;
      const norm = normalizeAuthKey(key);
      const c = toCredential(entry as AuthEntry, source, norm, log);
      if (c && !map.has(norm)) map.set(norm, c);
    }
    this.entries.push(map);
    return map.size;
  }

  /** The credential for `registry/repository`: the most specific key first, then the earliest source. */
  lookup(registry: string, repository: string): Credential | undefined {
    const parts = repository.split('/');
    const keys: string[] = [];
    for (let n = parts.length; n >= 1; n--) keys.push(`${registry}/${parts.slice(0, n).join('/')}`);
    keys.push(registry);
    for (const k of keys) {
      for (const m of this.entries) {
        const c = m.get(k);
        if (c) return c;
      }
    }
    // the kubelet's config.json may hold globbed hosts (*.azurecr.io): after every exact key, as the kubelet does
    for (const m of this.entries) {
      for (const [k, c] of m) {
        if (k.includes('*') && globMatches(k, registry, repository)) return c;
      }
    }
    return undefined;
  }

  /**
   * The credential for `registry/repository`, asking credential helpers where a config names them: a helper
   * named for the registry (credHelpers) first, then the files' entries (lookup), then a default helper
   * (credsStore).
   */
  async resolve(registry: string, repository: string, log?: Logger): Promise<Credential | undefined> {
    const ask = async (name: string, source: string): Promise<Credential | undefined> => {
      const c = await runCredentialHelper(name, helperServerUrl(registry), log);
      return c ? { ...c, source: `${source} (docker-credential-${name})`, key: registry } : undefined;
    };
    for (const h of this.helpers) {
      const name = h.perRegistry.get(registry);
      if (name) {
        const c = await ask(name, h.source);
        if (c) return c;
      }
    }
    const found = this.lookup(registry, repository);
    if (found) return found;
    for (const h of this.helpers) {
      if (h.fallback) {
        const c = await ask(h.fallback, h.source);
        if (c) return c;
      }
    }
    return undefined;
  }

  get size(): number {
    return this.entries.reduce((n, m) => n + m.size, 0);
  }
}

const SECRET_FILES = new Set(['.dockerconfigjson', '.dockercfg']);

/** Paths of the pull-secret files under `dir`, sorted; the kubelet's `..data`/`..<timestamp>` copies skipped. */
async function findSecretFiles(dir: string, depth = 0): Promise<string[]> {
  if (depth > 8) return [];
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw e;
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    // a Kubernetes secret volume holds each file once under its name and again under ..data/..TIMESTAMP
    if (name.startsWith('..')) continue;
    const p = path.join(dir, name);
    const st = await fs.stat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) out.push(...(await findSecretFiles(p, depth + 1)));
    else if (st.isFile() && SECRET_FILES.has(name)) out.push(p);
  }
  return out;
}

/** An auth file or pull secret: a regular file of at most 4 MiB (a FIFO or a device is refused at once). */
async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = (await readRegularFile(file, MAX_INDEX_BYTES)).toString('utf8');
  } catch (e) {
    if (e instanceof FileRefusedError) throw new UsageError(`${what} ${file} ${e.message}`);
    throw e;
  }
  try {
    return parseBoundedJson(text);
  } catch {
    // never echo the text: it holds secrets
    throw new UsageError(`${file} is not valid JSON (expected a docker config / containers-auth.json)`);
  }
}

export interface CredentialSources {
  pullSecretsDir?: string;
  authFile?: string;
  /** `--host-root`: where the kubelet's config.json is */
  hostRoot?: string;
  log?: Logger;
  /** the environment to read HOME, XDG_RUNTIME_DIR, DOCKER_CONFIG from (process.env by default) */
  env?: NodeJS.ProcessEnv;
}

/** The auth files read when no --auth-file is given, in priority order (containers-auth.json(5), then kubelet). */
export function defaultAuthFiles(src: Pick<CredentialSources, 'hostRoot' | 'env'>): string[] {
  const env = src.env ?? process.env;
  const home = env.HOME || '/root';
  const out: string[] = [];
  if (env.XDG_RUNTIME_DIR) out.push(path.join(env.XDG_RUNTIME_DIR, 'containers/auth.json'));
  out.push(path.join(home, '.config/containers/auth.json'));
  out.push(path.join(env.DOCKER_CONFIG || path.join(home, '.docker'), 'config.json'));
  out.push(path.join(src.hostRoot ?? '/', 'var/lib/kubelet/config.json'));
  return out;
}

/** Every place credentials are looked for, for the "no credentials" message. */
export function credentialPlaces(src: CredentialSources): string[] {
  return [
    ...(src.pullSecretsDir ? [`pull secrets ${src.pullSecretsDir}`] : []),
    ...(src.authFile ? [`auth file ${src.authFile}`] : defaultAuthFiles(src)),
  ];
}

/** Reads every credential source; missing ones are fine (no secrets mounted), unreadable JSON is a UsageError. */
export async function loadCredentials(src: CredentialSources): Promise<CredentialStore> {
  const store = new CredentialStore();
  if (src.pullSecretsDir) {
    for (const file of await findSecretFiles(src.pullSecretsDir)) {
      const n = store.add(file, await readJson(file, 'pull secret'), src.log);
      src.log?.debug({ file, registries: n }, 'read pull secret');
    }
  }
  for (const file of src.authFile ? [src.authFile] : defaultAuthFiles(src)) {
    try {
      const n = store.add(file, await readJson(file, 'auth file'), src.log);
      src.log?.debug({ file, registries: n }, 'read auth file');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      if (src.authFile) src.log?.debug({ file }, 'auth file does not exist; no credentials from it');
    }
  }
  return store;
}
