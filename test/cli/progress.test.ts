/**
 * Pull progress as a user sees it: on a terminal a live line that log lines are printed above and that is
 * gone at the end; off a terminal, periodic progress log lines.
 */
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildLayout } from '../helpers/images.js';
import { onTerminal, inPipe } from './run-cli.js';
import { render } from './screen.js';
import { formatProgress, progressReporter } from '../../src/store/progress.js';
import { pino } from 'pino';

async function bigImage(t: { teardown: (f: () => Promise<void>) => void }) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-progress-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  // incompressible, so the compressed layers are big enough for several progress updates
  const img = await buildLayout({
    dir: path.join(dir, 'layout'),
    tag: 'v1',
    layers: [{ 'opt/lib/modules/6.1.0/a.ko': crypto.randomBytes(24 << 20) }, { 'firmware/fw.bin': crypto.randomBytes(8 << 20) }],
  });
  return { img, cache: path.join(dir, 'cache') };
}

t.test('on a terminal: a live progress line, log lines above it, nothing left at the end', async (t) => {
  const { img, cache } = await bigImage(t);
  const r = await onTerminal(['--images-dir', cache, 'image', 'pull', img.ref, '--all']);
  t.equal(r.code, 0, r.screen);
  t.match(r.screen, /layer 1\/2 {2}[\d.]+\/32\.0 MiB {2}[\d.]+ MiB\/s {2}ETA /, 'the live line was shown with layer, bytes, rate, ETA');
  const screen = render(r.screen).filter(Boolean);
  const extracted = screen.filter((l) => l.includes('layer extracted'));
  t.equal(extracted.length, 2, screen.join('\n'));
  for (const l of extracted) t.notMatch(l, /MiB\/s|ETA/, 'no progress text inside a log line');
  t.notOk(screen.some((l) => /MiB\/s {2}ETA/.test(l)), 'the live line is gone from the screen at the end');
  t.match(screen.at(-1), /files, \d+ bytes/, 'the result is the last thing on the screen');
});

t.test('off a terminal: no live line, only log lines', async (t) => {
  const { img, cache } = await bigImage(t);
  const r = await inPipe(['--images-dir', cache, 'image', 'pull', img.ref, '--all']);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /\x1b\[/, 'no terminal control');
  t.match(r.stderr, /^INFO {2}layer extracted layer=1\/2 /m);
});

t.test('off a terminal: a progress log line every interval while bytes are still to come', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({}, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const r = progressReporter(undefined, log, 'r.example/kmod:v1', { everyMs: 40 })!;
  const p = { index: 1, count: 2, digest: 'sha256:' + 'a'.repeat(64), received: 0, size: 1000, before: 0, total: 3000 };
  r.update({ ...p, received: 500 });
  await new Promise((res) => setTimeout(res, 130));
  r.update({ ...p, index: 2, before: 1000, received: 1000, size: 2000 });
  await new Promise((res) => setTimeout(res, 60));
  r.done();
  const n = lines.length;
  await new Promise((res) => setTimeout(res, 100));
  t.equal(lines.length, n, 'nothing after done');
  t.ok(n >= 3, `${n} lines`);
  t.match(lines[0], { msg: 'pull in progress', image: 'r.example/kmod:v1', layer: '1/2', received: 500, total: 3000 });
  t.match(lines.at(-1), { layer: '2/2', received: 2000 });
  t.type(lines[0]!.etaSeconds, 'number');
});

t.test('the live line text', async (t) => {
  const p = { index: 2, count: 3, digest: 'sha256:' + '0'.repeat(64), received: 50 << 20, size: 100 << 20, before: 50 << 20, total: 200 << 20 };
  t.equal(formatProgress(p, 4000, 'r/kmod:v1'), 'r/kmod:v1  layer 2/3  100.0/200.0 MiB  25.0 MiB/s  ETA 4s');
  t.equal(formatProgress({ ...p, received: 0, before: 0 }, 0), 'layer 2/3  0.0/200.0 MiB  0.0 MiB/s  ETA --');
});
