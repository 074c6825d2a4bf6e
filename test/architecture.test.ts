/**
 * The import rule of docs/architecture.md: src/ is a stack of layers and a module imports only from layers below
 * its own (or from its own folder). Folders of one layer do not import each other, so no two folders can form a
 * cycle. The loose files at src/'s root of one layer may import each other, without cycles. The table below is
 * the rule; docs/architecture.md explains it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Top to bottom. A unit is a folder of src/ ('commands') or a file at src/'s root ('cli.ts'). */
export const LAYERS: { name: string; units: string[] }[] = [
  { name: 'cli', units: ['cli.ts', 'completion.ts', 'help-examples.ts', 'commands'] },
  { name: 'app', units: ['app'] },
  { name: 'daemon', units: ['daemon'] },
  { name: 'flows', units: ['day1', 'diagnose', 'preflight'] },
  { name: 'worker', units: ['worker'] },
  { name: 'services', units: ['report', 'store'] },
  { name: 'adapters', units: ['extract', 'host'] },
  { name: 'config', units: ['config'] },
  { name: 'formats', units: ['image', 'kmod'] },
  {
    name: 'core',
    units: ['errors.ts', 'log.ts', 'log-format.ts', 'messages.ts', 'bounded-read.ts', 'duration.ts', 'version.ts',
      'stop-guard.ts', 'context.ts', 'progress'],
  },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** `commands/run.ts` → 'commands'; `cli.ts` → 'cli.ts' */
const unitOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!;

/** Every relative import, static or dynamic, type-only or not, of one file: the resolved .ts paths. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith('.'))
    .map((s) => path.resolve(path.dirname(file), s).replace(/\.js$/, '.ts'));
}

const layerIndex = new Map<string, number>();
LAYERS.forEach((l, i) => l.units.forEach((u) => layerIndex.set(u, i)));

const files = sourceFiles(SRC);
const edges = files.flatMap((from) => importsOf(from).map((to) => ({ from, to })));

t.test('every file and folder of src/ belongs to exactly one layer', async (t) => {
  const units = new Set(files.map(unitOf));
  t.same([...units].filter((u) => !layerIndex.has(u)).sort(), [], 'units without a layer: add them to LAYERS');
  t.same([...layerIndex.keys()].filter((u) => !units.has(u)).sort(), [], 'LAYERS names units that do not exist');
  const all = LAYERS.flatMap((l) => l.units);
  t.equal(new Set(all).size, all.length, 'a unit is in one layer only');
});

t.test('imports run one way: down the layers, never up or sideways', async (t) => {
  const wrong: string[] = [];
  for (const { from, to } of edges) {
    const a = unitOf(from);
    const b = unitOf(to);
    if (a === b) continue;
    const la = layerIndex.get(a);
    const lb = layerIndex.get(b);
    if (la === undefined || lb === undefined) continue;
    // the loose files of a layer (cli.ts and its helpers, the core's files) may use each other; the cycle test
    // below still holds them
    if (lb === la && (a.endsWith('.ts') || b.endsWith('.ts'))) continue;
    if (lb <= la) {
      const how = lb === la ? `a sibling in layer '${LAYERS[la]!.name}'` : `layer '${LAYERS[lb]!.name}' above '${LAYERS[la]!.name}'`;
      wrong.push(`${path.relative(SRC, from)} imports ${path.relative(SRC, to)}: ${how}`);
    }
  }
  t.same(wrong, [], 'imports against docs/architecture.md');
});

t.test('no cycle between folders (nor between files of the core)', async (t) => {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    const a = unitOf(from);
    const b = unitOf(to);
    if (a !== b) (graph.get(a) ?? graph.set(a, new Set()).get(a)!).add(b);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (u: string, trail: string[]) => {
    if (state.get(u) === 'done') return;
    if (state.get(u) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(u)), u].join(' → '));
      return;
    }
    state.set(u, 'open');
    for (const v of graph.get(u) ?? []) visit(v, [...trail, u]);
    state.set(u, 'done');
  };
  for (const u of graph.keys()) visit(u, []);
  t.same(cycles, [], 'folder cycles');
});

t.test('the rule sees imports it must refuse', async (t) => {
  // guards the guard: the parser finds static, dynamic and type-only imports
  const info = ts.preProcessFile(
    "import type { A } from '../a.js';\nexport { B } from './b.js';\nconst c = await import('../c/c.js');\n",
    true,
    true,
  );
  t.same(info.importedFiles.map((f) => f.fileName), ['../a.js', './b.js', '../c/c.js']);
});

/** The relative imports a file runs when it is loaded: static ones, without `import type` (erased) and `import()`. */
function staticImportsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^;'"]*?\sfrom\s+)?'(\.[^']+)'/gm)].map((m) => m[1]!);
  return found.map((s) => path.resolve(path.dirname(file), s).replace(/\.js$/, '.ts'));
}

t.test('starting the CLI loads flag declarations only: every command module loads its code when it runs', async (t) => {
  // every start parses the command line with all commands registered; a registration that imported its command's
  // code would add that code (and the packages under it) to the start-up of every other command
  const seen = new Set<string>();
  const queue = [path.join(SRC, 'cli.ts')];
  while (queue.length) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    queue.push(...staticImportsOf(f));
  }
  const below = ['app', 'daemon', 'flows', 'worker', 'services', 'adapters'];
  const heavy = [...seen]
    .filter((f) => below.includes(LAYERS[layerIndex.get(unitOf(f)) ?? 0]!.name))
    .map((f) => path.relative(SRC, f));
  t.same(heavy, [], 'flows, services and adapters loaded at start-up');
  t.ok(seen.has(path.join(SRC, 'commands', 'kmod-command.ts')), 'the walk follows cli.ts into the command modules');
  t.notOk(seen.has(path.join(SRC, 'commands', 'kmod.ts')), "kmod's code is not loaded at start-up");
});
