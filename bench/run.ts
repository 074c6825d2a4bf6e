/**
 * `npm run bench`: kmm-worker pull+extract against its peers, on a ~450 MiB (compressed) 3-layer image and its
 * zstd twin served by a local docker-registry, in one run:
 *   - kmm-worker `image pull --all` (digests verified while streaming, entry synced and renamed into place)
 *   - `curl | gzip -dc | tar -x` per layer (zstd -dc for the twin), no digest check
 *   - `skopeo copy` to an OCI layout + `umoci raw unpack`
 * Medians of BENCH_ROUNDS (default 3) rounds, ratios, and the agent's peak RSS (from /usr/bin/time). Then the
 * start-up cost of a cache-hit `kmod load` (recording modprobe) against `node -e 0`.
 * The image is built once into .cache/bench/ and reused. Results also go to bench/results/<time>.json.
 * BENCH_ONLY=gzip|zstd runs one variant. BENCH_COMPARE=<other checkout>/bin/kmm-worker.js also times that build's
 * `image pull --all` in every round, interleaved with this one's, for a side-by-side A/B on a shared machine.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { startRegistry } from '../test/helpers/registry.js';
import { pushImage } from '../test/helpers/images.js';
import { makeHostRoot } from '../test/helpers/host-root.js';
import { recordingModprobeEnv, recordingModprobePath } from '../test/helpers/recording-modprobe.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'kmm-worker.js');
const CACHE = path.join(ROOT, '.cache', 'bench');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KVER = '6.1.0-bench';
const MiB = 1024 * 1024;
/** per layer: incompressible "firmware" plus half-compressible data, ~150 MiB compressed */
const RANDOM_PER_LAYER = Number(process.env.BENCH_RANDOM_MIB ?? 120) * MiB;
const TEXTY_PER_LAYER = Number(process.env.BENCH_TEXTY_MIB ?? 60) * MiB;
const ONLY = process.env.BENCH_ONLY;
const COMPARE = process.env.BENCH_COMPARE;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Writes `bytes` to a file in 4 MiB chunks; texty = 16 symbols per byte, which deflate halves. */
async function writeData(file: string, bytes: number, texty: boolean): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const out = createWriteStream(file);
  for (let done = 0; done < bytes; ) {
    const n = Math.min(4 * MiB, bytes - done);
    let chunk = randomBytes(n);
    if (texty) for (let i = 0; i < n; i++) chunk[i] = 0x61 + (chunk[i]! & 0x0f);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    done += n;
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

/** The 3-layer gzip image in an OCI layout (umoci), built once. */
async function buildImage(): Promise<string> {
  const layout = path.join(CACHE, `layout-${RANDOM_PER_LAYER / MiB}-${TEXTY_PER_LAYER / MiB}`);
  if (existsSync(path.join(layout, 'index.json'))) return layout;
  await rm(layout, { recursive: true, force: true });
  await mkdir(CACHE, { recursive: true });
  const bundle = await mkdtemp(path.join(CACHE, 'bundle-'));
  await rm(bundle, { recursive: true });
  const image = `${layout}:v1`;
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', image]);
  await run('umoci', ['config', '--image', image, '--os', 'linux', '--architecture', 'amd64']);
  await run('umoci', ['unpack', '--image', image, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  for (let layer = 1; layer <= 3; layer++) {
    console.error(`building layer ${layer}/3 ...`);
    const mods = path.join(rootfs, 'opt/lib/modules', KVER);
    await writeData(path.join(mods, `kmm_l${layer}.ko`), 2 * MiB, true);
    for (let i = 0; i < 6; i++) {
      await writeData(path.join(rootfs, `firmware/vendor${layer}/fw-${i}.bin`), RANDOM_PER_LAYER / 6, false);
      await writeData(path.join(rootfs, `firmware/vendor${layer}/tables-${i}.dat`), TEXTY_PER_LAYER / 6, true);
    }
    for (let i = 0; i < 200; i++) await writeData(path.join(rootfs, `usr/share/kmm/l${layer}/small-${i}.txt`), 4096, true);
    await run('umoci', ['repack', '--refresh-bundle', '--image', image, bundle], { maxBuffer: 64 * MiB });
  }
  await rm(bundle, { recursive: true, force: true });
  return layout;
}

interface Timed {
  ms: number;
  /** KiB, from /usr/bin/time */
  maxRssKiB?: number;
}

async function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; rss?: boolean } = {}): Promise<Timed> {
  const argv = opts.rss ? ['/usr/bin/time', '-f', 'MAXRSS %M', cmd, ...args] : [cmd, ...args];
  const started = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, stderr: err }));
  });
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`${argv.join(' ')} failed (${code}): ${stderr.slice(-2000)}`);
  const m = /MAXRSS (\d+)/.exec(stderr);
  return { ms, ...(m ? { maxRssKiB: Number(m[1]) } : {}) };
}

