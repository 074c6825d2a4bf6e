// The worker image, built and run: scripts/build-image.sh builds localhost/kmm-worker:<version> from the
// Containerfile with buildah (the base built from Debian packages when no registry is reachable), then podman
// runs it the way the KMM operator does: `version`, a dry-run load with KMM's mounts, and a real load into a
// mounted host root with the recording modprobe (kmods without modules.dep, as .ko.gz, /tmp read-only).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { makeEnv, makeSharedDir, repoRoot } from '../worker/fixtures.js';
import { ensureTestKmods, koBuiltFor } from '../kmods/kmods.js';
import { recordingModprobePath } from '../helpers/recording-modprobe.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `localhost/kmm-worker:${version}`;
const STORAGE = ['--storage-driver', 'vfs'];
// this machine's podman needs runc and explicit ulimits
const RUN = ['run', '--rm', '--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];
const podman = (args: string[]) => execa('podman', [...STORAGE, ...args], { reject: false, timeout: 300_000 });

t.setTimeout(1_800_000);

let builtRevision = '';

t.before(async () => {
  const s0 = Date.now();
  builtRevision = (await execa('git', ['rev-parse', 'HEAD'], { cwd: repoRoot })).stdout.trim();
  const r = await execa(join(repoRoot, 'scripts/build-image.sh'), [], { cwd: repoRoot, reject: false, timeout: 1_500_000, all: true });
  t.comment(`scripts/build-image.sh: exit ${r.exitCode} in ${((Date.now() - s0) / 1000).toFixed(0)} s`);
  if (r.exitCode !== 0) throw new Error(`scripts/build-image.sh failed:\n${String(r.all).split('\n').slice(-20).join('\n')}`);
  if (String(r.stdout).trim().split('\n').at(-1) !== IMAGE) throw new Error(`build-image.sh printed ${r.stdout}, not ${IMAGE}`);
});

t.test('labels: version, source, the base name (ARG redeclared after FROM); nothing points at another project', async (t) => {
  const r = await podman(['image', 'inspect', IMAGE, '--format', '{{json .Labels}}']);
  t.equal(r.exitCode, 0, String(r.stderr));
  const labels = JSON.parse(String(r.stdout)) as Record<string, string>;
  const L = (k: string) => labels[`org.opencontainers.image.${k}`];
  t.equal(L('version'), version);
  t.equal(L('base.name'), 'docker.io/library/node:24-bookworm-slim');
  t.ok(L('source'), `source: ${L('source')}`);
  t.equal(L('revision'), builtRevision, 'the commit it was built from');
  t.notMatch(JSON.stringify(labels), /kernel-module-management/);
});

t.test('version; kmod, nsenter (Day-1) and Node 24 are in the image', async (t) => {
  const v = await podman([...RUN, IMAGE, 'version']);
  t.equal(v.exitCode, 0, String(v.stderr));
  t.match(String(v.stdout), new RegExp(`kmm-worker ${version.replaceAll('.', '\\.')}`));
  const tools = await podman([...RUN, '--entrypoint', 'sh', IMAGE, '-c', 'modprobe --version && nsenter --version && node --version']);
  t.equal(tools.exitCode, 0, String(tools.stderr));
  t.match(String(tools.stdout), /kmod version/);
  t.match(String(tools.stdout), /nsenter from util-linux/);
  t.match(String(tools.stdout), /^v24\./m);
});

t.test('--dry-run kmod load with KMM\'s mounts (config, /lib/modules, /host/lib/modules, read-only /tmp)', async (t) => {
  const kmods = await ensureTestKmods();
  // the dry run checks the running kernel, which no headers here may exist for: a module whose vermagic names it
  const kver = release();
  const shared = await makeSharedDir({ kver, modules: { kmm_hello: kmods.ko.kmm_hello! }, depmod: false });
  t.teardown(() => execa('rm', ['-rf', shared]));
  await writeFile(join(shared, 'opt/lib/modules', kver, 'extra/kmm_hello.ko'), koBuiltFor(await readFile(kmods.ko.kmm_hello!), kver));
  const cfgDir = join(shared, '..', `${shared.split('/').at(-1)}-config`);
  await mkdir(cfgDir);
  t.teardown(() => execa('rm', ['-rf', cfgDir]));
  // the node's /lib/modules (this machine may have none): the dry run only needs it to exist
  const libModules = join(cfgDir, 'lib-modules');
  await mkdir(libModules);
  await writeFile(join(cfgDir, 'config.yaml'), stringify({ kernelVersion: kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello' } }));
  const r = await podman([
    ...RUN,
    '-v', `${cfgDir}:/etc/kmm-worker:ro`,
    '-v', `${libModules}:/lib/modules:ro`,
    '-v', `${libModules}:/host/lib/modules:ro`,
    '-v', `${shared}:/tmp:ro`,
    IMAGE, '--dry-run', 'kmod', 'load', '/etc/kmm-worker/config.yaml',
  ]);
  t.equal(r.exitCode, 0, 'exit 0', { stderr: String(r.stderr) });
  t.match(String(r.stdout), /run modprobe -v -d \/var\/tmp\/kmm-worker-kmods-\S+ kmm_hello/, 'the plan loads from a scratch copy outside the read-only /tmp');
});

t.test('a real kmod load into a mounted host root (recording modprobe): .ko.gz, no modules.dep, read-only /tmp', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'], depmod: false });
  t.teardown(env.cleanup);
  await execa('gzip', [join(env.shared, 'opt/lib/modules', env.kmods.kver, 'extra/kmm_hello.ko')]);
  await writeFile(join(env.work, 'config.yaml'), stringify({ kernelVersion: env.kmods.kver, containerImage: 'registry.example/kmm/kmods:1', modprobe: { moduleName: 'kmm_hello', parameters: ['count=5'] } }));
  const r = await podman([
    ...RUN,
    '-v', `${env.work}:/etc/kmm-worker:ro`,
    '-v', `${env.shared}:/tmp:ro`,
    '-v', `${env.host.root}:/host`,
    '-v', `${recordingModprobePath}:/usr/local/bin/recording-modprobe:ro`,
    '-e', 'RECORDING_MODPROBE_HOST_ROOT=/host',
    '-e', 'RECORDING_MODPROBE_LOG=/host/modprobe.log',
    IMAGE, '--host-root', '/host', '--modprobe', '/usr/local/bin/recording-modprobe', 'kmod', 'load', '/etc/kmm-worker/config.yaml',
  ]);
  t.equal(r.exitCode, 0, 'exit 0', { stderr: String(r.stderr) });
  t.same(await env.host.loadedModules(), ['kmm_hello']);
  const srcversion = (await execa('modinfo', ['-F', 'srcversion', env.kmods.ko.kmm_hello!])).stdout.trim();
  t.equal((await readFile(join(env.host.sysModule('kmm_hello'), 'srcversion'), 'utf8')).trim(), srcversion, 'the image\'s module is live');
  const argv = (await readFile(join(env.host.root, 'modprobe.log'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { argv: string[] }).argv);
  t.equal(argv.length, 1);
  t.match(argv[0]!.join(' '), /^-v -d \/var\/tmp\/kmm-worker-kmods-\S+ kmm_hello count=5$/, 'the scratch copy is in the image\'s /var/tmp');
  t.match(String(r.stderr), /Events are off: no node name/, 'no NODE_NAME, as in KMM\'s pod: said once');
});
