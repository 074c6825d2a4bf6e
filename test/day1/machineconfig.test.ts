import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runCli, type CliResult } from '../helpers/run-cli.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseEnvFile, parseUnit, systemRoot, verifyUnits } from './systemd-root.js';

/** ignition-validate, not the CLI */
const run = promisify(execFile);
const cli = (args: string[]): Promise<CliResult> => runCli(['--log-format', 'json', ...args], { stripFinalNewline: false });

interface IgnitionFile {
  path: string;
  mode: number;
  overwrite?: boolean;
  contents: { source: string };
}
interface IgnitionUnit {
  name: string;
  enabled: boolean;
  contents: string;
}
interface MachineConfig {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: { config: { ignition: { version: string }; storage: { files: IgnitionFile[] }; systemd: { units: IgnitionUnit[] } } };
}

const WORKER = 'quay.io/example/kmm-worker:1.2.3';
const args = [
  'day1', 'machineconfig',
  '--name', '99-sfc-ice-day1',
  '--pool', 'sfc',
  '--image', 'quay.io/example/ice-kmod',
  '--module', 'ice',
  '--in-tree-modules', 'ice,irdma',
  '--firmware-dir', '/firmware',
  '--worker-image', WORKER,
];

function decodeDataUrl(source: string): string {
  const m = /^data:(?:[^,]*),(.*)$/s.exec(source);
  if (!m) throw new Error(`not a data URL: ${source}`);
  return decodeURIComponent(m[1]!);
}

t.test('a MachineConfig for the pool, installing both units and their environment', async (t) => {
  const res = await cli(args);
  t.equal(res.code, 0, res.stderr);
  const mc = parse(res.stdout) as MachineConfig;
  t.equal(mc.apiVersion, 'machineconfiguration.openshift.io/v1');
  t.equal(mc.kind, 'MachineConfig');
  t.equal(mc.metadata.name, '99-sfc-ice-day1');
  t.same(mc.metadata.labels, { 'machineconfiguration.openshift.io/role': 'sfc' });

  const ign = mc.spec.config;
  t.match(ign.ignition.version, /^3\.\d+\.\d+$/, 'Ignition 3.x');

  t.equal(ign.storage.files.length, 1);
  const envFile = ign.storage.files[0]!;
  t.equal(envFile.path, '/etc/kmm-worker/day1-99-sfc-ice-day1.env', 'file name derived from --name');
  t.equal(envFile.mode, 0o644, 'rw-r--r--: settings, no secrets');
  t.equal(envFile.overwrite, true);
  t.same(parseEnvFile(decodeDataUrl(envFile.contents.source)), {
    KMM_DAY1_IMAGE: 'quay.io/example/ice-kmod',
    KMM_DAY1_MODULE: 'ice',
    KMM_DAY1_IN_TREE_MODULES: 'ice,irdma',
    KMM_DAY1_FIRMWARE_DIR: '/firmware',
  });

  const names = ign.systemd.units.map((u) => u.name).sort();
  t.same(names, ['kmm-day1-99-sfc-ice-day1-load.service', 'kmm-day1-99-sfc-ice-day1-pull.service'], 'unit names derived from --name');
  for (const u of ign.systemd.units) t.equal(u.enabled, true, `${u.name} enabled`);

  const load = parseUnit(ign.systemd.units.find((u) => u.name.endsWith('-load.service'))!.contents);
  t.same(load.Unit!.DefaultDependencies, ['no']);
  t.ok(load.Unit!.Before![0]!.split(' ').includes('network-pre.target'));
  t.ok(load.Unit!.Wants![0]!.split(' ').includes('network-pre.target'));
  t.same(load.Service!.Type, ['oneshot']);
  t.same(load.Service!.EnvironmentFile, [envFile.path]);
  const loadCmd = load.Service!.ExecStart![0]!.split(' ');
  t.equal(loadCmd[0], '/usr/bin/podman', 'RHCOS has no node: the worker image runs under podman');
  t.ok(loadCmd.includes('--network=none'), 'the load container has no network at all');
  t.ok(loadCmd.includes('--pull=never'), 'the worker image itself is never pulled before the network');
  t.ok(loadCmd.includes('--env=KMM_DAY1_IMAGE'), 'settings reach the container');
  t.same(loadCmd.slice(-3), [WORKER, 'day1', 'load']);
  t.same(load.Service!.ExecCondition, [`/usr/bin/podman image exists ${WORKER}`], 'no worker image yet → skipped, not failed');

  const pull = parseUnit(ign.systemd.units.find((u) => u.name.endsWith('-pull.service'))!.contents);
  t.ok(pull.Unit!.After![0]!.split(' ').includes('network-online.target'));
  t.ok(pull.Unit!.Wants![0]!.split(' ').includes('network-online.target'));
  t.same(pull.Service!.Restart, ['on-failure']);
  const pullLine = pull.Service!.ExecStart![0]!;
  t.match(pullLine, `${WORKER} day1 pull`);
  t.match(pullLine, '--authfile=/var/lib/kubelet/config.json', 'the cluster pull secret');
  t.match(pullLine, '"--reboot-command=nsenter --target=1 --mount -- systemctl reboot"', "reboots through the host's systemd");
  t.match(pullLine, '--pid=host');
});

