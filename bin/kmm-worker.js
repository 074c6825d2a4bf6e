#!/usr/bin/env node
// Thin launcher so `npx kmm-worker` and the package `bin` run the compiled CLI. It refuses an old Node with one
// clear line: undici and the zstd layers need Node >= 22.19 (npm ci brings Node 24 into node_modules/.bin).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `kmm-worker: Node.js >= 22.19 is required, this is ${process.version} (${process.execPath}); ` +
      'run it through npx/npm (which use the Node 24 of node_modules) or install Node 24\n',
  );
  process.exit(2);
}
// Memory: a worker pod has 128 MiB, and an image pull streams hundreds of MiB through this process. Three
// settings that only take effect at process start are applied by replacing this process once (execve: same
// pid, no wrapper left behind), unless the user chose them already. Measured on a 450 MiB zstd pull from a
// loopback registry: peak RSS 122 -> 96 MiB, same wall time, 15 ms more start-up.
// - MALLOC_ARENA_MAX=1: the decompressors' buffers (zstd's 8 MiB window per layer) are allocated in thread-pool
//   threads; each thread's own malloc arena kept its freed window resident.
// - MALLOC_MMAP_THRESHOLD_: 256 KiB chunks (decompression output) come from mmap and go back to the system when
//   freed, instead of fragmenting the heap (glibc otherwise raises the threshold after the first free).
// - --max-semi-space-size=1 (MiB): a young generation of 1 MiB instead of up to 16 MiB; stream chunks die young.
const TUNED = 'KMM_WORKER_TUNED';
if (process.env[TUNED] === undefined && typeof process.execve === 'function') {
  const env = { ...process.env };
  const added = [];
  for (const [name, value] of [['MALLOC_ARENA_MAX', '1'], ['MALLOC_MMAP_THRESHOLD_', String(256 * 1024)]]) {
    if (env[name] === undefined) {
      env[name] = value;
      added.push(name);
    }
  }
  env[TUNED] = added.join(',');
  const given = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`;
  const flags = /--max-semi-space-size/.test(given) ? [] : ['--max-semi-space-size=1'];
  try {
    process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], env);
  } catch {
    // cannot re-execute (unusual sandbox): run untuned
  }
}
// The tuning is for this process only: modprobe and the other programs it runs get the environment as given.
for (const name of (process.env[TUNED] ?? '').split(',').filter(Boolean)) delete process.env[name];
delete process.env[TUNED];
// Node caches compiled code on disk (in the OS temp dir) and reuses it on the next start: start-up time
// matters for a worker that Day-1 and KMM start once per module. A cache that cannot be written is ignored.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
// The bundle of dist/ (scripts/bundle.mjs) starts faster than its ~340 modules; dist/cli.js when there is none.
// The program is main(); importing either runs nothing.
const { existsSync } = await import('node:fs');
const bundle = new URL('../dist/kmm-worker.bundle.js', import.meta.url);
const { main } = await import(existsSync(bundle) ? bundle.href : '../dist/cli.js');
await main(process.argv);
