/**
 * A registry image as a ResolvedImage: the manifest (through an index to the platform's image), the config, and
 * blobs streamed with sha256 verification and resumed with `Range` after a connection reset.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes, OperationError } from '../errors.js';
import { messages } from '../messages.js';
import type { Logger } from '../log.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './media-types.js';
import { configDiffIds, once, parseManifest, resolveForPlatform, type Manifest } from './manifest.js';
import { manifestRef, type RegistryReference } from './reference.js';
import { checkNesting, parseReceivedJson } from './bounded-json.js';
import type { Registry, RegistryResponse } from './registry-client.js';
import type { Descriptor, Platform, ResolvedImage } from './types.js';
import { fetchBlobRange } from './lazy/registry-range.js';
import { readVerified, sha256Digest, verifiedStream } from './verify.js';


function header(res: RegistryResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The error for a manifest 404. Registries answer NAME_UNKNOWN for an unknown repository only sometimes
 * (distribution's filesystem storage says MANIFEST_UNKNOWN for both), so for a missing tag the tag list
 * decides: a 404 there means the repository itself does not exist.
 */
async function notFound(client: Registry, res: RegistryResponse, ref: RegistryReference, what: string,
  tag: string | undefined, signal?: AbortSignal): Promise<OperationError> {
  let code: unknown = '';
  try {
    const text = (await client.readBody(res, 64 << 10)).toString('utf8');
    code = (parseReceivedJson(text, 'error body') as { errors?: Array<{ code?: unknown }> }).errors?.[0]?.code ?? '';
  } catch {
    // no JSON body
  }
  if (code === 'NAME_UNKNOWN') return new OperationError(messages.repositoryUnknown(ref.name, ref.repository, ref.registry));
  if (tag === undefined) return new OperationError(messages.manifestUnknown(ref.name, what, ref.registry));
  let tags: string[] | undefined;
  try {
    const list = await client.send('GET', `/v2/${ref.repository}/tags/list?n=100`, {
      repository: ref.repository, signal, what: `tags of ${ref.repository}`, accept: [404],
    });
    if (list.statusCode === 404) {
      await list.body.dump();
      return new OperationError(messages.repositoryUnknown(ref.name, ref.repository, ref.registry));
    }
    const text = (await client.readBody(list, MAX_MANIFEST_BYTES)).toString('utf8');
    tags = (parseReceivedJson(text, 'tag list') as { tags?: unknown }).tags as string[] | undefined;
  } catch {
    // the list is a courtesy: without it the tag is still not there
  }
  return new OperationError(messages.manifestUnknown(ref.name, what, ref.registry, Array.isArray(tags) ? tags : undefined));
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  manifest: Manifest;
}

/** GET one manifest by tag or digest; the bytes are checked against the digest asked for (or announced). */
export async function fetchManifest(client: Registry, ref: RegistryReference, reference: string,
  signal?: AbortSignal): Promise<FetchedManifest> {
  const isDigest = reference.startsWith('sha256:');
  const what = isDigest ? `manifest ${reference}` : `tag '${reference}'`;
  // the body is read inside the retries: a manifest that stalls or breaks mid-way is asked for again
  const { res, body } = await client.withRetries(`manifest of ${ref.name}`, signal, async () => {
    const r = await client.send('GET', `/v2/${ref.repository}/manifests/${reference}`, {
      repository: ref.repository, headers: { accept: MANIFEST_ACCEPT }, signal, what: `manifest of ${ref.name}`,
      accept: [404],
    });
    if (r.statusCode === 404) throw await notFound(client, r, ref, what, isDigest ? undefined : reference, signal);
    return { res: r, body: await client.readBody(r, MAX_MANIFEST_BYTES,
      () => new OperationError(`image ${ref.name}: manifest larger than ${MAX_MANIFEST_BYTES} bytes`, { located: true })) };
  });
  const digest = sha256Digest(body);
  if (isDigest && digest !== reference) {
    throw new OperationError(`image ${ref.name}: manifest ${reference} does not match its digest (got ${digest})`, { located: true });
  }
  const announced = header(res, 'docker-content-digest');
  if (announced && announced.startsWith('sha256:') && announced !== digest) {
    throw new OperationError(`image ${ref.name}: the registry says the manifest is ${announced} but its content is ${digest}`, { located: true });
  }
  // bounded nesting before the shared parser builds the object (issue 14 F10)
  checkNesting(body.toString('utf8'), `image ${ref.name}: manifest ${digest}`);
  const manifest = parseManifest(body, header(res, 'content-type'), `image ${ref.name}`);
  return { digest, mediaType: manifest.mediaType, manifest };
}

/**
 * The bytes of a blob, from the registry; when the connection breaks mid-blob, asks again from where it broke
 * (`Range`), or from the start when the registry ignores ranges (then the bytes already passed on are skipped).
 */
