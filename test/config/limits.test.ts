/**
 * Issue 14, rows F4/F5/F6/F9 on the config side: what a node's config file can do to the worker. Every case
 * is exit 2 with one line naming the problem, quickly, and nothing on the host touched (the in-tree module
 * stays, no firmware is installed, modprobe never runs).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeEnv, type Env } from '../worker/fixtures.js';

async function env(t: Test): Promise<{ e: Env; base: string }> {
  const e = await makeEnv({ modules: ['kmm_hello'], firmware: { 'fw.bin': 'fw' } });
  t.teardown(e.cleanup);
  await e.host.addLoadedModule('kmm_in_tree');
  return { e, base: `kernelVersion: ${e.kmods.kver}\ncontainerImage: registry.example/kmm/hello:v1\n` };
}

/** Runs a load that must be refused, and checks the host is untouched. */
async function refused(t: Test, e: Env, args: string[], line: RegExp, label: string) {
  const started = Date.now();
  const r = await e.cli(args);
  const ms = Date.now() - started;
  t.equal(r.code, 2, `${label}: exit 2`, { stderr: r.stderr.slice(0, 2000) });
  t.equal(r.errors.length, 1, `${label}: one error line`);
  t.match(r.errors[0] ?? '', line, `${label}: ${(r.errors[0] ?? '').slice(0, 300)}`);
  t.ok((r.errors[0] ?? '').length < 400, `${label}: the line is short (${(r.errors[0] ?? '').length} chars)`);
  t.notMatch(r.stderr, /\x1b/, `${label}: no escape character reaches the log`);
  t.ok(ms < 20_000, `${label}: took ${ms} ms`);
  t.same(await e.argv(), [], `${label}: modprobe never ran`);
  t.same(await e.host.loadedModules(), ['kmm_in_tree'], `${label}: the in-tree module is still loaded`);
  t.same(await readdir(e.host.path('/var/lib/firmware')).catch(() => []), [], `${label}: no firmware installed`);
}

const inTree = 'inTreeModulesToRemove: [kmm_in_tree]\n';
const modprobe = (extra = '') => `modprobe: {moduleName: kmm_hello, firmwarePath: /firmware${extra}}\n`;

