/**
 * Issue 14, rows F4/F9 on the `oci:` layout side: a layout is input like any other. A FIFO in place of
 * index.json or of a blob, an oversized index, and a deeply nested one are exit 1 with one line, at once.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ociLayout, rawTar } from '../helpers/hostile-layers.js';
import { cli, errorLine } from './cli.js';

async function layout(t: Test) {
  const base = await mkdtemp(path.join(os.tmpdir(), 'kmm-layout-limits-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const dir = path.join(base, 'layout');
  await ociLayout(dir, 'v1', [rawTar([{ name: 'opt/lib/modules/6.1.0/m.ko', body: 'ko' }])]);
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
  const manifestFile = path.join(dir, 'blobs', ...index.manifests[0].digest.split(':'));
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  const blob = (d: string) => path.join(dir, 'blobs', ...d.split(':'));
  return { base, dir, images: path.join(base, 'images'), manifestFile, layerFile: blob(manifest.layers[0].digest), configFile: blob(manifest.config.digest) };
}

async function toFifo(file: string) {
  await rm(file);
  await execa('mkfifo', [file]);
}

async function pullFails(t: Test, l: { dir: string; images: string }, line: RegExp, label: string) {
  const started = Date.now();
  const r = await cli(['image', 'pull', `oci:${l.dir}:v1`, '--all', '--images-dir', l.images]);
  const ms = Date.now() - started;
  t.equal(r.code, 1, `${label}: exit 1`, { stderr: r.stderr.slice(0, 2000) });
  t.match(errorLine(r.stderr), line, `${label}: ${errorLine(r.stderr).slice(0, 300)}`);
  t.ok(errorLine(r.stderr).length < 400, `${label}: one short line`);
  t.ok(ms < 20_000, `${label}: took ${ms} ms`);
}

t.test('F4: a FIFO as index.json, manifest, config or layer blob fails the pull at once', async (t) => {
  for (const which of ['index', 'manifest', 'config', 'layer'] as const) {
    const l = await layout(t);
    const file = { index: path.join(l.dir, 'index.json'), manifest: l.manifestFile, config: l.configFile, layer: l.layerFile }[which];
    await toFifo(file);
    await pullFails(t, l, /is a FIFO, not a regular file/, which);
  }
});

t.test('F9: an index.json over 4 MiB, or nested deeper than 64 levels, is refused without being parsed', async (t) => {
  const big = await layout(t);
  const index = JSON.parse(await readFile(path.join(big.dir, 'index.json'), 'utf8'));
  index.annotations = { padding: 'x'.repeat(5 * 1024 * 1024) };
  await writeFile(path.join(big.dir, 'index.json'), JSON.stringify(index));
  await pullFails(t, big, /index\.json: is larger than the 4 MiB allowed/, 'big index');

  const deep = await layout(t);
  await writeFile(path.join(deep.dir, 'index.json'), `{"schemaVersion":2,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
  await pullFails(t, deep, /index\.json: nests arrays\/objects deeper than 64 levels/, 'deep index');

  // a layout that fits is still pulled
  const ok = await layout(t);
  const r = await cli(['image', 'pull', `oci:${ok.dir}:v1`, '--all', '--images-dir', ok.images]);
  t.equal(r.code, 0, 'a normal layout pulls', { stderr: r.stderr.slice(0, 2000) });
});