async function* blobChunks(client: Registry, ref: RegistryReference, desc: Descriptor, log: Logger,
  signal?: AbortSignal): AsyncGenerator<Buffer> {
  const path = `/v2/${ref.repository}/blobs/${desc.digest}`;
  const what = `blob ${desc.digest}`;
  const get = async (from: number) => {
    const res = await client.send('GET', path, {
      repository: ref.repository, signal, what: `download of ${what}`, accept: [404, 416],
      headers: from > 0 ? { range: `bytes=${from}-` } : {},
    });
    if (res.statusCode === 404) {
      await client.discard(res);
      throw new OperationError(`image ${ref.name}: ${what} not found on registry ${ref.registry}`, { located: true, code: ErrorCodes.imageNotFound });
    }
    if (res.statusCode === 416) {
      await client.discard(res);
      throw new OperationError(`image ${ref.name}: ${what}: the registry refused to resume at byte ${from}`, { located: true });
    }
    return res;
  };
  let delivered = 0;
  let res = await get(0);
  for (let resumes = 0; ; ) {
    // bytes of this response to drop because they were delivered before (a 200 answer to a Range request)
    let skip = 0;
    if (delivered > 0) {
      const range = header(res, 'content-range');
      if (res.statusCode === 206 && range && new RegExp(`^bytes ${delivered}-`).test(range)) skip = 0;
      else if (res.statusCode === 200) skip = delivered;
      else {
        await client.discard(res);
        throw new OperationError(`image ${ref.name}: ${what}: unexpected answer to a resumed download (HTTP ${res.statusCode})`, { located: true });
      }
    }
    let done = false;
    const body = res.body;
    try {
      for await (const c of client.chunks(res)) {
        let chunk = c;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        delivered += chunk.length;
        yield chunk;
      }
      done = true;
      return;
    } catch (err) {
      signal?.throwIfAborted();
      const delay = client.resumeDelay(err, `download of ${what} (at byte ${delivered} of ${desc.size})`, resumes);
      resumes++;
      log.warn({ registry: ref.registry, digest: desc.digest, atByte: delivered, size: desc.size, attempt: resumes,
        retryInMs: delay }, 'blob download interrupted; resuming');
      await sleep(delay, undefined, { signal });
      res = await get(delivered);
    } finally {
      // a consumer that stops early (or an error) must not leave the socket half-read
      if (!done && !body.destroyed) body.destroy();
    }
  }
}

export async function openRegistryImage(client: Registry, ref: RegistryReference, want: Platform, log: Logger,
  signal?: AbortSignal): Promise<ResolvedImage> {
  const top = await fetchManifest(client, ref, manifestRef(ref), signal);
  const configs = new Map<string, () => Promise<Buffer>>();
  const readConfig = (d: Descriptor) => {
    if (!configs.has(d.digest)) {
      configs.set(d.digest, once(() =>
        readVerified(blobChunks(client, ref, d, log, signal), d, MAX_MANIFEST_BYTES, `image ${ref.name}: config`)));
    }
    return configs.get(d.digest)!();
  };
  const { image, manifestDigest, platforms } = await resolveForPlatform({
    name: ref.name,
    top: top.manifest,
    topDigest: top.digest,
    want,
    log,
    readManifest: (d) => fetchManifest(client, ref, d.digest, signal),
    readConfig,
  });
  const openBlob = async (desc: Descriptor, o?: { signal?: AbortSignal }): Promise<Readable> =>
    verifiedStream(blobChunks(client, ref, desc, log, o?.signal ?? signal), desc, `image ${ref.name}: blob`);
  return {
    reference: ref.name,
    digest: top.digest,
    mediaType: top.mediaType,
    manifestDigest,
    platforms,
    config: image.config,
    layers: image.layers,
    openBlob,
    openBlobRange: (desc, start, end, o) => fetchBlobRange(client, ref, desc, start, end, o?.signal ?? signal),
    diffIds: once(async () => configDiffIds(await readConfig(image.config), image.layers.length, `image ${ref.name}`)),
  };
}

/** The digest the reference points at, with one manifest request (HEAD; GET only if HEAD gives no digest). */
export async function resolveRegistryDigest(client: Registry, ref: RegistryReference, signal?: AbortSignal)
  : Promise<string> {
  if (ref.digest) return ref.digest;
  const tag = manifestRef(ref);
  const res = await client.send('HEAD', `/v2/${ref.repository}/manifests/${tag}`, {
    repository: ref.repository, headers: { accept: MANIFEST_ACCEPT }, signal, what: `manifest of ${ref.name}`,
    accept: [404],
  });
  await client.discard(res);
  // a HEAD has no body to tell an unknown repository from an unknown tag: the GET's error code does
  if (res.statusCode === 404) return (await fetchManifest(client, ref, tag, signal)).digest;
  const d = header(res, 'docker-content-digest');
  if (d && /^sha256:[a-f0-9]{64}$/.test(d)) return d;
  return (await fetchManifest(client, ref, tag, signal)).digest;
}
