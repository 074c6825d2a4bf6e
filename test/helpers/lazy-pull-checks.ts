/**
 * The checks every lazy-pullable format must pass (test/extract/lazy-pull.test.ts for zstd:chunked,
 * lazy-estargz.test.ts for eStargz), against a real registry behind counting front servers.
 */
import type { Test } from 'tap';
import { mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { frontServer, type FrontServer } from './fault-proxy.js';
import type { LayerDescriptor } from './layout-edit.js';
import type { TestRegistry } from './registry.js';
import { cli, fingerprint } from '../store/fixtures.js';

export interface LazyPullSetup {
  /** a front server that passes Range requests on, and one that answers them with the whole blob */
  front: FrontServer;
  ignoring: FrontServer;
  /** `image pull <host>/<repo>:<tag> <args>` into a fresh images dir */
  pull(host: string, tag: string, args: string[]): Promise<{ code: number | null; stderr: string; dir: string; root: string }>;
  /** the selective pull's flags, and the lines of a tree's fingerprint they select */
  selective: string[];
  selected(fingerprint: string[]): string[];
  /** the image's layer bytes, and each layer's digest with the TOC checksum its annotation carries */
  layerBytes: number;
  tocs: string[][];
}

/**
 * The front servers (closed at `t`'s end) and the pull of `<repo>:<tag>` for an image whose kmod layer holds
 * `opt/lib/modules/<kver>/` and `firmware/vendor/`, and whose layers carry their TOC checksum in `tocAnnotation`.
 */
export async function lazyPullSetup(t: Test, o: { reg: TestRegistry; work: string; repo: string; kver: string;
  layers: LayerDescriptor[]; tocAnnotation: string }): Promise<LazyPullSetup> {
  const front = await frontServer(o.reg.url, () => undefined);
  t.teardown(() => front.close());
  const ignoring = await frontServer(o.reg.url, () => undefined, '127.0.0.1', { ignoreRange: true });
  t.teardown(() => ignoring.close());
  const modules = `opt/lib/modules/${o.kver}/`;
  return {
    front,
    ignoring,
    async pull(host, tag, args) {
      const dir = await mkdtemp(path.join(o.work, 'images-'));
      const res = await cli(['image', 'pull', `${host}/${o.repo}:${tag}`, ...args, '--images-dir', dir, '--json', '--insecure']);
      return { ...res, dir, root: res.code === 0 ? (JSON.parse(res.stdout) as { root: string }).root : '' };
    },
    selective: ['--kernel', o.kver, '--firmware-dir', '/firmware/vendor'],
    selected: (fp) => fp.filter((l) => l.startsWith(modules) || l.startsWith('firmware/vendor/')),
    layerBytes: o.layers.reduce((n, l) => n + l.size, 0),
    tocs: o.layers.map((l) => [l.digest, l.annotations![o.tocAnnotation]!]),
  };
}

const infoLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string });

/** A selective pull writes exactly the selected files of the full pull, and fetches far fewer bytes. */
export async function selectivePullIsLazy(t: Test, s: LazyPullSetup): Promise<void> {
  let before = s.front.bodyBytes();
  const full = await s.pull(s.front.host, 'v1', ['--all']);
  t.equal(full.code, 0, full.stderr);
  const fullBytes = s.front.bodyBytes() - before;
  t.ok(fullBytes >= s.layerBytes, `the full pull read every layer (${fullBytes} >= ${s.layerBytes})`);

  before = s.front.bodyBytes();
  const lazy = await s.pull(s.front.host, 'v1', s.selective);
  t.equal(lazy.code, 0, lazy.stderr);
  const lazyBytes = s.front.bodyBytes() - before;
  const want = s.selected(await fingerprint(full.root));
  t.ok(want.some((l) => l.includes('kmm_big.ko')) && want.some((l) => l.includes('fw.bin')), 'the selection is not empty');
  t.same((await fingerprint(lazy.root)).filter((l) => !l.endsWith('/')), want.filter((l) => !l.endsWith('/')),
    'the same files, byte for byte');
  t.comment(`bytes the registry sent: full pull ${fullBytes}, selective lazy pull ${lazyBytes}, layers ${s.layerBytes}`);
  t.ok(lazyBytes < s.layerBytes * 0.5, `bytes sent ${lazyBytes} < half of the layers' ${s.layerBytes}`);
  t.notOk(infoLines(lazy.stderr).some((l) => /reading whole layers/.test(l.msg)), 'no fallback line');
  const meta = JSON.parse(await readFile(path.join(path.dirname(lazy.root), 'meta.json'), 'utf8')) as
    { lazyLayers?: { digest: string; toc: string }[] };
  t.same(meta.lazyLayers?.map((l) => [l.digest, l.toc]), s.tocs, 'the entry records what proved each layer: its TOC checksum');
}

/** A registry that ignores Range: a whole-layer pull, the same files, one info line. */
export async function ignoredRangeReadsWhole(t: Test, s: LazyPullSetup): Promise<void> {
  const before = s.ignoring.bodyBytes();
  const res = await s.pull(s.ignoring.host, 'v1', s.selective);
  t.equal(res.code, 0, res.stderr);
  t.ok(s.ignoring.bodyBytes() - before >= s.layerBytes, 'every layer was read whole');
  const lines = infoLines(res.stderr).filter((l) => /reading whole layers/.test(l.msg));
  t.same(lines.map((l) => [l.level, l.reason]), [[30, 'the registry ignores Range requests']], 'one info line, at info');
  const lazy = await s.pull(s.front.host, 'v1', s.selective);
  t.same(await fingerprint(res.root), await fingerprint(lazy.root));
}
