/**
 * `kmm-worker diagnose` against a host root as a support engineer would run it: a healthy module (live, the
 * image's srcversion), a drifted one (live, another srcversion), a missing one; firmware records, a
 * modprobe.d blacklist, the cache, the registry; the --output bundle, with no secret in it.
 */
import t from 'tap';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeHostRoot } from '../helpers/host-root.js';
import { buildLayout } from '../helpers/images.js';
import { freePort } from '../helpers/registry.js';
import { ensureTestKmods } from '../kmods/kmods.js';
import { inPipe } from './run-cli.js';

const kmods = await ensureTestKmods();
const K = kmods.kver;
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-diag-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));

const srcversion = async (ko: string) => (await execa('modinfo', ['-F', 'srcversion', ko])).stdout.trim();
const hello = await srcversion(kmods.ko.kmm_hello!);

const M = `opt/lib/modules/${K}`;
const img = await buildLayout({
  dir: path.join(work, 'layout'),
  tag: 'v1',
  layers: [{
    [`${M}/kmm_hello.ko`]: await fs.readFile(kmods.ko.kmm_hello!),
    [`${M}/kmm_lib.ko`]: await fs.readFile(kmods.ko.kmm_lib!),
    [`${M}/kmm_standalone.ko`]: await fs.readFile(kmods.ko.kmm_standalone!),
  }],
});
const cache = path.join(work, 'cache');
const pulled = await inPipe(['--images-dir', cache, 'image', 'pull', img.ref, '--kernel', K]);
if (pulled.code !== 0) throw new Error(pulled.stderr);

const host = await makeHostRoot({ kver: K, firmwareClassPath: '/var/lib/firmware' });
t.teardown(() => host.cleanup());
await host.addLoadedModule('kmm_hello', { srcversion: hello });
await host.addLoadedModule('kmm_lib', { srcversion: '0123456789ABCDEF0123456', holders: ['kmm_hello'] });
await fs.writeFile(path.join(host.sysModule('kmm_hello'), 'taint'), 'OE\n');
await fs.mkdir(host.path('var/lib/firmware/.kmm-worker/ns'), { recursive: true });
await fs.writeFile(host.path('var/lib/firmware/.kmm-worker/ns/hello.json'),
  JSON.stringify({ module: 'ns/hello', modules: ['kmm_hello'], files: ['vendor/fw.bin'], dirs: ['vendor'] }));
await fs.mkdir(host.path('etc/modprobe.d'), { recursive: true });
await fs.writeFile(host.path('etc/modprobe.d/local.conf'), '# keep it off\nblacklist kmm_standalone\noptions other x=1\n');
await fs.mkdir(host.path('sys/module/module/parameters'), { recursive: true });
await fs.writeFile(host.path('sys/module/module/parameters/sig_enforce'), 'Y\n');
await fs.mkdir(host.path('sys/kernel/security'), { recursive: true });
await fs.writeFile(host.path('sys/kernel/security/lockdown'), 'none [integrity] confidentiality\n');

// secrets the node has: diagnose must not carry them anywhere
const secrets = path.join(work, 'secrets');
await fs.mkdir(secrets);
await fs.writeFile(path.join(secrets, '.dockerconfigjson'), JSON.stringify({ auths: { 'r.example': { auth: Buffer.from('u:S3cretPassw0rd').toString('base64') } } }));

const config = path.join(work, 'config.yaml');
await fs.writeFile(config, `kernelVersion: ${K}
containerImage: ${img.ref}
modprobe:
  moduleName: kmm_hello
  modulesLoadingOrder: [kmm_hello, kmm_lib, kmm_standalone]
`);
const base = ['--host-root', host.root, '--images-dir', cache, '--pull-secrets-dir', secrets];

interface Report {
  checks: Array<{ check: string; verdict: string; summary: string }>;
  modules: Array<{ name: string; state: string; srcversion?: string; imageSrcversion?: string; taint?: string; holders?: string[] }>;
  security: { lockdown?: string; sigEnforce?: boolean };
  firmware: { classPath: string; records: Array<{ module: string; files: number }> };
  cache: Array<{ reference: string; bytes: number; ageSeconds: number }>;
  registry: { reachable: boolean; digest?: string };
}

