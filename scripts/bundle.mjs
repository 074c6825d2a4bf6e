// Bundles the compiled CLI (dist/cli.js and the command modules it loads lazily) with the packages it needs at
// start-up into a few files in dist/: a cache-hit `kmod load` otherwise resolves and compiles ~340 modules
// (execa alone ~150), which was most of its start-up time (docs/cache.md, "Cold start"). Code splitting keeps
// the lazy loading: a command's own chunk is read only when it runs. Packages that locate files of their own
// at run time (undici's internals, the Kubernetes client, pino-pretty) stay in node_modules. bin/kmm-worker.js
// runs the bundle when it exists, dist/cli.js otherwise. Run after tsc (npm run build).
import { build } from 'esbuild';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const EXTERNAL = /^(undici|@kubernetes\/client-node|pino-pretty|log-update)(\/|$)/;

for (const f of existsSync(dist) ? readdirSync(dist) : []) {
  if (f.startsWith('bundle-') || f.startsWith('kmm-worker.bundle')) rmSync(path.join(dist, f));
}
await build({
  entryPoints: { 'kmm-worker.bundle': path.join(dist, 'cli.js') },
  outdir: dist,
  // chunks beside dist/cli.js, so that `new URL('../package.json', import.meta.url)` still finds the package
  chunkNames: 'bundle-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  logLevel: 'warning',
  // CommonJS packages (pino) call require() for Node's modules: give the ESM bundle a real one
  banner: { js: "import { createRequire as __kmmCreateRequire } from 'node:module'; const require = __kmmCreateRequire(import.meta.url);" },
  plugins: [{
    name: 'external-packages',
    setup(b) {
      b.onResolve({ filter: EXTERNAL }, (args) => ({ path: args.path, external: true }));
    },
  }],
});
