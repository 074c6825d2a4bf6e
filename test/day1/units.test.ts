import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import {
  DAY1_ENV,
  HOST_BINARY,
  HOST_ENV_FILE,
  LOAD_UNIT,
  PULL_UNIT,
  hostUnitCommands,
  renderLoadUnit,
  renderPullUnit,
} from '../../src/day1/units.js';
import { REPO, parseEnvFile, parseUnit, systemRoot, verifyUnits } from './systemd-root.js';

const shipped = (name: string) => readFile(join(REPO, 'systemd', name), 'utf8');

t.test('the shipped unit files are the rendered units (one source of truth)', async (t) => {
  const c = hostUnitCommands();
  t.equal(await shipped(LOAD_UNIT), renderLoadUnit(c), `systemd/${LOAD_UNIT} is stale: regenerate it`);
  t.equal(await shipped(PULL_UNIT), renderPullUnit(c), `systemd/${PULL_UNIT} is stale: regenerate it`);
});

t.test('both units pass systemd-analyze verify with the kmm-worker they run installed', async (t) => {
  const units = { [LOAD_UNIT]: await shipped(LOAD_UNIT), [PULL_UNIT]: await shipped(PULL_UNIT) };
  const root = await systemRoot(units, [HOST_BINARY], { [HOST_ENV_FILE]: await shipped('kmm-day1.env') });
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const result = await verifyUnits(root, [LOAD_UNIT, PULL_UNIT]);
  t.equal(result.code, 0, 'verify exits 0');
  // verify only warns (exit 0) about unknown keys and bad values: any output is a defect
  t.equal(result.stderr.trim(), '', 'verify prints no warning');

  // the check has teeth: without the binary the same units fail
  const bare = await systemRoot(units, []);
  t.teardown(() => rm(bare, { recursive: true, force: true }));
  const missing = await verifyUnits(bare, [LOAD_UNIT]);
  t.not(missing.code, 0, 'verify fails when the ExecStart binary is absent');
  t.match(missing.stderr, HOST_BINARY);
});

t.test('the load unit runs before the network, from local filesystems, bounded', async (t) => {
  const u = parseUnit(await shipped(LOAD_UNIT));
  t.same(u.Unit!.DefaultDependencies, ['no']);
  t.ok(u.Unit!.Before![0]!.split(' ').includes('network-pre.target'), 'Before=network-pre.target');
  t.ok(u.Unit!.Wants![0]!.split(' ').includes('network-pre.target'), 'Wants=network-pre.target');
  t.ok(u.Unit!.After![0]!.split(' ').includes('local-fs.target'), 'After=local-fs.target');
  t.notOk(JSON.stringify(u).includes('network-online'), 'never waits for the network');
  t.same(u.Service!.Type, ['oneshot']);
  t.same(u.Service!.RemainAfterExit, ['yes']);
  t.match(u.Service!.TimeoutStartSec![0], /^\d+(min|s)$/);
  t.same(u.Service!.ExecStart, [`${HOST_BINARY} day1 load`]);
  t.same(u.Service!.EnvironmentFile, [HOST_ENV_FILE], 'a missing settings file fails the unit (no "-" prefix)');
  t.same(u.Install!.WantedBy, ['multi-user.target']);
});

t.test('the pull unit runs after the network is online and retries, bounded', async (t) => {
  const u = parseUnit(await shipped(PULL_UNIT));
  t.ok(u.Unit!.After![0]!.split(' ').includes('network-online.target'));
  t.ok(u.Unit!.Wants![0]!.split(' ').includes('network-online.target'));
  t.same(u.Service!.Type, ['oneshot']);
  t.same(u.Service!.Restart, ['on-failure']);
  t.ok(u.Service!.RestartSec, 'waits between attempts');
  t.ok(Number(u.Unit!.StartLimitBurst![0]) > 1, 'several attempts');
  t.ok(u.Unit!.StartLimitIntervalSec, 'within a bounded interval');
  t.match(u.Service!.TimeoutStartSec![0], /^\d+(min|s)$/);
  t.same(u.Service!.ExecStart, [`${HOST_BINARY} day1 pull`]);
});

t.test('the environment file sets exactly the variables the CLI reads', async (t) => {
  const env = parseEnvFile(await shipped('kmm-day1.env'));
  const day1Keys = Object.keys(env).filter((k) => k.startsWith('KMM_DAY1_')).sort();
  t.same(day1Keys, Object.values(DAY1_ENV).sort());
  t.not(env[DAY1_ENV.image], '', 'an example repository');
  t.notMatch(env[DAY1_ENV.image]!, /:[^/]*$/, 'the example repository has no tag');
  const cli = await readFile(join(REPO, 'src', 'commands', 'day1-command.ts'), 'utf8');
  for (const name of Object.values(DAY1_ENV)) t.ok(cli.includes(`'${name}'`), `commands/day1-command.ts maps ${name} to a flag`);
});

t.test("with the units' Environment=, kmm-worker starts Node once, and the programs it runs do not get the malloc settings", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kmm-units-env-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'starts');
  const hook = join(dir, 'hook.mjs');
  // runs in every Node process the launcher starts: notes the start, and what the process holds when it ends
  await writeFile(hook, `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(log)}, 'start ' + (process.env.MALLOC_ARENA_MAX ?? '-') + '\\n');
process.on('exit', () => appendFileSync(${JSON.stringify(log)}, 'exit ' + (process.env.MALLOC_ARENA_MAX ?? '-') + '\\n'));
`);
  const launch = async (env: Record<string, string>) => {
    await rm(log, { force: true });
    const options = `${env.NODE_OPTIONS ?? ''} --import=${hook}`.trim();
    await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'kmm-worker.js'), '--version'], {
      env: { PATH: process.env.PATH, ...env, NODE_OPTIONS: options },
    });
    return (await readFile(log, 'utf8')).trim().split('\n');
  };
  for (const unit of [LOAD_UNIT, PULL_UNIT]) {
    const assigned = parseUnit(await shipped(unit)).Service!.Environment!.flatMap((v) => v.split(' '));
    const env = Object.fromEntries(assigned.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    t.same(await launch(env), ['start 1', 'exit -'], `${unit}: one Node start with MALLOC_ARENA_MAX=1, removed before modprobe runs`);
  }
  // without them the launcher re-executes itself to apply the settings: the check above has teeth
  t.same(await launch({}), ['start -', 'start 1', 'exit -'], 'without the settings: two starts');
});
