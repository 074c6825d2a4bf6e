/**
 * eStargz test images from an independent producer: `ctr-remote` from Debian's stargz-snapshotter (containerd's
 * `ctr` plus `images convert --estargz`). The converter works on a containerd content store, so each call starts
 * a private containerd (root, state and socket in a temp dir), imports the umoci layout into it as an OCI
 * archive, converts, pushes, and stops it again.
 *
 *   const m = await pushEstargz(img.dir, 'v1', reg, 'kmod-esgz', { chunkSize: 1 << 20 });
 *   // m.layers[0].annotations!['containerd.io/snapshot/stargz/toc.digest']
 *
 * The layers hold the original files byte for byte, plus `stargz.index.json` (the TOC) and a
 * `.no.prefetch.landmark` (or `.prefetch.landmark`) entry first; the blob ends in the 51-byte eStargz footer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { TestRegistry } from './registry.js';

export interface EstargzManifest {
  layers: Array<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }>;
}

// CRI wants CNI and runtimes this machine lacks; "opt" would create /opt/containerd on the host.
const CONFIG = `version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]
`;

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && fs.existsSync(path.join(d, cmd)));
}

/**
 * Converts the image `oci:<layout>:<tag>` (one image, not an index) to eStargz with ctr-remote (Debian's
 * stargz-snapshotter, through a containerd this helper starts and stops) and pushes it to `reg` as
 * `<repo>:<tag>`. `chunkSize` splits larger files into chunks of that many bytes (ctr-remote's default: 4 MiB).
 * Returns the pushed manifest.
 */
export async function pushEstargz(layout: string, tag: string, reg: TestRegistry, repo: string,
  opts: { chunkSize?: number; /** push as `<repo>:<destTag>` instead */ destTag?: string } = {}): Promise<EstargzManifest> {
  for (const cmd of ['containerd', 'ctr-remote']) {
    if (!onPath(cmd)) throw new Error(`pushEstargz: ${cmd} not found; install stargz-snapshotter and containerd (scripts/setup.sh)`);
  }
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'kmm-estargz-'));
  const sock = path.join(work, 'containerd.sock');
  const logFile = path.join(work, 'containerd.log');
  let child: ChildProcess | undefined;
  const ctr = async (...args: string[]): Promise<string> => {
    try {
      return (await execa('ctr-remote', ['--address', sock, ...args])).stdout;
    } catch (e) {
      const err = e as { stderr?: string; shortMessage?: string; message: string };
      const log = await fsp.readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`ctr-remote ${args.join(' ')} failed: ${err.stderr?.trim() || err.shortMessage || err.message}` +
        `\ncontainerd log (end):\n${log.slice(-2000)}`);
    }
  };
  try {
    await fsp.writeFile(path.join(work, 'config.toml'), CONFIG);
    const log = fs.openSync(logFile, 'w');
    child = spawn('containerd', ['--config', path.join(work, 'config.toml'), '--root', path.join(work, 'root'),
      '--state', path.join(work, 'state'), '--address', sock, '--log-level', 'warn'],
    { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    live.add(child);
    let exited = false;
    child.once('exit', () => { exited = true; });
    child.once('error', () => { exited = true; });
    // containerd creates its socket once every plugin is loaded and the services are registered
    for (let i = 0; !fs.existsSync(sock); i++) {
      if (exited || i > 200) {
        throw new Error(`containerd did not start: ${(await fsp.readFile(logFile, 'utf8')).slice(-2000)}`);
      }
      await sleep(50);
    }

    // Only this tag goes into the archive's index.json, so only its image is imported (the blobs are all copied
    // but nothing unreferenced is converted). --no-unpack: no snapshotter (overlayfs, mounts) is involved.
    const idx = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: Array<{ annotations?: Record<string, string> }>;
    };
    idx.manifests = idx.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (idx.manifests.length !== 1) throw new Error(`pushEstargz: layout ${layout} has no tag ${tag}`);
    await fsp.writeFile(path.join(work, 'index.json'), JSON.stringify(idx));
    const archive = path.join(work, 'image.tar');
    await execa('tar', ['-cf', archive, '-C', work, 'index.json', '-C', layout, 'oci-layout', 'blobs']);
    const src = `import.invalid/src:${tag}`;
    await ctr('images', 'import', '--all-platforms', '--no-unpack', '--base-name', 'import.invalid/src', archive);

    const dst = `${reg.host}/${repo}:${opts.destTag ?? tag}`;
    const convert = ['images', 'convert', '--oci', '--estargz', '--all-platforms'];
    if (opts.chunkSize) convert.push('--estargz-chunk-size', String(opts.chunkSize));
    // prints the digest of the converted manifest
    const digest = (await ctr(...convert, src, dst)).trim().split('\n').pop()!;

    const push = ['images', 'push', ...(reg.tls ? ['--tlscacert', reg.caFile!] : ['--plain-http'])];
    if (reg.username && reg.password) push.push('--user', `${reg.username}:${reg.password}`);
    await ctr(...push, dst);
    // the bytes just pushed, from the content store (no second registry client with its own auth and TLS)
    const manifest = JSON.parse(await ctr('content', 'get', digest)) as Partial<EstargzManifest>;
    if (!Array.isArray(manifest.layers)) throw new Error(`pushEstargz: ${dst} is not an image manifest`);
    return manifest as EstargzManifest;
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      // SIGKILL, not SIGTERM: a graceful stop takes 1.5 s, and all containerd wrote (no mounts, no shims, as
      // nothing was unpacked or run) is in `work`, removed below
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    }
    if (child) live.delete(child);
    await fsp.rm(work, { recursive: true, force: true });
  }
}