t.test('F4/F9: a FIFO, a device or an oversized file as the config is exit 2 at once', async (t) => {
  const { e, base } = await env(t);
  const fifo = join(e.work, 'fifo.yaml');
  await execa('mkfifo', [fifo]);
  for (const dry of [[], ['--dry-run']]) {
    await refused(t, e, [...dry, 'kmod', 'load', fifo], /^cannot read config .*fifo\.yaml: is a FIFO, not a regular file$/, `FIFO ${dry.join('')}`);
  }
  await refused(t, e, ['kmod', 'unload', fifo], /is a FIFO/, 'FIFO unload');
  const urandom = join(e.work, 'urandom.yaml');
  await symlink('/dev/urandom', urandom);
  await refused(t, e, ['kmod', 'load', urandom], /urandom\.yaml: is a character device, not a regular file$/, '/dev/urandom');
  const big = await e.config(`${base}${inTree}${modprobe()}# ${'x'.repeat(1024 * 1024)}\n`);
  await refused(t, e, ['kmod', 'load', big], /is larger than the 1 MiB allowed$/, '1 MiB + config');
  const deep = await e.config(`${base}${inTree}modprobe: {moduleName: kmm_hello}\nx: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
  await refused(t, e, ['kmod', 'load', deep], /nested too deeply|not valid YAML|is not a known field/, 'deep nesting');
});

t.test('F5: lengths and counts are checked as the kernel does, before any host change', async (t) => {
  const { e, base } = await env(t);
  const params = (n: number, len = 3) => `, parameters: [${Array.from({ length: n }, (_, i) => `p${i}=${'v'.repeat(len)}`).join(', ')}]`;
  const cases: [string, string, RegExp][] = [
    ['2,000 parameters', `${base}${inTree}${modprobe(params(2000))}`, /^modprobe\.parameters has 2000 items; at most 1000/],
    ['200,000 parameters', `${base}${inTree}${modprobe(params(200_000))}`, /larger than the 1 MiB allowed|has 200000 items/],
    ['parameters over the argv bound', `${base}${inTree}${modprobe(params(40, 2000))}`, /^modprobe parameters and arguments add up to \d+ bytes; at most 65536/],
    ['10,000-char kernelVersion', `kernelVersion: 6.1.0-${'x'.repeat(9_994)}\ncontainerImage: registry.example/kmm/hello:v1\n${inTree}${modprobe()}`, /^kernelVersion '6\.1\.0-x{74}\.\.\.' is 10000 bytes long; a kernel release has at most 64/],
    ['100,000-char moduleName', `${base}${inTree}modprobe: {moduleName: ${'m'.repeat(100_000)}}\n`, /^modprobe\.moduleName 'm{80}\.\.\.' is 100000 bytes long; the kernel allows module names of at most 55/],
    ['56-byte in-tree module', `${base}inTreeModulesToRemove: [${'a'.repeat(56)}]\n${modprobe()}`, /^inTreeModulesToRemove\[0\] .* at most 55/],
    ['long modulesLoadingOrder name', `${base}modprobe: {moduleName: kmm_hello, modulesLoadingOrder: [kmm_hello, ${'b'.repeat(60)}]}\n`, /^modprobe\.modulesLoadingOrder\[1\] .* at most 55/],
  ];
  for (const [label, text, line] of cases) {
    const cfg = await e.config(text);
    await refused(t, e, ['kmod', 'load', cfg], line, label);
    t.notMatch((await e.cli(['kmod', 'load', cfg])).errors[0] ?? '', /--module-name/, `${label}: does not blame a flag never given`);
  }
  // the limits themselves are accepted: a 55-byte name parses (and fails later only because no such .ko exists)
  const ok = await e.cli(['--dry-run', 'kmod', 'load', await e.config(`${base}modprobe: {moduleName: kmm_hello, parameters: [a=1]}\n`)]);
  t.equal(ok.code, 0, 'a normal config still loads under --dry-run', { stderr: ok.stderr.slice(0, 2000) });
});

t.test('F6: containerImage is validated even when the shared dir holds the kmods', async (t) => {
  const { e } = await env(t);
  const kver = e.kmods.kver;
  for (const [label, ref, line] of [
    ['URL scheme', 'HTTP://Evil/Repo', /^containerImage is not a valid image reference: .*must not have a URL scheme/],
    ['ANSI escapes', 'registry.example/\x1b[31mred\x1b[0m:v1', /^containerImage 'registry\.example\/\\x1b\[31mred\\x1b\[0m:v1' contains control characters/],
    ['uppercase repository', 'registry.example/Kmm/Hello:v1', /^containerImage is not a valid image reference/],
    ['bad tag', 'registry.example/kmm/hello:v1:v2', /^containerImage is not a valid image reference/],
  ] as const) {
    const cfg = await e.config(`kernelVersion: ${kver}\ncontainerImage: ${JSON.stringify(ref)}\n${inTree}${modprobe()}`);
    await refused(t, e, ['kmod', 'load', cfg], line, label);
  }
});

t.test('F4/F9: a FIFO, a device or an oversized file as --auth-file is exit 2 at once', async (t) => {
  const { e } = await env(t);
  const fifo = join(e.work, 'auth-fifo.json');
  await execa('mkfifo', [fifo]);
  const urandom = join(e.work, 'auth-urandom.json');
  await symlink('/dev/urandom', urandom);
  const big = join(e.work, 'auth-big.json');
  await writeFile(big, `{"auths":{},"x":"${'x'.repeat(5 * 1024 * 1024)}"}`);
  const cases: [string, RegExp][] = [
    [fifo, /^auth file .*auth-fifo\.json is a FIFO, not a regular file$/],
    [urandom, /^auth file .*auth-urandom\.json is a character device, not a regular file$/],
    [big, /^auth file .*auth-big\.json is larger than the 4 MiB allowed$/],
  ];
  for (const [file, line] of cases) {
    // the registry is never reached: the credentials are read first
    await refused(t, e, ['--auth-file', file, 'image', 'pull', '127.0.0.1:9/kmm/hello:v1'], line, file.split('/').at(-1)!);
  }
  // the node's registries.conf and certs.d are read the same way
  const conf = e.host.path('/etc/containers/registries.conf');
  await mkdir(dirname(conf), { recursive: true });
  await execa('mkfifo', [conf]);
  await refused(t, e, ['image', 'pull', '127.0.0.1:9/kmm/hello:v1'], /registries\.conf is a FIFO, not a regular file$/, 'registries.conf FIFO');
  await rm(conf);
  const ca = e.host.path('/etc/containers/certs.d/127.0.0.1:9/ca.crt');
  await mkdir(dirname(ca), { recursive: true });
  await execa('mkfifo', [ca]);
  await refused(t, e, ['image', 'pull', '127.0.0.1:9/kmm/hello:v1'], /ca\.crt is a FIFO, not a regular file$/, 'certs.d FIFO');
});
