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
// Node caches compiled code on disk (in the OS temp dir) and reuses it on the next start: start-up time
// matters for a worker that Day-1 and KMM start once per module. A cache that cannot be written is ignored.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../dist/cli.js');
