// Issue 19 on a host root: each signature and ABI verdict of `kmod load`, before the first host change.
import t, { type Test } from 'tap';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { ensureTestKmods } from '../kmods/kmods.js';
import { makeSigningKey, procKeys, signModule, DEBIAN_BUILD_KEY } from '../kmods/signing.js';
import { makeHostRoot, type HostRoot } from '../helpers/host-root.js';
import { recordedArgv, recordingModprobeEnv, recordingModprobePath } from '../helpers/recording-modprobe.js';
import { runCli, type CliResult } from '../worker/fixtures.js';

const kmods = await ensureTestKmods();
const work = await mkdtemp(join(tmpdir(), 'kmm-checks-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const vendorKey = await makeSigningKey(await mkdtemp(join(work, 'key-')), 'ACME kmod signing key');
const signed = await signModule(kmods, kmods.ko.kmm_hello!, vendorKey, join(work, 'kmm_hello-signed.ko'));
const debianDummy = join(kmods.kernel.modulesDir, 'kernel/drivers/net/dummy.ko');
const exists = (p: string) => stat(p).then(() => true, () => false);

interface Case {
  /** module name → .ko file put under <shared>/opt/lib/modules/<kver>/extra/ */
  modules: Record<string, string>;
  moduleName: string;
  kver?: string;
  sigEnforce?: 'Y' | 'N';
  lockdown?: string;
  keys?: { name: string; skid: string }[];
  kallsyms?: string[];
  hostSymbols?: Record<string, string>;
  dryRun?: boolean;
  /** modules already loaded on the node besides the in-tree old_driver */
  loaded?: string[];
  /** a kernel without CONFIG_KALLSYMS_ALL: kallsyms lists no variables */
  kallsymsFunctionsOnly?: boolean;
  /** /boot/System.map-<kver> symbols */
  systemMap?: string[];
}

async function load(t: Test, c: Case): Promise<{ r: CliResult; host: HostRoot; argv: string[][]; logs: { level: number; msg: string }[] }> {
  const kver = c.kver ?? kmods.kver;
  const host = await makeHostRoot({ kver });
  t.teardown(() => host.cleanup());
  await host.addLoadedModule('old_driver');
  for (const m of c.loaded ?? []) await host.addLoadedModule(m);
  if (c.sigEnforce) {
    await mkdir(host.path('sys/module/module/parameters'), { recursive: true });
    await writeFile(host.path('sys/module/module/parameters/sig_enforce'), `${c.sigEnforce}\n`);
  }
  if (c.lockdown) {
    await mkdir(host.path('sys/kernel/security'), { recursive: true });
    await writeFile(host.path('sys/kernel/security/lockdown'), `${c.lockdown}\n`);
  }
  await mkdir(host.path('proc'), { recursive: true });
  if (c.keys) await writeFile(host.path('proc/keys'), procKeys(c.keys));
  if (c.kallsyms) {
    // `jiffies` (a variable) is listed by every kernel with CONFIG_KALLSYMS_ALL, as Debian's
    const lines = c.kallsymsFunctionsOnly ? c.kallsyms : ['jiffies', ...c.kallsyms];
    await writeFile(host.path('proc/kallsyms'), lines.map((s, i) => `ffffffff8100${(i * 16).toString(16).padStart(4, '0')} T ${s}\n`).join(''));
  }
  if (c.systemMap) {
    await mkdir(host.path('boot'), { recursive: true });
    await writeFile(host.path(`boot/System.map-${kver}`), c.systemMap.map((s) => `ffffffff81000000 T ${s}\n`).join(''));
  }
  if (c.hostSymbols) {
    const lines = Object.entries(c.hostSymbols).map(([s, m]) => `alias symbol:${s} ${m}`);
    await writeFile(host.path(`lib/modules/${kver}/modules.symbols`), `# Aliases extracted from modules themselves.\n${lines.join('\n')}\n`);
  }
  const shared = await mkdtemp(join(work, 'shared-'));
  const extra = join(shared, 'opt/lib/modules', kver, 'extra');
  await mkdir(extra, { recursive: true });
  for (const [name, ko] of Object.entries(c.modules)) await copyFile(ko, join(extra, name.includes('.ko') ? name : `${name}.ko`));
  await execa('depmod', ['-b', join(shared, 'opt'), kver]);
  await mkdir(join(shared, 'firmware'));
  await writeFile(join(shared, 'firmware/fw.bin'), 'fw');
  const config = join(shared, 'config.yaml');
  await writeFile(config, stringify({
    kernelVersion: kver,
    containerImage: 'registry.example/kmm/kmods:1',
    inTreeModulesToRemove: ['old_driver'],
    modprobe: { moduleName: c.moduleName, firmwarePath: '/firmware' },
  }));
  const logFile = join(shared, 'modprobe.log');
  const r = await runCli(
    ['--host-root', host.root, '--shared-dir', shared, '--modprobe', recordingModprobePath, '--report', 'off',
      ...(c.dryRun ? ['--dry-run'] : []), 'kmod', 'load', config, '--firmware-path', '/var/lib/firmware'],
    recordingModprobeEnv(host.root, logFile),
  );
  const logs = r.stderr.split('\n').flatMap((l) => { try { return [JSON.parse(l) as { level: number; msg: string }]; } catch { return []; } });
  return { r, host, argv: await recordedArgv(logFile).catch(() => []), logs };
}

/** exit 1 with one error line, and nothing on the host touched: no modprobe, in-tree module loaded, no firmware. */
async function refusedBeforeChanges(t: Test, o: Awaited<ReturnType<typeof load>>): Promise<string> {
  t.equal(o.r.code, 1, 'exit 1', { stderr: o.r.stderr });
  t.equal(o.r.errors.length, 1, 'one error line');
  t.same(o.argv, [], 'modprobe never ran (no in-tree removal, no insert)');
  t.ok((await o.host.loadedModules()).includes('old_driver'), 'the in-tree module is still loaded');
  t.notOk(await exists(o.host.path('var/lib/firmware/fw.bin')), 'no firmware copied');
  return o.r.errors[0] ?? '';
}

t.test('enforced + unsigned: refused before anything is touched, naming the module, the trusted keys and the fix', async (t) => {
  const o = await load(t, { modules: { kmm_hello: kmods.ko.kmm_hello! }, moduleName: 'kmm_hello', sigEnforce: 'Y', keys: [{ ...DEBIAN_BUILD_KEY, skid: 'AB12CD34' }] });
  const msg = await refusedBeforeChanges(t, o);
  t.match(msg, /^module kmm_hello \(\S+kmm_hello\.ko\) is not signed, and this node enforces module signatures \(sig_enforce=Y\)/);
  t.match(msg, /trusts "Build time autogenerated kernel key" \(ab12cd34\)/);
  t.match(msg, /mokutil --import/);
});

t.test('enforced + signed by a key the node does not trust: refused, naming the signer and its key id', async (t) => {
  const o = await load(t, { modules: { kmm_hello: signed }, moduleName: 'kmm_hello', sigEnforce: 'Y', keys: [{ ...DEBIAN_BUILD_KEY, skid: 'AB12CD34' }] });
  const msg = await refusedBeforeChanges(t, o);
  t.match(msg, `is signed by "ACME kmod signing key" (key ${vendorKey.serial.match(/../g)!.join(':')}, sha256), a key this node does not trust`);
});

t.test('lockdown=integrity enforces too', async (t) => {
  const o = await load(t, { modules: { kmm_hello: kmods.ko.kmm_hello! }, moduleName: 'kmm_hello', lockdown: 'none [integrity] confidentiality', keys: [] });
  const msg = await refusedBeforeChanges(t, o);
  t.match(msg, /enforces module signatures \(lockdown=integrity\).*lists no trusted keys/);
});

t.test('enforced + signed by an enrolled key: loads', async (t) => {
  const o = await load(t, { modules: { kmm_hello: signed }, moduleName: 'kmm_hello', sigEnforce: 'Y', keys: [{ name: vendorKey.cn, skid: vendorKey.skid }] });
  t.equal(o.r.code, 0, 'exit 0', { stderr: o.r.stderr });
  t.same(o.argv.at(-1)?.at(-1), 'kmm_hello');
});

t.test("enforced + Debian's own signed dummy.ko, the build key in /proc/keys: loads", async (t) => {
  const o = await load(t, { modules: { dummy: debianDummy }, moduleName: 'dummy', sigEnforce: 'Y', keys: [{ ...DEBIAN_BUILD_KEY, skid: '35EC5EB42EA9FD1CAF03B977C56EF26A3720F629' }] });
  t.equal(o.r.code, 0, 'exit 0', { stderr: o.r.stderr });
});

t.test('not enforced + unsigned: loads, and says at info level that it taints the kernel', async (t) => {
  const o = await load(t, { modules: { kmm_hello: kmods.ko.kmm_hello! }, moduleName: 'kmm_hello', sigEnforce: 'N' });
  t.equal(o.r.code, 0, 'exit 0', { stderr: o.r.stderr });
  t.ok(o.logs.some((l) => l.level === 30 && /module kmm_hello is unsigned; this node does not enforce module signatures \(sig_enforce=N\), so loading it will taint the kernel/.test(l.msg)), "info line about the taint", { stderr: o.r.stderr });
});

t.test('--dry-run prints the verdicts', async (t) => {
  const o = await load(t, { modules: { kmm_hello: signed }, moduleName: 'kmm_hello', sigEnforce: 'Y', keys: [{ name: vendorKey.cn, skid: vendorKey.skid }], dryRun: true });
  t.equal(o.r.code, 0, "exit 0", { stderr: o.r.stderr });
  t.match(o.r.stdout, /^# signature: module kmm_hello is signed by "ACME kmod signing key" .*trusted by this node/m);
  t.match(o.r.stdout, new RegExp(`^# abi: module kmm_hello vermagic ${kmods.kver} matches kernel ${kmods.kver}$`, 'm'));
  const refused = await load(t, { modules: { kmm_hello: kmods.ko.kmm_hello! }, moduleName: 'kmm_hello', sigEnforce: 'Y', keys: [], dryRun: true });
  t.equal(refused.r.code, 1);
  t.notMatch(refused.r.stdout, /run modprobe/, 'the plan stops at the verdict');
});

t.test('vermagic of another kernel: refused, naming both releases', async (t) => {
  const o = await load(t, { modules: { kmm_hello: kmods.ko.kmm_hello! }, moduleName: 'kmm_hello', kver: '6.1.0-99-amd64' });
  const msg = await refusedBeforeChanges(t, o);
  t.equal(msg.replace(/\(\S+\)/, '(…)'), `module kmm_hello (…) was built for kernel ${kmods.kver} (vermagic), not 6.1.0-99-amd64: the kernel would refuse it with 'Invalid module format'. Fix: rebuild it against 6.1.0-99-amd64's headers and put it under lib/modules/6.1.0-99-amd64`);
});

const KERNEL_SYMS = ['__fentry__', '_printk', '__x86_return_thunk'];

t.test('a symbol nobody provides: refused, naming the symbol and the missing module', async (t) => {
  const o = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', kallsyms: KERNEL_SYMS });
  const msg = await refusedBeforeChanges(t, o);
  t.match(msg, /^module kmm_user \(\S+\) needs the module kmm_lib and the symbol kmm_lib_answer, found in none of: the running kernel, the image, the host module tree; the kernel would refuse it with 'Unknown symbol'/);
});

t.test('symbols provided by the kernel, by another module of the image, or by the host module tree: loads', async (t) => {
  const inImage = await load(t, { modules: { kmm_user: kmods.ko.kmm_user!, kmm_lib: kmods.ko.kmm_lib! }, moduleName: 'kmm_user', kallsyms: KERNEL_SYMS });
  t.equal(inImage.r.code, 0, 'kmm_lib in the image', { stderr: inImage.r.stderr });
  const inHostTree = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', kallsyms: KERNEL_SYMS, hostSymbols: { kmm_lib_answer: 'kmm_lib' } });
  t.notMatch(inHostTree.r.errors.join('\n'), /needs/, 'kmm_lib in the host tree passes the check');
  const inKernel = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', kallsyms: [...KERNEL_SYMS, 'kmm_lib_answer\t[kmm_lib]'], loaded: ['kmm_lib'] });
  t.notMatch(inKernel.r.errors.join('\n'), /needs/, 'kmm_lib loaded (its symbols in kallsyms) passes the check');
});

t.test('a corrupt signature trailer or a file that is no ELF: exit 1, one line naming the file, nothing touched', async (t) => {
  const bytes = await readFile(signed);
  // the PKCS#7 blob sits right before the 12-byte header and the 28-byte magic: break its outer SEQUENCE
  const sigLen = bytes.readUInt32BE(bytes.length - 28 - 4);
  bytes[bytes.length - 28 - 12 - sigLen] = 0x05;
  const corrupt = join(work, 'corrupt.ko');
  await writeFile(corrupt, bytes);
  const o = await load(t, { modules: { kmm_hello: corrupt }, moduleName: 'kmm_hello' });
  t.match(await refusedBeforeChanges(t, o), /^module \S+\/kmm_hello\.ko has a corrupt signature: PKCS#7 signature does not parse/);
  const notElf = join(work, 'not-elf.ko');
  await writeFile(notElf, 'this is not a kernel module\n');
  const o2 = await load(t, { modules: { kmm_hello: notElf }, moduleName: 'kmm_hello' });
  t.match(await refusedBeforeChanges(t, o2), /^module \S+\/kmm_hello\.ko is not a valid kernel module: not an ELF file$/);
});

t.test('the signature and modinfo are read the same from .ko, .ko.xz, .ko.zst and .ko.gz', async (t) => {
  const { readKoFile } = await import('../../src/kmod/ko-file.js');
  const raw = await readFile(debianDummy);
  const { gzipSync, zstdCompressSync } = await import('node:zlib');
  const files: Record<string, Buffer> = {
    'dummy.ko': raw,
    'dummy.ko.xz': (await execa('xz', ['-c'], { input: raw, encoding: 'buffer' })).stdout as unknown as Buffer,
    'dummy.ko.zst': zstdCompressSync(raw),
    'dummy.ko.gz': gzipSync(raw),
  };
  const modinfoSigner = (await execa('modinfo', ['-F', 'signer', debianDummy])).stdout.trim();
  const modinfoKey = (await execa('modinfo', ['-F', 'sig_key', debianDummy])).stdout.trim();
  for (const [name, bytes] of Object.entries(files)) {
    const p = join(work, name);
    await writeFile(p, bytes);
    const ko = await readKoFile(p);
    t.same(ko.signature.signed && [ko.signature.signer, ko.signature.keyId, ko.signature.hashAlgo], [modinfoSigner, modinfoKey.replaceAll(':', ''), 'sha256'], `${name}: what modinfo says`);
    t.equal(ko.elf.modinfo.get('vermagic')?.[0]?.split(' ')[0], kmods.kver, `${name}: vermagic`);
  }
});

t.test('a .ko.xz that xz cannot read is one line naming the module and what xz said', async (t) => {
  const { readKoFile } = await import('../../src/kmod/ko-file.js');
  const raw = await readFile(debianDummy);
  const xz = (await execa('xz', ['-c'], { input: raw, encoding: 'buffer' })).stdout as unknown as Buffer;
  const cut = join(work, 'cut.ko.xz');
  await writeFile(cut, xz.subarray(0, xz.length >> 1));
  await t.rejects(readKoFile(cut), { message: `cannot read module ${cut}: xz: (stdin): Unexpected end of input` });
  const garbage = join(work, 'garbage.ko.xz');
  await writeFile(garbage, Buffer.alloc(1 << 20, 7)); // larger than a pipe: xz exits before reading it all
  await t.rejects(readKoFile(garbage), { message: `cannot read module ${garbage}: xz: (stdin): File format not recognized` });
});

t.test("the kernel's System.map answers for the kernel image; kallsyms only for the rest", async (t) => {
  // kmm_lib_answer is only in kallsyms (kmm_lib loaded); the core symbols only in System.map
  const o = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', kallsyms: ['kmm_lib_answer\t[kmm_lib]'], loaded: ['kmm_lib'], systemMap: ['_stext', ...KERNEL_SYMS] });
  t.equal(o.r.code, 0, 'exit 0', { stderr: o.r.stderr });
  const missing = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', systemMap: ['_stext', '_printk'], loaded: ['kmm_lib'] });
  t.match(await refusedBeforeChanges(t, missing), /needs the symbols (__fentry__|kmm_lib_answer|__x86_return_thunk), /);
  // Debian's System.map is a one-line stub: it is no source, and without kallsyms the symbols go unchecked
  const stub = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', systemMap: ['The real System.map is in the linux-image-<version>-dbg package'], loaded: ['kmm_lib'] });
  t.equal(stub.r.code, 0, 'a stub System.map is not taken for an empty kernel', { stderr: stub.r.stderr });
  t.ok(stub.logs.some((l) => /symbols the modules need are not checked/.test(l.msg)));
});

t.test('a kallsyms without variables (CONFIG_KALLSYMS_ALL off) is no proof a symbol is missing: logged, not refused', async (t) => {
  const o = await load(t, { modules: { kmm_user: kmods.ko.kmm_user! }, moduleName: 'kmm_user', kallsyms: KERNEL_SYMS, kallsymsFunctionsOnly: true, loaded: ['kmm_lib'] });
  t.equal(o.r.code, 0, 'exit 0', { stderr: o.r.stderr });
  t.ok(o.logs.some((l) => l.level === 30 && /CONFIG_KALLSYMS_ALL off\): 1 symbols of kmm_user not found there are not checked/.test(l.msg)), 'info line');
});