t.test('healthy, drifted and missing modules, each with its verdict', async (t) => {
  const r = await inPipe([...base, 'diagnose', config, '--json']);
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as Report;
  const verdict = (c: string) => rep.checks.find((x) => x.check === c);
  t.match(verdict('kernel'), { verdict: 'ok', summary: `running ${K}, as the config says` });
  t.match(verdict('module kmm_hello'), { verdict: 'ok', summary: new RegExp(`srcversion ${hello} is the image's.*taint OE`) });
  t.match(verdict('module kmm_lib'), { verdict: 'fail', summary: /live but not the image's: srcversion 0123456789ABCDEF0123456, the image's [0-9A-F]+.*used by kmm_hello/ });
  t.match(verdict('module kmm_standalone'), { verdict: 'fail', summary: 'not loaded (no /sys/module entry)' });
  t.match(verdict('module signing'), { verdict: 'info', summary: /lockdown integrity, Secure Boot unknown, sig_enforce on: only modules signed/ });
  t.match(verdict('firmware'), { verdict: 'ok', summary: /"\/var\/lib\/firmware"; 1 record/ });
  t.match(verdict('modprobe.d'), { verdict: 'warn', summary: '/etc/modprobe.d/local.conf: blacklist kmm_standalone' });
  t.match(verdict('image cache'), { verdict: 'info', summary: /^1 entry/ });
  t.match(verdict('registry'), { verdict: 'ok', summary: new RegExp(img.digest) });
  t.match(verdict('kernel log'), { verdict: 'info' });
  t.match(rep.modules.find((m) => m.name === 'kmm_hello'), { state: 'loaded', srcversion: hello, imageSrcversion: hello, taint: 'OE' });
  t.match(rep.firmware.records, [{ module: 'ns/hello', files: 1 }]);
  t.equal(rep.cache[0]!.reference, img.ref);
});

t.test('human summary: one verdict line per check and a closing verdict', async (t) => {
  const r = await inPipe([...base, 'diagnose', config]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^OK {4}module kmm_hello /m);
  t.match(r.stdout, /^FAIL {2}module kmm_lib {2,}live but not the image's/m);
  t.match(r.stdout, /^FAIL {2}module kmm_standalone {2,}not loaded/m);
  t.match(r.stdout, /^WARN {2}modprobe\.d /m);
  t.match(r.stdout, /^firmware records:\n {2}\/var\/lib\/firmware\/\.kmm-worker\/ns\/hello\.json: ns\/hello, 1 file/m);
  t.match(r.stdout, /\nverdict: problems found$/);
});

t.test('without a config: the modules KMM installed firmware for', async (t) => {
  const r = await inPipe([...base, 'diagnose', '--json']);
  const rep = JSON.parse(r.stdout) as Report;
  t.same(rep.modules.map((m) => m.name), ['kmm_hello']);
  t.match(rep.checks.find((c) => c.check === 'module kmm_hello'), { verdict: 'info', summary: /no image to compare with/ });
  t.notOk(rep.registry, 'no image, no registry check');
});

t.test('an unreachable registry is a failed check, not a failed command', async (t) => {
  const dead = await freePort();
  const cfg = path.join(work, 'dead.yaml');
  await fs.writeFile(cfg, `kernelVersion: ${K}\ncontainerImage: 127.0.0.1:${dead}/kmod:v1\nmodprobe:\n  moduleName: kmm_hello\n`);
  const r = await inPipe([...base, 'diagnose', cfg]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^FAIL {2}registry +registry 127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`, 'm'));
  t.match(r.stdout, /^WARN {2}image cache +1 entry.*; none for 127/m);
  const off = await inPipe([...base, 'diagnose', cfg, '--no-registry', '--json']);
  t.notOk((JSON.parse(off.stdout) as Report).registry);
});

t.test('--output writes a .tar.gz bundle for a ticket, without secrets; the host is untouched', async (t) => {
  const before = (await execa('find', [host.root, '-printf', '%p %s %T@\n'])).stdout;
  const out = path.join(work, 'bundle.tar.gz');
  const r = await inPipe([...base, '--auth-file', path.join(secrets, '.dockerconfigjson'), 'diagnose', config, '--output', out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /support bundle written/);
  const list = (await execa('tar', ['-tzf', out])).stdout.split('\n').sort();
  t.same(list, ['kmm-diagnose/dmesg.txt', 'kmm-diagnose/modprobe.d.txt', 'kmm-diagnose/report.json', 'kmm-diagnose/summary.txt']);
  const all = (await execa('tar', ['-xzOf', out])).stdout;
  t.match(all, /blacklist kmm_standalone/);
  t.notMatch(all, /S3cretPassw0rd|dTpTM2NyZXRQYXNzdzByZA/, 'no secret in the bundle');
  t.notMatch(r.stdout + r.stderr, /S3cretPassw0rd|dTpTM2NyZXRQYXNzdzByZA/, 'nor in the output');
  t.equal((await execa('find', [host.root, '-printf', '%p %s %T@\n'])).stdout, before, 'nothing under the host root changed');
  const bad = await inPipe([...base, 'diagnose', config, '--output', path.join(work, 'bundle.zip')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--output must name a \.tar\.gz/);
});
