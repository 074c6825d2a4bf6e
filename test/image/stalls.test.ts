/**
 * A registry or network that stalls (issue 14 F3): hangs before and after the headers, slow-loris bodies,
 * 5xx/429 storms, resets and truncation, and the whole-operation deadline. The registry behind the fault proxy
 * is the real docker-registry.
 */
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { frontServer, type Fault } from '../helpers/fault-proxy.js';
import { openImage } from '../../src/image/open.js';
import { netLimitsFromEnv } from '../../src/image/net-limits.js';
import { parseTimeout } from '../../src/image/deadline.js';
import { cli, errorLine } from './cli.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-stalls-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));

// tests cannot wait 30 s per stall: 1 s windows, the same code paths
const FAST_LIMITS = { KMM_NET_LIMITS: 'headers=1000,window=1000,rate=1024' };

t.test('F3: stalls fail each attempt, are retried like resets, and end in one line', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const big = await buildLayout({ dir: path.join(work, 'oci'), tag: 'big', layers: [...kmodLayers('6.1.0-big'),
    { 'firmware/big.bin': crypto.randomBytes(256 << 10) }] });
  await pushImage(big, reg, 'kmod:big');
  const opened = await openImage(`${reg.host}/kmod:big`);
  const blob = opened.layers[2]!;
  const onBlob = (fault: Fault, times = Infinity) => {
    let n = 0;
    return (req: http.IncomingMessage): Fault | undefined =>
      req.method === 'GET' && req.url!.endsWith(`/blobs/${blob.digest}`) && n++ < times ? fault : undefined;
  };
  const run = async (front: { host: string }, args: string[] = []) => {
    const start = Date.now();
    const r = await cli(['--images-dir', path.join(work, `images-${crypto.randomUUID()}`), 'image', 'pull',
      `${front.host}/kmod:big`, '--all', ...args], FAST_LIMITS);
    return { ...r, ms: Date.now() - start };
  };

  t.test('slow-loris: a body below the minimum rate', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'slow', bytesPerSecond: 100 }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest} \\(at byte \\d+ of ` +
      `${blob.size}\\) failed after 5 tries: received \\d+ bytes in 1 s from ${front.host} \\(less than 1 KiB/s\\)$`));
    t.equal(front.requests.filter((q) => q.url.endsWith(blob.digest)).length, 5, 'retried (resumed) like a reset');
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a hang after the headers', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-after-headers' }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest} \\(at byte 0 of ` +
      `${blob.size}\\) failed after 5 tries: received 0 bytes in 1 s from ${front.host} \\(less than 1 KiB/s\\)$`));
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a hang before the headers', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-before-headers' }));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.match(errorLine(r.stderr), new RegExp(`^(layer ${blob.digest}: )?registry ${front.host}: download of blob ` +
      `${blob.digest} failed after 4 tries: no response headers from ${front.host} within 1 s$`));
    t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
  });

  t.test('a manifest that stalls after its headers', async (t) => {
    const front = await frontServer(reg.url, (req) => req.method === 'GET' && req.url!.includes('/manifests/')
      ? { fault: 'hang-after-headers', afterBytes: 10 } : undefined);
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `registry ${front.host}: manifest of ${front.host}/kmod:big failed after 4 tries: ` +
      `received 10 bytes in 1 s from ${front.host} (less than 1 KiB/s)`);
  });

  t.test('a stall that passes: resumed and complete', async (t) => {
    const front = await frontServer(reg.url, onBlob({ fault: 'hang-after-headers', afterBytes: 70_000 }, 1));
    t.teardown(() => front.close());
    const r = await run(front);
    t.equal(r.code, 0, errorLine(r.stderr));
    t.match(r.stderr, /blob download interrupted; resuming/);
    t.equal(front.requests.filter((q) => q.url.endsWith(blob.digest)).length, 2);
  });

  t.test('5xx/429 storm, resets and truncation at any byte still end in one line, in bounded time', async (t) => {
    for (const fault of [{ status: 503 }, { status: 429, headers: { 'retry-after': '0' } }, { fault: 'reset', afterBytes: 1 },
      { fault: 'truncate', afterBytes: 5000 }] as const) {
      const front = await frontServer(reg.url, onBlob(fault as Fault));
      const r = await run(front);
      await front.close();
      t.equal(r.code, 1, JSON.stringify(fault));
      t.match(errorLine(r.stderr), new RegExp(`^(image [^ ]+: )?(layer ${blob.digest}: )?registry ${front.host}: download of blob ${blob.digest}.* failed (with HTTP \\d+ )?after \\d tries`));
      t.ok(r.ms < 20_000, `bounded time (${r.ms} ms)`);
    }
  });

  t.test('--timeout: the whole pull has a deadline', async (t) => {
    // fast enough for the rate guard (4 KiB/s), far too slow for 256 KiB in 3 s
    const front = await frontServer(reg.url, onBlob({ fault: 'slow', bytesPerSecond: 4096 }));
    t.teardown(() => front.close());
    const images = path.join(work, 'images-deadline');
    const start = Date.now();
    const r = await cli(['--images-dir', images, 'image', 'pull', `${front.host}/kmod:big`, '--all', '--timeout', '3s'],
      FAST_LIMITS);
    const ms = Date.now() - start;
    t.equal(r.code, 1);
    t.equal(errorLine(r.stderr), `image ${front.host}/kmod:big: pull did not finish within 3s (--timeout)`);
    t.ok(ms < 9000, `stopped soon after the deadline (${ms} ms)`);
    const entries = await fs.readdir(path.join(images, 'entries')).catch(() => []);
    t.same(entries, [], 'no cache entry, complete or partial, is left');
    const inspect = await cli(['image', 'inspect', `${front.host}/kmod:big`, '--timeout', '2s'], FAST_LIMITS);
    t.equal(inspect.code, 1);
    t.equal(errorLine(inspect.stderr), `image ${front.host}/kmod:big: inspect did not finish within 2s (--timeout)`);
    const bad = await cli(['image', 'pull', `${front.host}/kmod:big`, '--all', '--timeout', '0s']);
    t.equal(bad.code, 2);
    t.equal(errorLine(bad.stderr), `--timeout must be longer than 0s, got '0s'`);
  });

  t.test('the real defaults are wired: 30 s for headers, 1 KiB/s over 30 s, 10 min per pull', async (t) => {
    t.same(netLimitsFromEnv({}), { headersMs: 30_000, windowMs: 30_000, minBytesPerSecond: 1024 });
    t.equal(parseTimeout(undefined), 600_000);
    const r = await cli(['image', 'inspect', `${reg.host}/kmod:big`]);
    t.equal(r.code, 0, errorLine(r.stderr));
    const line = r.stderr.split('\n').find((l) => l.includes('registry client time limits'));
    t.match(JSON.parse(line ?? '{}'), { headersTimeoutMs: 30_000, stallWindowMs: 30_000, minBytesPerSecond: 1024 });
    for (const cmd of ['pull', 'inspect']) {
      const help = await cli(['image', cmd, '--help']);
      t.match(help.stdout, /--timeout <duration>.*\(default: "10m"\)/s, `image ${cmd} --help`);
    }
    const bad = await cli(['image', 'inspect', `${reg.host}/kmod:big`], { KMM_NET_LIMITS: 'window=soon' });
    t.equal(bad.code, 2);
  });
});

