/**
 * Shared fixtures of the preflight CLI tests: kmod images built by umoci and pushed by skopeo to real
 * docker-registry instances on 127.0.0.1, Module YAML writers, and a runner for the real CLI.
 */
import { execFileSync } from 'node:child_process';
import zlib from 'node:zlib';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildLayout, pushImage, type LayerSpec, type PushOptions } from '../helpers/images.js';
import { startRegistry, type StartRegistryOptions, type TestRegistry } from '../helpers/registry.js';
import { runCli as runTheCli, type CliResult as Ran } from '../helpers/run-cli.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin', 'kmm-worker.js');
/** the kernel the cluster upgrades to, and the one it runs now */
export const K = '6.1.0-27-amd64';
export const K_OLD = '6.1.0-26-amd64';

/**
 * A minimal relocatable ELF whose .modinfo says which kernel it was built for: what preflight's vermagic check
 * reads (the image checks need no code in it).
 */
export function fakeKo(name: string, kernel = K): Buffer {
  const shstrtab = Buffer.from('\0.shstrtab\0.modinfo\0');
  const modinfo = Buffer.from(`name=${name}\0vermagic=${kernel} SMP preempt mod_unload modversions \0`);
  const shstrOff = 64;
  const modinfoOff = shstrOff + shstrtab.length;
  const shoff = Math.ceil((modinfoOff + modinfo.length) / 8) * 8;
  const elf = Buffer.alloc(shoff + 3 * 64);
  elf.write('\x7fELF', 0, 'latin1');
  elf[4] = 2; // 64-bit
  elf[5] = 1; // little endian
  elf[6] = 1;
  elf.writeUInt16LE(1, 16); // ET_REL
  elf.writeUInt16LE(62, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x34);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(3, 0x3c);
  elf.writeUInt16LE(1, 0x3e);
  shstrtab.copy(elf, shstrOff);
  modinfo.copy(elf, modinfoOff);
  const section = (i: number, name: number, type: number, offset: number, size: number) => {
    const o = shoff + i * 64;
    elf.writeUInt32LE(name, o);
    elf.writeUInt32LE(type, o + 4);
    elf.writeBigUInt64LE(BigInt(offset), o + 24);
    elf.writeBigUInt64LE(BigInt(size), o + 32);
  };
  section(1, 1, 3, shstrOff, shstrtab.length); // .shstrtab (SHT_STRTAB)
  section(2, 11, 1, modinfoOff, modinfo.length); // .modinfo (SHT_PROGBITS)
  return elf;
}

const ko = (name: string) => fakeKo(`kmm_ci_${name}`);
const xz = (b: Buffer) => execFileSync('xz', ['-c'], { input: b });

export async function tmpDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `kmm-pf-${prefix}-`));
}

/** A real registry for one test file (or subtest): stopped and its storage removed at teardown. */
export async function testRegistry(t: { teardown(fn: () => unknown): void }, opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const reg = await startRegistry(opts);
  t.teardown(async () => {
    await reg.stop();
    await fs.rm(path.dirname(reg.dataDir), { recursive: true, force: true });
  });
  return reg;
}

/** Builds `layers` as one umoci image and pushes it to `reg` as each of `repoTags`. */
export async function publish(reg: TestRegistry, work: string, repoTags: string[], layers: LayerSpec[], push: PushOptions = {}): Promise<void> {
  const tag = repoTags[0]!.replace(/[^\w.-]/g, '_');
  const img = await buildLayout({ dir: path.join(work, 'layouts', tag), tag: 'v', layers });
  for (const rt of repoTags) await pushImage(img, reg, rt, push);
}

/** The images of the main scenario on one plain registry. */
export async function publishScenarioImages(reg: TestRegistry, work: string): Promise<void> {
  const mods = `opt/lib/modules/${K}`;
  await Promise.all([
    // a correct image: modules + the host symlink in one layer, firmware in another
    publish(reg, work, [`kmod/good:${K}`], [
      { [`${mods}/kmm_ci_a.ko`]: ko('a'), [`${mods}/modules.dep`]: '', [`${mods}/host`]: { symlink: `/lib/modules/${K}` } },
      { 'firmware/fw.bin': 'fw' },
    ], { format: 'v2s2' }),
    // built for the running kernel only
    publish(reg, work, [`kmod/old:${K}`], [{ [`opt/lib/modules/${K_OLD}/kmm_ci_a.ko`]: ko('a') }]),
    // the .ko removed again by a whiteout in the top layer
    publish(reg, work, [`kmod/whiteout:${K}`], [{ [`${mods}/kmm_ci_a.ko`]: ko('a'), [`${mods}/kmm_ci_b.ko`]: ko('b') }, { [`${mods}/kmm_ci_a.ko`]: { whiteout: true } }]),
    // compressed .ko in a subdirectory, the name spelled with '-'
    publish(reg, work, [`kmod/xz:${K}`], [{ 'etc/os-release': 'x' }, { [`${mods}/extra/net/kmm-ci-a.ko.xz`]: xz(ko('a')) }]),
    // zstd layers, the .ko in the bottom one
    publish(reg, work, [`kmod/zstd:${K}`], [{ [`${mods}/kmm_ci_a.ko.zst`]: zlib.zstdCompressSync(ko('a')) }, { 'firmware/x.bin': 'x' }], { compress: 'zstd' }),
    // uncompressed layers, a custom dirName
    publish(reg, work, [`kmod/plain:${K}`], [{ [`srv/kmods/lib/modules/${K}/kmm_ci_a.ko`]: ko('a') }], { compress: 'none' }),
    // every variable: the tags the mappings below compute
    publish(reg, work, [`vars/ops-kmm-vars:${K}`, `vars/x6-y1-z0:6.1.0`, `vars/full:${K}-${K}`], [{ [`${mods}/kmm_ci_a.ko`]: ko('a') }]),
  ]);
}

