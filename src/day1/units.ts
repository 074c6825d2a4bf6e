/**
 * The two Day-1 systemd units, rendered from one description so that the files shipped in `systemd/` (plain
 * Linux, kmm-worker installed on the host) and the units of `day1 machineconfig` (RHCOS, kmm-worker run by podman)
 * cannot drift apart: only the command lines differ.
 */

/** Where `npm install -g kmm-worker` (prefix /usr/local) puts the CLI; the shipped units run it from here. */
export const HOST_BINARY = '/usr/local/bin/kmm-worker';
/** The environment file of the shipped units. */
export const HOST_ENV_FILE = '/etc/kmm-worker/day1.env';
export const LOAD_UNIT = 'kmm-day1-load.service';
export const PULL_UNIT = 'kmm-day1-pull.service';

/** Bounded: a load is modprobe and a few file copies; a pull may be a large image over a slow link. */
export const LOAD_TIMEOUT = '3min';
export const PULL_TIMEOUT = '20min';
/** The pull retries a failed attempt (network not really up yet, registry hiccup) ten times in an hour at most. */
export const PULL_RESTART_SEC = '1min';
export const PULL_START_LIMIT_BURST = 10;
export const PULL_START_LIMIT_INTERVAL = '1h';

/**
 * The memory settings bin/kmm-worker.js applies by starting Node a second time when they are not set (see its
 * comments). Set by the host units, Day-1 starts Node once per run: one Node start (~35-45 ms) less on every
 * boot. KMM_WORKER_TUNED names the variables the worker removes again before it runs modprobe.
 */
export const TUNING_ENVIRONMENT =
  'MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=262144 NODE_OPTIONS=--max-semi-space-size=1 ' +
  'KMM_WORKER_TUNED=MALLOC_ARENA_MAX,MALLOC_MMAP_THRESHOLD_';

/** The environment variables the units read (commander maps each to its `day1` flag). */
export const DAY1_ENV = {
  image: 'KMM_DAY1_IMAGE',
  module: 'KMM_DAY1_MODULE',
  inTreeModules: 'KMM_DAY1_IN_TREE_MODULES',
  dirName: 'KMM_DAY1_DIR_NAME',
  firmwareDir: 'KMM_DAY1_FIRMWARE_DIR',
  hostFirmwarePath: 'KMM_DAY1_HOST_FIRMWARE_PATH',
  rebootCommand: 'KMM_DAY1_REBOOT_COMMAND',
} as const;

type Entries = Array<[key: string, value: string | number]>;

function section(name: string, entries: Entries): string {
  return [`[${name}]`, ...entries.map(([k, v]) => `${k}=${v}`)].join('\n');
}

export interface UnitCommands {
  /** the environment file both units read */
  envFile: string;
  /** the load unit's name, which the pull unit orders itself after */
  loadUnit: string;
  /** run before ExecStart of the load unit; exit 1-254 skips the unit without failing it */
  loadCondition?: string[];
  loadPre?: string[];
  load: string;
  pullPre?: string[];
  pull: string;
  /** a comment line or two saying where the unit came from */
  origin: string;
  /** `Environment=` of both units (a value in the environment file overrides it: systemd.exec) */
  environment?: string;
}

export function renderLoadUnit(c: UnitCommands): string {
  const unit: Entries = [
    ['Description', 'KMM Day-1: load the out-of-tree kernel module from the local image store, before the network'],
    // Early boot: no implicit sysinit/basic ordering, so this can run before network-pre.target.
    ['DefaultDependencies', 'no'],
    ['After', 'local-fs.target systemd-modules-load.service'],
    ['Before', 'network-pre.target shutdown.target'],
    ['Wants', 'network-pre.target'],
    ['Conflicts', 'shutdown.target'],
  ];
  const service: Entries = [
    ['Type', 'oneshot'],
    ['RemainAfterExit', 'yes'],
    ['EnvironmentFile', c.envFile],
    ...(c.environment ? [['Environment', c.environment] as [string, string]] : []),
    // Before the network, an attempt to report Events could only time out.
    ['Environment', 'KMM_REPORT=off'],
    ...(c.loadCondition ?? []).map((cmd): [string, string] => ['ExecCondition', cmd]),
    ...(c.loadPre ?? []).map((cmd): [string, string] => ['ExecStartPre', cmd]),
    ['ExecStart', c.load],
    ['TimeoutStartSec', LOAD_TIMEOUT],
  ];
  return `${c.origin}\n${section('Unit', unit)}\n\n${section('Service', service)}\n\n${section('Install', [['WantedBy', 'multi-user.target']])}\n`;
}

export function renderPullUnit(c: UnitCommands): string {
  const unit: Entries = [
    ['Description', 'KMM Day-1: store the kernel module image for the running kernel; reboot when it is new'],
    ['After', `network-online.target ${c.loadUnit}`],
    ['Wants', 'network-online.target'],
    ['StartLimitIntervalSec', PULL_START_LIMIT_INTERVAL],
    ['StartLimitBurst', PULL_START_LIMIT_BURST],
  ];
  const service: Entries = [
    ['Type', 'oneshot'],
    ['EnvironmentFile', c.envFile],
    ...(c.environment ? [['Environment', c.environment] as [string, string]] : []),
    ...(c.pullPre ?? []).map((cmd): [string, string] => ['ExecStartPre', cmd]),
    ['ExecStart', c.pull],
    ['TimeoutStartSec', PULL_TIMEOUT],
    ['Restart', 'on-failure'],
    ['RestartSec', PULL_RESTART_SEC],
  ];
  return `${c.origin}\n${section('Unit', unit)}\n\n${section('Service', service)}\n\n${section('Install', [['WantedBy', 'multi-user.target']])}\n`;
}

/** The units shipped in `systemd/`: kmm-worker installed on the host at {@link HOST_BINARY}. */
export function hostUnitCommands(binary = HOST_BINARY, envFile = HOST_ENV_FILE): UnitCommands {
  return {
    envFile,
    loadUnit: LOAD_UNIT,
    load: `${binary} day1 load`,
    pull: `${binary} day1 pull`,
    origin: '# Shipped with kmm-worker (systemd/); see docs/day1.md. Settings: the environment file below.',
    environment: TUNING_ENVIRONMENT,
  };
}
