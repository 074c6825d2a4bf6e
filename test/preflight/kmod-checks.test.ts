// Issue 19 in preflight: the image's .ko against the upcoming kernel — vermagic against --kernel, the signature
// against --trusted-keys DIR, the symbols against --symvers FILE — each its own part of the status reason.
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ensureTestKmods } from '../kmods/kmods.js';
import { makeSigningKey, signModule } from '../kmods/signing.js';
import { moduleCR, publish, runCli, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const kmods = await ensureTestKmods();
const K = kmods.kver;
const reg = await testRegistry(t);
const work = await tmpDir('kmodchecks');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const vendor = await makeSigningKey(await fs.mkdtemp(path.join(work, 'key-')), 'ACME preflight key');
const signed = await signModule(kmods, kmods.ko.kmm_hello!, vendor, path.join(work, 'kmm_hello.ko'));
const trusted = path.join(work, 'trusted');
await fs.mkdir(trusted);
await fs.copyFile(vendor.certPem, path.join(trusted, 'vendor.pem'));
const symvers = path.join(kmods.kernel.modulesDir, `../../../../headers/usr/src/linux-headers-${K}/Module.symvers`);

const mods = `opt/lib/modules/${K}`;
await Promise.all([
  publish(reg, work, [`kc/unsigned:${K}`], [{ [`${mods}/kmm_hello.ko`]: await fs.readFile(kmods.ko.kmm_hello!) }]),
  publish(reg, work, [`kc/signed:${K}`], [{ [`${mods}/kmm_hello.ko`]: await fs.readFile(signed) }]),
  publish(reg, work, [`kc/user:${K}`], [{ [`${mods}/kmm_user.ko`]: await fs.readFile(kmods.ko.kmm_user!) }]),
  publish(reg, work, [`kc/user-lib:${K}`], [{ [`${mods}/kmm_user.ko`]: await fs.readFile(kmods.ko.kmm_user!), [`${mods}/kmm_lib.ko`]: await fs.readFile(kmods.ko.kmm_lib!) }]),
  publish(reg, work, [`kc/corrupt:${K}`], [{ [`${mods}/kmm_hello.ko`]: Buffer.concat([Buffer.from('garbage'), Buffer.from('~Module signature appended~\n')]) }]),
]);
const mod = (name: string, repo: string, moduleName: string) =>
  moduleCR(name, { modprobe: { moduleName }, kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kc/${repo}:${K}` }] });
const file = await writeYaml(path.join(work, 'modules.yaml'), [
  mod('unsigned', 'unsigned', 'kmm_hello'),
  mod('signed', 'signed', 'kmm_hello'),
  mod('user', 'user', 'kmm_user'),
  mod('user-lib', 'user-lib', 'kmm_user'),
  mod('corrupt', 'corrupt', 'kmm_hello'),
]);

async function preflight(args: string[]) {
  const r = await runCli(['preflight', '--module', file, '--json', ...args]);
  const report = JSON.parse(r.stdout || '{"modules":[]}') as { modules: { name: string; verificationStatus: string; statusReason: string }[] };
  return { r, by: Object.fromEntries(report.modules.map((m) => [m.name, m])) };
}

t.test('--trusted-keys and --symvers: each check in the reason; failures name what is wrong', async (t) => {
  const { by } = await preflight(['--kernel', K, '--trusted-keys', trusted, '--symvers', symvers]);
  const img = (repo: string) => `image ${reg.host}/kc/${repo}:${K} has /${mods}`;
  t.equal(by.signed!.verificationStatus, 'Success');
  t.equal(by.signed!.statusReason,
    `${img('signed')}/kmm_hello.ko; vermagic matches ${K}; signature: signed by "ACME preflight key" (key ${vendor.serial.match(/../g)!.join(':')}, sha256), trusted by --trusted-keys "ACME preflight key" (${vendor.skid.slice(-8).toLowerCase()}); symbols: all 5 found in --symvers or the image`);
  t.equal(by.unsigned!.verificationStatus, 'Failure');
  t.match(by.unsigned!.statusReason, `${img('unsigned')}/kmm_hello.ko, but signature: module kmm_hello is unsigned, and no key of --trusted-keys ("ACME preflight key" (`);
  t.match(by.unsigned!.statusReason, /mokutil --import/);
  t.equal(by.corrupt!.verificationStatus, 'Failure');
  t.match(by.corrupt!.statusReason, /kmm_hello\.ko in image \S+ has a corrupt signature/);
  // the unsigned test modules pass when no --trusted-keys is given: the symbols alone decide
  const { by: sym } = await preflight(['--kernel', K, '--symvers', symvers]);
  t.equal(sym.user!.verificationStatus, 'Failure');
  t.match(sym.user!.statusReason, /, but symbols: module kmm_user \(.+?\) needs the module kmm_lib and the symbol kmm_lib_answer, found in none of: kernel \S+'s --symvers, the image's modules/);
  t.equal(sym['user-lib']!.verificationStatus, 'Success');
  t.match(sym['user-lib']!.statusReason, /; signature: unsigned \(no --trusted-keys to check it against\); symbols: all 4 found in --symvers or the image$/, 'kmm_lib in the image provides kmm_lib_answer');
});

t.test('vermagic is checked against --kernel even without the optional inputs', async (t) => {
  const other = '6.1.0-99-amd64';
  const f = await writeYaml(path.join(work, 'other.yaml'), [
    moduleCR('next', { modprobe: { moduleName: 'kmm_hello' }, kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kc/unsigned:${K}` }] }),
  ]);
  const r = await runCli(['preflight', '--module', f, '--json', '--kernel', other]);
  t.equal(r.code, 1);
  // the image is tagged for K, but the mapping sends kernel `other` to it: its modules sit under K, not `other`
  t.match(r.stdout, /not found under \/opt\/lib\/modules\/6\.1\.0-99-amd64\//);
  await publish(reg, work, [`kc/wrong-kernel:${other}`], [{ [`opt/lib/modules/${other}/kmm_hello.ko`]: await fs.readFile(kmods.ko.kmm_hello!) }]);
  const f2 = await writeYaml(path.join(work, 'wrong.yaml'), [
    moduleCR('wrong', { modprobe: { moduleName: 'kmm_hello' }, kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/kc/wrong-kernel:${other}` }] }),
  ]);
  const w = await runCli(['preflight', '--module', f2, '--json', '--kernel', other]);
  t.equal(w.code, 1);
  const reason = (JSON.parse(w.stdout) as { modules: { statusReason: string }[] }).modules[0]!.statusReason;
  t.match(reason, `, but vermagic: module kmm_hello (/opt/lib/modules/${other}/kmm_hello.ko in image ${reg.host}/kc/wrong-kernel:${other}) was built for kernel ${K} (vermagic), not ${other}`);
});

t.test('a --trusted-keys dir without certificates, or a --symvers that is none: exit 2 before any image is read', async (t) => {
  const bad = path.join(work, 'bad-keys');
  await fs.mkdir(bad);
  await fs.writeFile(path.join(bad, 'x.pem'), 'not a certificate');
  const r = await runCli(['preflight', '--module', file, '--kernel', K, '--trusted-keys', bad]);
  t.equal(r.code, 2);
  t.match(r.stderr, /--trusted-keys \S+bad-keys: \S+x\.pem is not a DER or PEM X\.509 certificate/);
  const s = await runCli(['preflight', '--module', file, '--kernel', K, '--symvers', path.join(bad, 'x.pem')]);
  t.equal(s.code, 2);
  t.match(s.stderr, /--symvers \S+: no symbol in it/);
});