async function main() {
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first');
  const layout = await buildImage();
  const reg = await startRegistry();
  const work = await mkdtemp(path.join(CACHE, 'run-'));
  try {
    console.error('pushing the gzip image and its zstd twin ...');
    const variants = [
      { name: 'gzip', tag: 'gzip', decompress: 'gzip -dc' },
      { name: 'zstd', tag: 'zstd', decompress: 'zstd -dc' },
    ].filter((v) => !ONLY || v.name === ONLY);
    for (const v of variants) await pushImage(`oci:${layout}:v1`, reg, `bench:${v.tag}`, { format: 'oci', compress: v.name as 'gzip' | 'zstd' });

    const results: Record<string, Record<string, Timed[]>> = {};
    const sizes: Record<string, number> = {};
    for (const v of variants) {
      const ref = `${reg.host}/bench:${v.tag}`;
      const manifest = JSON.parse(
        (await run('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `${reg.url}/v2/bench/manifests/${v.tag}`])).stdout,
      ) as { layers: { digest: string; size: number }[] };
      sizes[v.name] = manifest.layers.reduce((n, l) => n + l.size, 0);
      const r: Record<string, Timed[]> = { agent: [], agentSelected: [], curl: [], skopeoUmoci: [], compare: [] };
      results[v.name] = r;
      for (let round = 1; round <= ROUNDS; round++) {
        console.error(`${v.name} round ${round}/${ROUNDS} ...`);
        const d = await mkdtemp(path.join(work, 'agent-'));
        r.agent!.push(await timed(process.execPath, [CLI, 'image', 'pull', ref, '--all', '--images-dir', d, '--json', '--log-level', 'warn'], { rss: true }));
        await rm(d, { recursive: true, force: true });
        if (COMPARE) {
          const c = await mkdtemp(path.join(work, 'compare-'));
          r.compare!.push(await timed(process.execPath, [COMPARE, 'image', 'pull', ref, '--all', '--images-dir', c, '--json', '--log-level', 'warn'], { rss: true }));
          await rm(c, { recursive: true, force: true });
        }

        const s = await mkdtemp(path.join(work, 'agent-sel-'));
        r.agentSelected!.push(await timed(process.execPath, [CLI, 'image', 'pull', ref, '--kernel', KVER, '--images-dir', s, '--json', '--log-level', 'warn'], { rss: true }));
        await rm(s, { recursive: true, force: true });

        const out = await mkdtemp(path.join(work, 'curl-'));
        // the manifest request is part of the job; digests are taken from it, never verified
        const script = `set -eo pipefail
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' ${reg.url}/v2/bench/manifests/${v.tag} >/dev/null
${manifest.layers.map((l) => `curl -sf ${reg.url}/v2/bench/blobs/${l.digest} | ${v.decompress} | tar -x -C ${out}`).join('\n')}`;
        r.curl!.push(await timed('bash', ['-c', script]));
        await rm(out, { recursive: true, force: true });

        // Debian's umoci cannot read zstd layers ("blob is not correct mediatype"): that peer runs on gzip only.
        if (v.name === 'gzip') {
          const oci = path.join(work, `skopeo-${round}`);
          const unpacked = path.join(work, `umoci-${round}`);
          const t0 = performance.now();
          await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:v1`]);
          await timed('umoci', ['raw', 'unpack', '--image', `${oci}:v1`, unpacked]);
          r.skopeoUmoci!.push({ ms: performance.now() - t0 });
          await rm(oci, { recursive: true, force: true });
          await rm(unpacked, { recursive: true, force: true });
        }
      }
    }

    // start-up cost of a cache-hit `kmod load` with a recording modprobe
    const load = ONLY ? { load: NaN, node: NaN, rounds: 0 } : await cacheHitLoad(work);

    const report: string[] = [];
    const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    for (const v of variants) {
      const r = results[v.name]!;
      const agent = median(r.agent!.map((x) => x.ms));
      const curl = median(r.curl!.map((x) => x.ms));
      const sk = r.skopeoUmoci!.length ? median(r.skopeoUmoci!.map((x) => x.ms)) : undefined;
      const rss = Math.max(...r.agent!.map((x) => x.maxRssKiB ?? 0), ...r.agentSelected!.map((x) => x.maxRssKiB ?? 0));
      report.push(
        `${v.name}: ${(sizes[v.name]! / MiB).toFixed(0)} MiB compressed, 3 layers, medians of ${ROUNDS}`,
        `  kmm-worker image pull --all        ${fmt(agent)}`,
        `  kmm-worker image pull --kernel     ${fmt(median(r.agentSelected!.map((x) => x.ms)))}  (modules only)`,
        `  curl | ${v.decompress} | tar -x     ${fmt(curl)}   agent/curl = ${(agent / curl).toFixed(2)}x`,
        sk === undefined
          ? '  skopeo copy + umoci raw unpack     n/a (umoci cannot unpack zstd layers)'
          : `  skopeo copy + umoci raw unpack     ${fmt(sk)}   agent/skopeo+umoci = ${(agent / sk).toFixed(2)}x`,
        `  agent peak RSS                     ${(rss / 1024).toFixed(0)} MiB`,
      );
      if (r.compare!.length) {
        const other = median(r.compare!.map((x) => x.ms));
        const otherRss = Math.max(...r.compare!.map((x) => x.maxRssKiB ?? 0));
        report.push(`  BENCH_COMPARE image pull --all     ${fmt(other)}   this/compared = ${(agent / other).toFixed(2)}x, its peak RSS ${(otherRss / 1024).toFixed(0)} MiB`);
      }
    }
    report.push(
      `cache-hit kmod load: ${load.load.toFixed(0)} ms vs node -e 0: ${load.node.toFixed(0)} ms  ratio ${(load.load / load.node).toFixed(2)}x (medians of ${load.rounds})`,
    );
    console.log(report.join('\n'));
    await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
    await writeFile(
      path.join(ROOT, 'bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
      JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, sizes, results, load, report }, null, 2),
    );
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** `kmod load` of a config whose image is already in the cache: no network, recording modprobe. */
async function cacheHitLoad(work: string): Promise<{ load: number; node: number; rounds: number }> {
  const { ensureTestKmods } = await import('../test/kmods/kmods.js');
  const k = await ensureTestKmods();
  const layout = path.join(work, 'load-layout');
  const { buildLayout } = await import('../test/helpers/images.js');
  const mod = Object.keys(k.ko).find((n) => n.includes('hello')) ?? Object.keys(k.ko)[0]!;
  const img = await buildLayout({
    dir: layout,
    tag: 'v1',
    layers: [{ [`opt/lib/modules/${k.kver}/${path.basename(k.ko[mod]!)}`]: await readFile(k.ko[mod]!) }],
  });
  const host = await makeHostRoot({ kver: k.kver });
  const images = path.join(work, 'load-images');
  const config = path.join(work, 'config.yaml');
  await writeFile(config, `kernelVersion: ${k.kver}\ncontainerImage: ${img.ref}\nmodprobe:\n  moduleName: ${mod}\n  dirName: /opt\n`);
  const env = { ...recordingModprobeEnv(host.root, path.join(work, 'modprobe.log')), KMM_REPORT: 'off' };
  const args = [CLI, 'kmod', 'load', config, '--host-root', host.root, '--modprobe', recordingModprobePath,
    '--images-dir', images, '--shared-dir', path.join(work, 'no-shared'), '--log-level', 'warn'];
  await timed(process.execPath, args, { env }); // warms the cache
  const loads: number[] = [];
  const nodes: number[] = [];
  const rounds = 7;
  for (let i = 0; i < rounds; i++) {
    await run(process.execPath, [CLI, 'kmod', 'unload', config, '--host-root', host.root, '--modprobe', recordingModprobePath,
      '--images-dir', images, '--shared-dir', path.join(work, 'no-shared'), '--log-level', 'warn'], { env: { ...process.env, ...env } });
    loads.push((await timed(process.execPath, args, { env })).ms);
    nodes.push((await timed(process.execPath, ['-e', '0'])).ms);
  }
  await host.cleanup();
  return { load: median(loads), node: median(nodes), rounds };
}

await main();
