/**
 * Which TLS certificates a registry is verified against, as podman and docker decide it:
 *   <host-root>/etc/containers/certs.d/<host[:port]>/*.crt   (CAs; *.cert + *.key = a client certificate)
 *   <host-root>/etc/docker/certs.d/<host[:port]>/ca.crt      (and client.cert/client.key)
 * on top of Node's default store (which includes NODE_EXTRA_CA_CERTS).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from '../log.js';
import { FileRefusedError, MAX_CONFIG_BYTES, readRegularFile } from '../bounded-read.js';
import { UsageError } from '../errors.js';

export interface RegistryTls {
  /** CA certificates (PEM) to trust on top of the defaults; empty = defaults only */
  extraCAs: string[];
  clientCert?: { cert: string; key: string };
  /** the files the CAs came from (for log lines) */
  caFiles: string[];
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** A certificate or key of certs.d: a regular file of at most 1 MiB (a FIFO there must not hang the pull). */
async function readPem(file: string): Promise<string> {
  try {
    return (await readRegularFile(file, MAX_CONFIG_BYTES)).toString('utf8');
  } catch (e) {
    if (e instanceof FileRefusedError) throw new UsageError(`${file} ${e.message}`);
    throw e;
  }
}

export async function registryTls(hostRoot: string, host: string, log?: Logger): Promise<RegistryTls> {
  const out: RegistryTls = { extraCAs: [], caFiles: [] };
  const dirs = [path.join(hostRoot, 'etc/containers/certs.d', host), path.join(hostRoot, 'etc/docker/certs.d', host)];
  for (const dir of dirs) {
    const names = await listDir(dir);
    for (const name of names) {
      const p = path.join(dir, name);
      if (name.endsWith('.crt')) {
        out.extraCAs.push(await readPem(p));
        out.caFiles.push(p);
      } else if (name.endsWith('.cert') && !out.clientCert) {
        const keyName = name.replace(/\.cert$/, '.key');
        if (names.includes(keyName)) {
          out.clientCert = { cert: await readPem(p), key: await readPem(path.join(dir, keyName)) };
          log?.debug({ file: p }, 'using a client certificate for the registry');
        }
      }
    }
  }
  if (out.caFiles.length) log?.debug({ registry: host, files: out.caFiles }, 'trusting extra CA certificates');
  return out;
}

/** The `ca` option for a TLS connection: the default store (+ NODE_EXTRA_CA_CERTS) plus the registry's CAs. */
export function caBundle(extra: string[]): string[] | undefined {
  if (extra.length === 0) return undefined;
  const defaults = typeof tls.getCACertificates === 'function' ? tls.getCACertificates('default') : [...tls.rootCertificates];
  return [...defaults, ...extra];
}