/** A Module CR with a moduleLoader container spec. */
export function moduleCR(name: string, container: Record<string, unknown>, opts: { namespace?: string; spec?: Record<string, unknown> } = {}) {
  return {
    apiVersion: 'kmm.sigs.x-k8s.io/v1beta1',
    kind: 'Module',
    metadata: { name, ...(opts.namespace ? { namespace: opts.namespace } : {}) },
    spec: {
      moduleLoader: { container: { modprobe: { moduleName: 'kmm_ci_a' }, ...container } },
      selector: { 'node-role.kubernetes.io/worker': '' },
      ...opts.spec,
    },
  };
}

export async function writeYaml(file: string, docs: unknown[]): Promise<string> {
  await fs.writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
  return file;
}

/** The Modules of the main scenario: one per case of issue 8, all resolved for kernel K. */
export function scenarioModules(host: string): unknown[] {
  const img = (r: string) => `${host}/${r}`;
  return [
    moduleCR('good', { kernelMappings: [{ regexp: '^.+$', containerImage: img('kmod/good:${KERNEL_FULL_VERSION}') }] }, { namespace: 'kmm' }),
    moduleCR('other-kernel', { containerImage: img('kmod/old:${KERNEL_FULL_VERSION}'), kernelMappings: [{ regexp: 'amd64$' }] }, { namespace: 'kmm' }),
    moduleCR('whiteout', { kernelMappings: [{ literal: K, containerImage: img(`kmod/whiteout:${K}`) }] }, { namespace: 'kmm' }),
    moduleCR('xz-subdir', { kernelMappings: [{ regexp: '^6\\.1\\.', containerImage: img('kmod/xz:${KERNEL_VERSION}') }] }, { namespace: 'kmm' }),
    moduleCR('zstd', { kernelMappings: [{ regexp: '.', containerImage: img('kmod/zstd:$KERNEL_FULL_VERSION') }] }, { namespace: 'kmm' }),
    moduleCR('plain-layers', {
      modprobe: { moduleName: 'kmm_ci_a', dirName: '/srv/kmods' },
      kernelMappings: [{ regexp: '.', containerImage: img('kmod/plain:${KERNEL_FULL_VERSION}') }],
    }, { namespace: 'kmm' }),
    moduleCR('missing-tag', { kernelMappings: [{ regexp: '.', containerImage: img('kmod/good:no-such-tag') }] }, { namespace: 'kmm' }),
    moduleCR('needs-build', {
      kernelMappings: [{
        regexp: '^6\\.',
        containerImage: img('kmod/built:${KERNEL_FULL_VERSION}'),
        build: { dockerfileConfigMap: { name: 'kmm-ci-dockerfile' } },
      }],
    }, { namespace: 'kmm' }),
    moduleCR('no-mapping', { kernelMappings: [{ literal: '5.14.0-1.el9.x86_64', containerImage: img('kmod/good:x') }, { regexp: '^5\\.' , containerImage: img('kmod/good:y') }] }, { namespace: 'kmm' }),
    // first literal, mapping overrides: the container-level image is never used
    moduleCR('kmm-vars', {
      containerImage: img('kmod/never:used'),
      kernelMappings: [
        { literal: '6.1.0-27', containerImage: img('kmod/never:prefix') },
        { literal: K, containerImage: img('vars/${MOD_NAMESPACE}-${MOD_NAME}:${KERNEL_FULL_VERSION}') },
      ],
    }, { namespace: 'ops' }),
    moduleCR('xyz-vars', { kernelMappings: [{ regexp: '-amd64$', containerImage: img('vars/x${KERNEL_X}-y${KERNEL_Y}-z${KERNEL_Z}:${KERNEL_XYZ}') }] }, { namespace: 'ops' }),
    moduleCR('full-vars', { kernelMappings: [{ regexp: '27', containerImage: img('vars/full:${KERNEL_FULL_VERSION}-${KERNEL_VERSION}${UNSET_VAR}') }] }, { namespace: 'ops' }),
    // not Modules: ignored
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kmm-ci-dockerfile', namespace: 'kmm' }, data: { dockerfile: 'FROM x' } },
  ];
}

export interface CliResult extends Omit<Ran, 'code'> {
  code: number;
  ms: number;
}

/** Runs the real CLI (bin/kmm-worker.js → dist/) with Node 24: test/helpers/run-cli.ts with JSON logs. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 120_000, input?: string): Promise<CliResult> {
  const started = Date.now();
  const r = await runTheCli(['--log-format', 'json', ...args], {
    // tap's NODE_OPTIONS (process tracking) only slows the CLI down; it is not under test
    env: { NODE_OPTIONS: undefined, KUBECONFIG: undefined, KMM_PULL_SECRETS_DIR: '/nonexistent', ...env },
    timeoutMs,
    stripFinalNewline: false,
    ...(input === undefined ? {} : { input }),
  });
  return { ...r, code: r.code ?? -1, ms: Date.now() - started };
}

/** Golden-file form of a JSON report: registry hosts and times replaced by placeholders. */
export function normalizeReport(text: string, hosts: Record<string, string>): unknown {
  let s = text;
  for (const [host, name] of Object.entries(hosts)) s = s.replaceAll(host, name);
  const report = JSON.parse(s) as { modules: { lastTransitionTime: string }[] };
  for (const m of report.modules) m.lastTransitionTime = '<time>';
  return report;
}
