/**
 * The one image abstraction every source (registry, `oci:` layout) produces and every consumer (extraction,
 * cache, inspect, preflight, Day-1) reads. Modelled on the shape of go-containerregistry's v1.Image.
 */
import type { Readable } from 'node:stream';
import type { RangeAnswer } from './lazy/blob-ranges.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ImageSourceOptions {
  /** plain HTTP and unverified TLS allowed for this image (config insecurePull / --insecure) */
  insecure?: boolean;
  /** "os/arch[/variant]"; the host's linux/<arch> when absent */
  platform?: string;
  /** `--auth-file` */
  authFile?: string;
  /** `--pull-secrets-dir` */
  pullSecretsDir?: string;
  /** `--host-root`: certs.d directories resolve under it */
  hostRoot?: string;
  signal?: AbortSignal;
}

/** A manifest resolved for one platform. */
export interface ResolvedImage {
  /** the reference as the user gave it, normalised (e.g. docker.io/library/busybox:latest, oci:/path:tag) */
  reference: string;
  /** digest of what the reference points at (an index digest when it names an index) */
  digest: string;
  /** media type of what the reference points at */
  mediaType: string;
  /** digest of the platform's image manifest (same as `digest` when there is no index) */
  manifestDigest: string;
  /** "linux/amd64", ... of the index; the single image's own platform otherwise */
  platforms: string[];
  config: Descriptor;
  /** in application order, bottom first */
  layers: Descriptor[];
  /**
   * A stream of the blob's bytes, verified while it streams: the stream errors (and never ends cleanly)
   * when the size or sha256 differs from the descriptor, so a consumer that waits for 'end' never trusts
   * bad bytes.
   */
  openBlob(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<Readable>;
  /**
   * Bytes [start, end) of a blob, unverified (the caller proves them, e.g. against a zstd:chunked TOC); only
   * sources that can ask for ranges (registries) have it. Used by lazy pulls (src/extract/lazy-layer.ts).
   */
  openBlobRange?(desc: Descriptor, start: number, end: number, opts?: { signal?: AbortSignal }): Promise<RangeAnswer>;
  /**
   * The config's `rootfs.diff_ids`, one per layer in the same order: the sha256 of each layer's uncompressed
   * tar. Read from the verified config blob (once); a config without one DiffID per layer is an error.
   */
  diffIds(): Promise<string[]>;
}
