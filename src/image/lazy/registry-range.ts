/**
 * One `Range` request for part of a registry blob (lazy pulls). The answer counts as partial only when it is a
 * 206 whose Content-Range is exactly the range asked for; anything else (a 200 with the whole blob) is not.
 */
import type { Registry } from '../registry-client.js';
import type { RegistryReference } from '../reference.js';
import type { Descriptor } from '../types.js';
import type { RangeAnswer } from './blob-ranges.js';

export async function fetchBlobRange(client: Pick<Registry, 'send' | 'chunks'>, ref: RegistryReference, desc: Descriptor, start: number,
  end: number, signal?: AbortSignal): Promise<RangeAnswer> {
  const res = await client.send('GET', `/v2/${ref.repository}/blobs/${desc.digest}`, {
    repository: ref.repository, signal, what: `download of blob ${desc.digest} (bytes ${start}-${end - 1})`,
    headers: { range: `bytes=${start}-${end - 1}` },
  });
  const range = res.headers['content-range'];
  const partial = res.statusCode === 206 && range === `bytes ${start}-${end - 1}/${desc.size}`;
  return { partial, chunks: client.chunks(res), cancel: () => res.body.destroy() };
}
