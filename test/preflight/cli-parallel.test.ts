/**
 * Modules are validated concurrently (bounded) and each has its own time limit: 20 Modules behind a registry
 * proxy that delays every manifest by 1 s finish in well under 20 s, and a registry that never answers costs
 * its Module one --timeout, not the whole run.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { CLI, fakeKo, K, moduleCR, publish, runCli, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const work = await tmpDir('parallel');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const reg = await testRegistry(t);
await publish(reg, work, [`kmod/good:${K}`], [{ [`opt/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }, { 'firmware/a.bin': 'a' }]);

/** An HTTP proxy in front of the registry that holds every manifest request for `delayMs`. */
async function delayingProxy(target: string, delayMs: number) {
  let inFlight = 0;
  const stats = { manifests: 0, peak: 0 };
  const server = http.createServer((req, res) => {
    const isManifest = /\/manifests\//.test(req.url ?? '');
    const forward = () => {
      const up = http.request({ host: '127.0.0.1', port: Number(target.split(':')[1]), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on('end', () => {
          if (isManifest) inFlight--;
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (!isManifest) return forward();
    stats.manifests++;
    stats.peak = Math.max(stats.peak, ++inFlight);
    setTimeout(forward, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

t.test('20 Modules, each manifest delayed 1 s: bounded parallel, well under 20 s', async (t) => {
  const proxy = await delayingProxy(reg.host, 1000);
  t.teardown(() => proxy.close());
  const mods = Array.from({ length: 20 }, (_, i) =>
    moduleCR(`m${String(i).padStart(2, '0')}`, { kernelMappings: [{ regexp: '.', containerImage: `${proxy.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }));
  const file = await writeYaml(path.join(work, 'twenty.yaml'), mods);
  const r = await runCli(['preflight', '--kernel', K, '--module', file, '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { modules: { verificationStatus: string }[] };
  t.equal(report.modules.length, 20);
  t.ok(report.modules.every((m) => m.verificationStatus === 'Success'));
  t.ok(proxy.stats.manifests >= 20, `${proxy.stats.manifests} manifest requests, each held 1 s`);
  t.equal(proxy.stats.peak, 8, 'the default --parallel 8 bounds the requests in flight');
  // ~4 s on an idle machine; generous for a loaded CI box, still far from the 20 s of one-at-a-time
  t.ok(r.ms < 12_000, `took ${r.ms} ms (sequential would be >= 20 s)`);
  t.comment(`20 modules behind a 1 s manifest delay: ${r.ms} ms, peak ${proxy.stats.peak} in flight`);

  const wide = await runCli(['preflight', '--kernel', K, '--module', file, '--parallel', '20', '--json']);
  t.equal(wide.code, 0);
  t.equal(proxy.stats.peak, 20, '--parallel 20: all at once');
  t.ok(wide.ms < 12_000, `--parallel 20 took ${wide.ms} ms`);
});

t.test('a registry that never answers costs its Module one --timeout; the others are unaffected', async (t) => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); }); // accepts, never answers
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close(); });
  const hung = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const file = await writeYaml(path.join(work, 'hung.yaml'), [
    moduleCR('hung', { kernelMappings: [{ regexp: '.', containerImage: `${hung}/kmod/x:\${KERNEL_FULL_VERSION}` }] }),
    ...['a', 'b', 'c'].map((n) => moduleCR(n, { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] })),
  ]);
  const r = await runCli(['preflight', '--kernel', K, '--module', file, '--timeout', '2', '--parallel', '2', '--json']);
  t.equal(r.code, 1);
  const report = JSON.parse(r.stdout) as { modules: { name: string; verificationStatus: string; statusReason: string }[] };
  t.same(report.modules.map((m) => [m.name, m.verificationStatus]), [['a', 'Success'], ['b', 'Success'], ['c', 'Success'], ['hung', 'Failure']]);
  t.equal(report.modules[3]!.statusReason, `timed out after 2s checking image ${hung}/kmod/x:${K}`);
  t.ok(r.ms < 8000, `took ${r.ms} ms (the hung registry cost one 2 s timeout, not a stall)`);
});

t.test('SIGINT: the report is still printed, unfinished Modules are InProgress, exit 130', async (t) => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close(); });
  const hung = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const file = await writeYaml(path.join(work, 'interrupted.yaml'), [
    moduleCR('a-done', { kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kmod/good:\${KERNEL_FULL_VERSION}` }] }),
    moduleCR('b-hung', { kernelMappings: [{ regexp: '.', containerImage: `${hung}/kmod/x:1` }] }),
  ]);
  const child = spawn(process.execPath, [CLI, '--log-format', 'json', 'preflight', '--kernel', K, '--module', file, '--json'], {
    env: { ...process.env, NODE_OPTIONS: undefined, KMM_PULL_SECRETS_DIR: '/nonexistent' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    // a-done is verified and b-hung is waiting on its registry: interrupt now
    if (stderr.includes('"module":"default/a-done"') && !child.killed) setTimeout(() => child.kill('SIGINT'), 300);
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  t.equal(code, 130);
  const report = JSON.parse(stdout) as { modules: { name: string; verificationStage: string; verificationStatus: string; statusReason: string }[] };
  t.same(report.modules.map((m) => [m.name, m.verificationStage, m.verificationStatus]), [['a-done', 'Done', 'Success'], ['b-hung', 'Image', 'InProgress']]);
  t.equal(report.modules[1]!.statusReason, 'verification was interrupted before it finished');
});
