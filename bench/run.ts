/**
 * `npm run bench`: every row of issue 16's table, measured side by side in one run, medians of BENCH_ROUNDS
 * (default 3) interleaved rounds, each pull into a fresh directory:
 *   a) / a') a ~450 MiB (compressed) 3-layer image, gzip and its zstd twin, from a loopback docker-registry:
 *      `image pull --all` against `curl | tar` pipelines with and without a sha256sum of each blob, and (gzip)
 *      `skopeo copy` + `umoci raw unpack`; `image pull --kernel` is timed too;
 *   b) / c) a realistic kmod image (bench/realistic.ts): `image pull --kernel K --firmware-dir /firmware` from
 *      its gzip image, its podman zstd:chunked twin and its ctr-remote eStargz twin (lazy pulls) against
 *      skopeo+umoci, and the bytes the registry sent for the lazy pulls against the images' layer bytes; the
 *      floors of a gzip selective pull (inflating its layers from disk, bench/floor/inflate-only.mjs;
 *      downloading, both digests and inflating, bench/floor/download-verify-inflate.mjs);
 *   d) a cache-hit `kmod load` with a stub modprobe against `node -e 0` (bench/cache-hit-load.ts), and its floors
 *      (bench/floor/: Node running only the load's programs, then with commander, pino and yaml loaded);
 *   e) the peak RSS of every kmm-worker run (/usr/bin/time), and of `image pull --all` of a 10^5-file layer
 *      through the real CLI (issue 14 F9, bench/many-files-cli.ts).
 * Images are built once into .cache/bench/. The table is printed as markdown; raw figures go to
 * bench/results/<time>.json. BENCH_ONLY=gzip|zstd runs one variant of a) only. BENCH_COMPARE=<other
 * checkout>/bin/kmm-worker.js also times that build's `image pull --all` in every round, interleaved.
 * BENCH_RANDOM_MIB / BENCH_TEXTY_MIB shrink the image of a) for a quick run.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRegistry } from '../test/helpers/registry.js';
import { pushImage } from '../test/helpers/images.js';
import { prepareCacheHitLoad, type CacheHitLoad } from './cache-hit-load.js';
import { buildRealistic, layoutLayerBytes, layoutLayers, pushRealistic, REAL_KVER, selectiveBytes } from './realistic.js';
import { buildManyFiles, MANY_FILES, podMemoryLimit } from './many-files-cli.js';
import { writeData } from './data.js';

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
  const real = ONLY ? undefined : await buildRealistic(CACHE);
  const many = ONLY ? undefined : await buildManyFiles(CACHE);
  const reg = await startRegistry();
  const work = await mkdtemp(path.join(CACHE, 'run-'));
  try {
    console.error('pushing the images ...');
    const variants = [
      { name: 'gzip', tag: 'gzip', decompress: 'gzip -dc' },
      { name: 'zstd', tag: 'zstd', decompress: 'zstd -dc' },
    ].filter((v) => !ONLY || v.name === ONLY);
    for (const v of variants) await pushImage(`oci:${layout}:v1`, reg, `bench:${v.tag}`, { format: 'oci', compress: v.name as 'gzip' | 'zstd' });
    const estargzLayerBytes = real ? await pushRealistic(real, reg) : NaN;

    const results: Record<string, Record<string, Timed[]>> = {};
    const sizes: Record<string, number> = {};
    const layersOf: Record<string, { digest: string; size: number }[]> = {};
    for (const v of variants) {
      const manifest = JSON.parse(
        (await run('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `${reg.url}/v2/bench/manifests/${v.tag}`])).stdout,
      ) as { layers: { digest: string; size: number }[] };
      layersOf[v.name] = manifest.layers;
      sizes[v.name] = manifest.layers.reduce((n, l) => n + l.size, 0);
      results[v.name] = { agent: [], agentSelected: [], curl: [], verifying: [], skopeoUmoci: [], compare: [] };
    }
    const realRows: Record<string, Timed[]> = { gzip: [], chunked: [], estargz: [], skopeoUmoci: [], nodeInflate: [], verifiedInflate: [] };
    // b)'s floors: the gzip image's layer files in its layout, and its layer blobs in the registry
    const realGzipLayers = real ? (await layoutLayers(real.gzip)).map((l) => l.file) : [];
    const realGzipBlobs = real ? (JSON.parse((await run('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json',
      `${reg.url}/v2/real/manifests/gzip`])).stdout) as { layers: { digest: string }[] }).layers.map((l) => `${reg.url}/v2/real/blobs/${l.digest}`) : [];
    const pull = (ref: string, args: string[], d: string, cli = CLI) =>
      timed(process.execPath, [cli, 'image', 'pull', ref, ...args, '--images-dir', d, '--json', '--log-level', 'warn'], { rss: true });
    // every row once per round, interleaved, each into a fresh directory
    for (let round = 1; round <= ROUNDS; round++) {
      for (const v of variants) {
        console.error(`${v.name} round ${round}/${ROUNDS} ...`);
        const r = results[v.name]!;
        const ref = `${reg.host}/bench:${v.tag}`;
        const d = await mkdtemp(path.join(work, 'agent-'));
        r.agent!.push(await pull(ref, ['--all'], d));
        await rm(d, { recursive: true, force: true });
        if (COMPARE) {
          const c = await mkdtemp(path.join(work, 'compare-'));
          r.compare!.push(await pull(ref, ['--all'], c, COMPARE));
          await rm(c, { recursive: true, force: true });
        }
        const s = await mkdtemp(path.join(work, 'agent-sel-'));
        r.agentSelected!.push(await pull(ref, ['--kernel', KVER], s));
        await rm(s, { recursive: true, force: true });

        // the manifest request is part of the job; the plain pipeline takes digests from it and verifies nothing
        const manifestGet = `curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' ${reg.url}/v2/bench/manifests/${v.tag} >/dev/null`;
        const out = await mkdtemp(path.join(work, 'curl-'));
        r.curl!.push(await timed('bash', ['-c', `set -eo pipefail\n${manifestGet}\n${layersOf[v.name]!.map((l) =>
          `curl -sf ${reg.url}/v2/bench/blobs/${l.digest} | ${v.decompress} | tar -x -C ${out}`).join('\n')}`]));
        await rm(out, { recursive: true, force: true });
        // the same work as the agent, digest included: sha256sum reads a copy of the blob on its own core
        const vout = await mkdtemp(path.join(work, 'verify-'));
        r.verifying!.push(await timed('bash', ['-c', `set -eo pipefail\n${manifestGet}\n${layersOf[v.name]!.map((l, i) =>
          `mkfifo ${vout}/f${i}; sha256sum < ${vout}/f${i} > ${vout}/sum${i} & ` +
          `curl -sf ${reg.url}/v2/bench/blobs/${l.digest} | tee ${vout}/f${i} | ${v.decompress} | tar -x -C ${vout}; wait; ` +
          `test "sha256:$(cut -d' ' -f1 ${vout}/sum${i})" = ${l.digest}`).join('\n')}`]));
        await rm(vout, { recursive: true, force: true });

        // Debian's umoci cannot read zstd layers ("blob is not correct mediatype"): that peer runs on gzip only.
        if (v.name === 'gzip') r.skopeoUmoci!.push(await skopeoUmoci(ref, work));
      }
      if (real) {
        console.error(`realistic image round ${round}/${ROUNDS} ...`);
        for (const tag of ['gzip', 'chunked', 'estargz']) {
          const d = await mkdtemp(path.join(work, 'real-'));
          realRows[tag]!.push(await pull(`${reg.host}/real:${tag}`, ['--kernel', REAL_KVER, '--firmware-dir', '/firmware'], d));
          await rm(d, { recursive: true, force: true });
        }
        realRows.skopeoUmoci!.push(await skopeoUmoci(`${reg.host}/real:gzip`, work));
        realRows.nodeInflate!.push(await timed(process.execPath, [path.join(ROOT, 'bench', 'floor', 'inflate-only.mjs'), ...realGzipLayers]));
        realRows.verifiedInflate!.push(await timed(process.execPath, [path.join(ROOT, 'bench', 'floor', 'download-verify-inflate.mjs'), ...realGzipBlobs]));
      }
    }

    // c) the bytes a selective pull makes the registry send, against the image's layer bytes
    const lazyBytes = real ? await selectiveBytes(CLI, reg, 'chunked', work) : NaN;
    const estargzBytes = real ? await selectiveBytes(CLI, reg, 'estargz', work) : NaN;
    const wholeBytes = real ? await selectiveBytes(CLI, reg, 'gzip', work) : NaN;
    const realLayerBytes = real ? { chunked: await layoutLayerBytes(real.chunked), gzip: await layoutLayerBytes(real.gzip) } : undefined;

    // issue 14's F9: 10^5 tiny files through the real CLI
    let manyRun: Timed | undefined;
    let manyInPod: Timed | 'no memory cgroup' | undefined;
    if (many) {
      console.error(`pulling a layer of ${MANY_FILES} files ...`);
      const d = await mkdtemp(path.join(work, 'many-'));
      manyRun = await pull(many, ['--all'], d);
      await rm(d, { recursive: true, force: true });
      // the same inside the pod's memory limit: a failure (the OOM killer) fails the bench
      const limit = await podMemoryLimit();
      if (!limit) manyInPod = 'no memory cgroup';
      else {
        const d2 = await mkdtemp(path.join(work, 'many-'));
        try {
          manyInPod = await timed(limit.prefix[0]!, [...limit.prefix.slice(1), process.execPath, CLI, 'image', 'pull', many, '--all',
            '--images-dir', d2, '--json', '--log-level', 'warn'], { rss: true });
        } finally {
          await rm(d2, { recursive: true, force: true });
          await limit.remove();
        }
      }
    }

    // d) start-up cost of a cache-hit `kmod load` with a stub modprobe
    const load = ONLY ? undefined : await cacheHitLoad(work);

    const med = (xs: Timed[]) => median(xs.map((x) => x.ms));
    const rssOf = (xs: Timed[]) => Math.max(...xs.map((x) => x.maxRssKiB ?? 0)) / 1024;
    const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const rows: string[][] = [];
    const row = (measure: string, agent: string, peer: string, ratio: number, target: number, unit = 'x') =>
      rows.push([measure, agent, peer, `${ratio.toFixed(2)}${unit}`, `≤ ${target}${unit}`, ratio <= target ? 'met' : 'missed']);
    const rss: number[] = [];
    for (const v of variants) {
      const r = results[v.name]!;
      const agent = med(r.agent!);
      const mib = (sizes[v.name]! / MiB).toFixed(0);
      rss.push(rssOf(r.agent!), rssOf(r.agentSelected!));
      if (v.name === 'zstd') {
        row(`a) zstd ${mib} MiB, \`image pull --all\` vs \`curl | tee >(sha256sum) | zstd -dc | tar -x\``, fmt(agent), fmt(med(r.verifying!)), agent / med(r.verifying!), 1.0);
        rows.push(['a) for reference: the same vs `curl | zstd -dc | tar -x` (no digest)', fmt(agent), fmt(med(r.curl!)), `${(agent / med(r.curl!)).toFixed(2)}x`, '', '']);
      } else {
        row(`a') gzip ${mib} MiB, \`image pull --all\` vs \`curl | gzip -dc | tar -x\``, fmt(agent), fmt(med(r.curl!)), agent / med(r.curl!), 1.0);
        row('a\') gzip, the same vs `curl | tee >(sha256sum) | gzip -dc | tar -x`', fmt(agent), fmt(med(r.verifying!)), agent / med(r.verifying!), 1.0);
        row('a\') gzip, the same vs `skopeo copy` + `umoci raw unpack`', fmt(agent), fmt(med(r.skopeoUmoci!)), agent / med(r.skopeoUmoci!), 0.5);
        rows.push(['a\') for reference: `curl | gzip -dc | tar -x` (no digest) vs `skopeo copy` + `umoci raw unpack`', fmt(med(r.curl!)), fmt(med(r.skopeoUmoci!)), `${(med(r.curl!) / med(r.skopeoUmoci!)).toFixed(2)}x`, '', '']);
      }
      if (r.compare!.length) {
        row(`${v.name}: this build vs BENCH_COMPARE, \`image pull --all\``, fmt(agent), fmt(med(r.compare!)), agent / med(r.compare!), 1.0);
      }
    }
    if (real && realLayerBytes) {
      const sk = med(realRows.skopeoUmoci!);
      rss.push(rssOf(realRows.gzip!), rssOf(realRows.chunked!), rssOf(realRows.estargz!));
      row('b) realistic image (gzip), `image pull --kernel K --firmware-dir /firmware` vs skopeo copy + umoci raw unpack', fmt(med(realRows.gzip!)), fmt(sk), med(realRows.gzip!) / sk, 0.25);
      row('b) the same from its zstd:chunked twin (lazy pull) vs skopeo copy + umoci raw unpack (gzip)', fmt(med(realRows.chunked!)), fmt(sk), med(realRows.chunked!) / sk, 0.25);
      row('b) the same from its eStargz twin (lazy pull; ctr-remote images convert --estargz) vs skopeo copy + umoci raw unpack (gzip)', fmt(med(realRows.estargz!)), fmt(sk), med(realRows.estargz!) / sk, 0.25);
      for (const [measure, xs] of [
        ['b) floor (gzip): only inflating its layers, from disk (no download, digest or tar), with Node\'s zlib (bench/floor/inflate-only.mjs)', realRows.nodeInflate!],
        ['b) floor (gzip): downloading its layers from the registry, both digests and inflating, nothing else (no tar, no files; bench/floor/download-verify-inflate.mjs)', realRows.verifiedInflate!],
      ] as const) rows.push([measure, fmt(med(xs)), fmt(sk), `${(med(xs) / sk).toFixed(2)}x`, '', '']);
      row('c) lazy pull (zstd:chunked): bytes the registry sent / the image\'s layer bytes', `${(lazyBytes / MiB).toFixed(1)} MiB`, `${(realLayerBytes.chunked / MiB).toFixed(1)} MiB`, lazyBytes / realLayerBytes.chunked, 0.15, '');
      row('c) lazy pull (eStargz): bytes the registry sent / the image\'s layer bytes', `${(estargzBytes / MiB).toFixed(1)} MiB`, `${(estargzLayerBytes / MiB).toFixed(1)} MiB`, estargzBytes / estargzLayerBytes, 0.15, '');
      rows.push(['c) for reference: the gzip image (no TOC, read whole)', `${(wholeBytes / MiB).toFixed(1)} MiB`, `${(realLayerBytes.gzip / MiB).toFixed(1)} MiB`, (wholeBytes / realLayerBytes.gzip).toFixed(2), '', '']);
    }
    if (load) {
      rss.push(load.rssMiB);
      row(`d) cache-hit \`kmod load\` (stub modprobe; the image built as KMM's docs say, with \`depmod\`) vs \`node -e 0\`, medians of ${load.rounds}`, `${load.load.toFixed(0)} ms`, `${load.node.toFixed(0)} ms`, load.load / load.node, 2.0);
      row('d) the same with the worker image\'s ENV (memory settings preset: no re-execution)', `${load.imageEnv.toFixed(0)} ms`, `${load.node.toFixed(0)} ms`, load.imageEnv / load.node, 2.0);
      const ref = (measure: string, ms: number) => rows.push([measure, `${ms.toFixed(0)} ms`, `${load.node.toFixed(0)} ms`, `${(ms / load.node).toFixed(2)}x`, '', '']);
      ref('d) for reference: an image built without `depmod` (every load copies its kmods and runs depmod)', load.noModulesDep);
      ref('d) floor: a Node program that only runs the load\'s programs (the stub modprobe, modinfo)', load.programsFloor);
      ref('d) floor: the same after loading and using commander, pino and yaml (bundled, compile cache on)', load.librariesFloor);
    }
    if (manyRun) {
      const m = (manyRun.maxRssKiB ?? 0) / 1024;
      rss.push(m);
      rows.push([`e) peak RSS, \`image pull --all\` of one layer of ${MANY_FILES} files (issue 14 F9), ${fmt(manyRun.ms)}`, `${m.toFixed(0)} MiB`, '128 MiB pod limit', '', '≤ 100 MiB', m <= 100 ? 'met' : 'missed']);
      if (manyInPod === 'no memory cgroup') {
        rows.push([`e) the same inside a 128 MiB memory cgroup (the pod's limit)`, 'not measured: no memory cgroup here (needs root)', '', '', '≤ 100 MiB', '']);
      } else if (manyInPod) {
        const p = (manyInPod.maxRssKiB ?? 0) / 1024;
        rows.push([`e) the same inside a 128 MiB memory cgroup (the pod's limit; exit 0, no OOM kill), ${fmt(manyInPod.ms)}`, `${p.toFixed(0)} MiB`, '128 MiB pod limit', '', '≤ 100 MiB', p <= 100 ? 'met' : 'missed']);
      }
    }
    const peak = Math.max(...rss);
    rows.push(['e) peak RSS of every kmm-worker run above', `${peak.toFixed(0)} MiB`, '128 MiB pod limit', '', '≤ 100 MiB', peak <= 100 ? 'met' : 'missed']);

    const report = [
      `medians of ${ROUNDS} interleaved rounds, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`,
      '| measure | kmm-worker | peer | ratio | target | |',
      '|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`),
    ];
    console.log(report.join('\n'));
    await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
    await writeFile(
      path.join(ROOT, 'bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
      JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, sizes, results, realRows, lazyBytes, estargzBytes, estargzLayerBytes, wholeBytes,
        realLayerBytes, manyRun, manyInPod, load, report }, null, 2),
    );
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** `skopeo copy` to an OCI layout + `umoci raw unpack`, into fresh directories. */
async function skopeoUmoci(ref: string, work: string): Promise<Timed> {
  const d = await mkdtemp(path.join(work, 'skopeo-'));
  const t0 = performance.now();
  await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${d}/oci:v1`]);
  await timed('umoci', ['raw', 'unpack', '--image', `${d}/oci:v1`, `${d}/rootfs`]);
  const ms = performance.now() - t0;
  await rm(d, { recursive: true, force: true });
  return { ms };
}

/**
 * d): a cache-hit `kmod load` (bench/cache-hit-load.ts) against `node -e 0`, interleaved: by hand, with the worker
 * image's ENV, and (for reference) of an image without modules.dep; and two floors (bench/floor/): a Node program
 * that only runs the load's programs, and the same after loading commander, pino and yaml.
 */
async function cacheHitLoad(work: string) {
  const h = await prepareCacheHitLoad(path.join(work, 'load'));
  const noDep = await prepareCacheHitLoad(path.join(work, 'load-no-dep'), { modulesDep: false });
  const librariesFloor = path.join(work, 'load-programs-libraries.bundle.mjs');
  await bundleFloor(path.join(ROOT, 'bench', 'floor', 'load-programs-libraries.mjs'), librariesFloor);
  const compileCache = { NODE_COMPILE_CACHE: path.join(os.tmpdir(), 'node-compile-cache') }; // bin/kmm-worker.js's
  const [config, ...programs] = h.programArgs;
  const sample = { loads: [] as Timed[], imageEnv: [] as Timed[], noDep: [] as Timed[], node: [] as Timed[], programs: [] as Timed[], libraries: [] as Timed[] };
  const rounds = 7;
  const loadOnce = async (c: CacheHitLoad, env: NodeJS.ProcessEnv) => {
    const t = await timed(process.execPath, c.load, { env: { ...c.env, ...env }, rss: true });
    await run(process.execPath, c.unload, { env: { ...process.env, ...c.env } });
    return t;
  };
  const floorOnce = async (argv: string[]) => {
    const t = await timed(process.execPath, argv, { env: { ...h.env, ...compileCache }, rss: true });
    await run(process.execPath, h.unload, { env: { ...process.env, ...h.env } });
    return t;
  };
  for (let i = 0; i < rounds; i++) {
    sample.loads.push(await loadOnce(h, {}));
    sample.imageEnv.push(await loadOnce(h, WORKER_IMAGE_ENV));
    sample.noDep.push(await loadOnce(noDep, {}));
    sample.node.push(await timed(process.execPath, ['-e', '0'], { rss: true }));
    sample.programs.push(await floorOnce([path.join(ROOT, 'bench', 'floor', 'load-programs.mjs'), ...programs]));
    sample.libraries.push(await floorOnce([librariesFloor, config!, ...programs]));
  }
  await h.cleanup();
  await noDep.cleanup();
  const med = (xs: Timed[]) => median(xs.map((x) => x.ms));
  return { load: med(sample.loads), imageEnv: med(sample.imageEnv), noModulesDep: med(sample.noDep), node: med(sample.node),
    programsFloor: med(sample.programs), librariesFloor: med(sample.libraries), rounds,
    rssMiB: Math.max(...[...sample.loads, ...sample.imageEnv, ...sample.noDep].map((x) => x.maxRssKiB ?? 0)) / 1024 };
}

/** Bundles a floor script the way scripts/bundle.mjs bundles the CLI (one ESM file with the packages in it). */
async function bundleFloor(entry: string, outfile: string): Promise<void> {
  const { build } = await import('esbuild');
  await build({ entryPoints: [entry], outfile, bundle: true, format: 'esm', platform: 'node', target: 'node22', logLevel: 'warning',
    banner: { js: "import { createRequire as __kmmCreateRequire } from 'node:module'; const require = __kmmCreateRequire(import.meta.url);" } });
}

/** The Containerfile's ENV: the memory settings preset, so bin/kmm-worker.js does not re-execute itself. */
const WORKER_IMAGE_ENV = { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '262144', NODE_OPTIONS: '--max-semi-space-size=1', KMM_WORKER_TUNED: '' };

await main();