t.test('the Ignition config passes ignition-validate and both units pass systemd-analyze verify', async (t) => {
  const res = await cli(args);
  const mc = parse(res.stdout) as MachineConfig;
  const dir = await mkdtemp(join(tmpdir(), 'kmm-day1-mc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ignFile = join(dir, 'config.ign');
  await writeFile(ignFile, JSON.stringify(mc.spec.config));
  const validate = await run('ignition-validate', [ignFile]).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
  t.equal(validate.code, 0, validate.out);
  t.equal(validate.out.trim(), '', 'no warnings');

  const units = Object.fromEntries(mc.spec.config.systemd.units.map((u) => [u.name, u.contents]));
  const files = Object.fromEntries(mc.spec.config.storage.files.map((f) => [f.path, decodeDataUrl(f.contents.source)]));
  const root = await systemRoot(units, ['/usr/bin/podman', '/usr/bin/mkdir'], files);
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const verify = await verifyUnits(root, Object.keys(units));
  t.equal(verify.code, 0, verify.stderr);
  t.equal(verify.stderr.trim(), '', 'no warnings');
});

t.test('without --worker-image the version of this kmm-worker is used', async (t) => {
  const res = await cli(args.filter((a, i) => a !== '--worker-image' && args[i - 1] !== '--worker-image'));
  t.equal(res.code, 0, res.stderr);
  const { version } = await import('../../src/version.js');
  t.match(res.stdout, `kmm-worker:${version()} day1 load`);
});

t.test('bad input: exit 2, one line naming the flag, nothing printed on stdout', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['name not a Kubernetes name', ['--name', 'Day1_ICE'], /--name/],
    ['image with a tag', ['--image', 'quay.io/example/ice-kmod:6.1'], /--image.*without a tag/],
    ['image with a digest', ['--image', `quay.io/example/ice@sha256:${'a'.repeat(64)}`], /--image.*digest/],
    ['module not a module name', ['--module', 'ice;reboot'], /--module/],
    ['in-tree module not a module name', ['--in-tree-modules', 'ice,../x'], /--in-tree-modules/],
    ['relative firmware dir', ['--firmware-dir', 'firmware'], /--firmware-dir/],
    ['pool not a label value', ['--pool', 'a b'], /--pool/],
  ];
  for (const [what, override, message] of cases) {
    const a = [...args];
    const i = a.indexOf(override[0]!);
    a[i + 1] = override[1]!;
    const res = await cli(a);
    t.equal(res.code, 2, `${what}: exit 2`);
    t.equal(res.stdout, '', `${what}: no MachineConfig`);
    t.match(res.stderr, message, `${what}: the message names the flag`);
  }
  const missing = await cli(['day1', 'machineconfig', '--name', 'x', '--image', 'quay.io/a/b', '--module', 'm']);
  t.equal(missing.code, 2, 'missing --pool: exit 2');
  t.match(missing.stderr, /--pool/);
});
