/**
 * The node's registries.conf (containers-registries.conf(5), version 2 TOML), as CRI-O, podman and skopeo read it:
 *   <host-root>/etc/containers/registries.conf, then <host-root>/etc/containers/registries.conf.d/*.conf in
 *   alphanumerical order; a later file's [[registry]] with the same prefix replaces the earlier one as a whole,
 *   new prefixes are added.
 * Only what decides where an image is pulled from is used: [[registry]] prefix, location, insecure, blocked,
 * mirror-by-digest-only and [[registry.mirror]] location, insecure, pull-from-mirror. Short-name settings are not
 * (kmm-worker normalises short names to docker.io as docker does).
 * A file that is not valid TOML, or holds a wrong value for one of those keys, is a UsageError naming file and line.
 */
import fs from 'node:fs/promises';
import { FileRefusedError, MAX_CONFIG_BYTES, readRegularFile } from '../bounded-read.js';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** host[:port][/namespace...] or *.domain */
  prefix: string;
  /** where the prefix really lives; the prefix itself when not given */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorEntry[];
  /** the file the entry came from (for messages) */
  file: string;
}

export interface RegistriesConf {
  registries: RegistryEntry[];
  /** the files read, in order */
  files: string[];
}

const PULL_FROM_MIRROR = new Set<PullFromMirror>(['all', 'digest-only', 'tag-only']);

/** The 1-based line of the first line holding all of `needles` (for messages about a value, not a syntax error). */
function lineOf(text: string, ...needles: string[]): number | undefined {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => needles.every((n) => l.includes(n)));
  return i < 0 ? undefined : i + 1;
}

class FileReader {
  constructor(readonly file: string, readonly text: string) {}

  fail(message: string, ...needles: string[]): never {
    const line = needles.length ? lineOf(this.text, ...needles) : undefined;
    throw new UsageError(`${this.file}${line ? `:${line}` : ''}: ${message}`);
  }

  str(o: Record<string, unknown>, key: string): string | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(`${key} must be a string`, key);
    return v.trim().replace(/\/+$/, '');
  }

  bool(o: Record<string, unknown>, key: string): boolean {
    const v = o[key];
    if (v === undefined) return false;
    if (typeof v !== 'boolean') this.fail(`${key} must be true or false`, key);
    return v;
  }

  location(value: string, key: string): string {
    // host[:port][/path]: no scheme, no tag or digest
    if (value === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /[@\s]/.test(value)
      || !/^[A-Za-z0-9.\-[\]:]+(\/[a-z0-9._\-/]+)?$/.test(value)) {
      this.fail(`${key} "${value}" is not host[:port][/namespace]`, key, value);
    }
    return value;
  }

  mirror(o: unknown): MirrorEntry {
    if (!o || typeof o !== 'object' || Array.isArray(o)) this.fail('[[registry.mirror]] must be a table', 'mirror');
    const m = o as Record<string, unknown>;
    const location = this.str(m, 'location');
    if (location === undefined) this.fail('a [[registry.mirror]] has no location', 'registry.mirror');
    const pfm = m['pull-from-mirror'];
    if (pfm !== undefined && (typeof pfm !== 'string' || (pfm !== '' && !PULL_FROM_MIRROR.has(pfm as PullFromMirror)))) {
      this.fail('pull-from-mirror must be all, digest-only or tag-only', 'pull-from-mirror', String(pfm));
    }
    return {
      location: this.location(location, 'mirror location'),
      insecure: this.bool(m, 'insecure'),
      pullFromMirror: (pfm || 'all') as PullFromMirror,
    };
  }

  registry(o: unknown): RegistryEntry {
    if (!o || typeof o !== 'object' || Array.isArray(o)) this.fail('[[registry]] must be a table', 'registry');
    const r = o as Record<string, unknown>;
    const location = this.str(r, 'location');
    if (location) this.location(location, 'location');
    const prefix = this.str(r, 'prefix') || location;
    if (!prefix) this.fail('a [[registry]] has neither prefix nor location', '[[registry]]');
    const wildcard = prefix.startsWith('*.');
    if (wildcard && location) this.fail(`a wildcard prefix (${prefix}) must not have a location`, prefix);
    // a prefix may end in :tag or @digest (host/repo:tag): only that image
    if (!wildcard) this.location(prefix.replace(/(\/[^/]*?)(@sha256:[a-f0-9]+|:[\w][\w.-]*)$/, '$1'), 'prefix');
    const mirrors = r.mirror === undefined ? [] : r.mirror;
    if (!Array.isArray(mirrors)) this.fail('mirror must be an array of tables ([[registry.mirror]])', 'mirror');
    return {
      prefix,
      location: location || prefix,
      insecure: this.bool(r, 'insecure'),
      blocked: this.bool(r, 'blocked'),
      mirrorByDigestOnly: this.bool(r, 'mirror-by-digest-only'),
      mirrors: mirrors.map((m) => this.mirror(m)),
      file: this.file,
    };
  }
}

/** The [[registry]] entries of one file's text. */
export function parseRegistriesConf(file: string, text: string, log?: Logger): RegistryEntry[] {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const what = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new UsageError(`${file}:${e.line}:${e.column}: invalid TOML: ${what}`);
    }
    throw e;
  }
  const reader = new FileReader(file, text);
  if (doc.registries !== undefined) {
    // version 1 ([registries.search], [registries.insecure], [registries.block]) is deprecated upstream
    log?.warn({ file }, 'registries.conf version 1 tables ([registries.*]) are not supported; they are ignored');
  }
  const regs: unknown = doc.registry ?? [];
  if (!Array.isArray(regs)) reader.fail('registry must be an array of tables ([[registry]])', 'registry');
  return (regs as unknown[]).map((r) => reader.registry(r));
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return (await readRegularFile(file, MAX_CONFIG_BYTES)).toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (e instanceof FileRefusedError) throw new UsageError(`${file} ${e.message}`);
    throw new UsageError(`${file}: cannot read: ${(e as Error).message}`);
  }
}

async function dropInFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.name.endsWith('.conf') && (e.isFile() || e.isSymbolicLink()))
    .map((e) => e.name).sort().map((n) => path.join(dir, n));
}

/** registries.conf and its drop-ins under `hostRoot`, merged; nothing configured when none exists. */
export async function loadRegistriesConf(hostRoot: string, log?: Logger): Promise<RegistriesConf> {
  const etc = path.join(hostRoot, 'etc/containers');
  const byPrefix = new Map<string, RegistryEntry>();
  const files: string[] = [];
  for (const file of [path.join(etc, 'registries.conf'), ...(await dropInFiles(path.join(etc, 'registries.conf.d')))]) {
    const text = await readIfExists(file);
    if (text === undefined) continue;
    files.push(file);
    for (const entry of parseRegistriesConf(file, text, log)) {
      // same prefix: the later file's entry replaces the earlier one (Map keeps the first insertion's position)
      byPrefix.set(entry.prefix, entry);
    }
  }
  if (files.length) log?.debug({ files }, 'read registries.conf');
  return { registries: [...byPrefix.values()], files };
}
