/**
 * `day1 machineconfig`: a MachineConfig (machineconfiguration.openshift.io/v1) whose Ignition config installs the
 * two Day-1 units and their environment file on the nodes of one pool. RHCOS has no Node.js, so the units run the
 * kmm-worker container image with podman; everything else (ordering, timeouts, retries) is the shipped units'.
 */
import { stringify } from 'yaml';
import { UsageError } from '../errors.js';
import { version } from '../version.js';
import { checkImageRepository } from '../config/day1-image-ref.js';
import { DEFAULT_FIRMWARE_DIR } from '../config/defaults.js';
import { DAY1_ENV, renderLoadUnit, renderPullUnit, type UnitCommands } from './units.js';

/** Spoken by every OpenShift 4.x Machine Config Operator that has Ignition 3. */
export const IGNITION_VERSION = '3.2.0';
export const DEFAULT_WORKER_IMAGE = `quay.io/kmm-worker/kmm-worker:${version()}`;
export const PODMAN = '/usr/bin/podman';
export const MKDIR = '/usr/bin/mkdir';
/** The cluster's global pull secret on every OpenShift node; the pull service uses it for both images. */
export const KUBELET_AUTH_FILE = '/var/lib/kubelet/config.json';
const IMAGES_DIR = '/var/lib/kmm';
const HOST_FIRMWARE_DIR = DEFAULT_FIRMWARE_DIR;
// The worker container has no systemd; reboot through the host's (the approach of node-reboot daemons like kured).
const CONTAINER_REBOOT_COMMAND = 'nsenter --target=1 --mount -- systemctl reboot';

export interface MachineConfigInput {
  name: string;
  pool: string;
  image: string;
  module: string;
  inTreeModules?: string[];
  firmwareDir?: string;
  workerImage?: string;
}

// DNS-1123 subdomain (object names) and label values.
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;
const IMAGE_PATH = /^\/[A-Za-z0-9._/+-]*$/;

export function checkMachineConfigInput(input: MachineConfigInput): Required<Omit<MachineConfigInput, 'firmwareDir'>> & { firmwareDir?: string } {
  if (input.name.length > 200 || !OBJECT_NAME.test(input.name)) {
    throw new UsageError(`--name must be a Kubernetes object name (lower-case letters, digits, '-', '.'), got '${input.name}'`);
  }
  if (input.pool.length > 63 || !LABEL_VALUE.test(input.pool)) {
    throw new UsageError(`--pool must be a MachineConfigPool role (a label value), got '${input.pool}'`);
  }
  const image = checkImageRepository(input.image);
  if (image.startsWith('oci:')) throw new UsageError(`--image must be a registry repository for a MachineConfig, got '${image}'`);
  if (!MODULE_NAME.test(input.module)) throw new UsageError(`--module must be a kernel module name, got '${input.module}'`);
  const inTreeModules = input.inTreeModules ?? [];
  for (const m of inTreeModules) {
    if (!MODULE_NAME.test(m)) throw new UsageError(`--in-tree-modules must list kernel module names, got '${m}'`);
  }
  if (input.firmwareDir !== undefined && !IMAGE_PATH.test(input.firmwareDir)) {
    throw new UsageError(`--firmware-dir must be an absolute path inside the image, got '${input.firmwareDir}'`);
  }
  const workerImage = input.workerImage ?? DEFAULT_WORKER_IMAGE;
  if (!IMAGE_REF.test(workerImage)) throw new UsageError(`--worker-image must be an image reference, got '${workerImage}'`);
  return { ...input, image, inTreeModules, workerImage };
}

/** File and unit names carry the MachineConfig's name, so several Day-1 modules can share a pool. */
export function day1Names(name: string) {
  return {
    loadUnit: `kmm-day1-${name}-load.service`,
    pullUnit: `kmm-day1-${name}-pull.service`,
    envFile: `/etc/kmm-worker/day1-${name}.env`,
  };
}

export function renderEnvFile(input: ReturnType<typeof checkMachineConfigInput>): string {
  return [
    `# kmm-worker Day-1 settings of MachineConfig ${input.name} (see docs/day1.md)`,
    `${DAY1_ENV.image}=${input.image}`,
    `${DAY1_ENV.module}=${input.module}`,
    `${DAY1_ENV.inTreeModules}=${input.inTreeModules.join(',')}`,
    `${DAY1_ENV.firmwareDir}=${input.firmwareDir ?? ''}`,
    '',
  ].join('\n');
}

function podmanUnitCommands(input: ReturnType<typeof checkMachineConfigInput>): UnitCommands {
  const names = day1Names(input.name);
  const passEnv = Object.values(DAY1_ENV).map((v) => `--env=${v}`);
  const common = ['--rm', '--replace', '--privileged', ...passEnv];
  // one option per continued line: the unit stays readable in `systemctl cat`
  const run = (container: string, flags: string[], args: string) =>
    [`${PODMAN} run --name=${container}`, ...common, ...flags, `${input.workerImage} ${args}`].join(' \\\n    ');
  return {
    envFile: names.envFile,
    loadUnit: names.loadUnit,
    // Before the network the worker image can only come from local storage; absent → skip, the pull service gets it.
    loadCondition: [`${PODMAN} image exists ${input.workerImage}`],
    loadPre: [`${MKDIR} -p ${IMAGES_DIR}/images ${HOST_FIRMWARE_DIR}`],
    load: run(
      `kmm-day1-${input.name}-load`,
      [
        '--pull=never',
        '--network=none',
        '--env=KMM_REPORT=off',
        '--volume=/lib/modules:/lib/modules:ro',
        `--volume=${IMAGES_DIR}:${IMAGES_DIR}`,
        `--volume=${HOST_FIRMWARE_DIR}:${HOST_FIRMWARE_DIR}`,
      ],
      'day1 load',
    ),
    pullPre: [`${MKDIR} -p ${IMAGES_DIR}/images`],
    pull: run(
      `kmm-day1-${input.name}-pull`,
      [
        '--pull=missing',
        `--authfile=${KUBELET_AUTH_FILE}`,
        '--network=host',
        '--pid=host',
        `--env=REGISTRY_AUTH_FILE=${KUBELET_AUTH_FILE}`,
        `--volume=${IMAGES_DIR}:${IMAGES_DIR}`,
        `--volume=${KUBELET_AUTH_FILE}:${KUBELET_AUTH_FILE}:ro`,
      ],
      `day1 pull "--reboot-command=${CONTAINER_REBOOT_COMMAND}"`,
    ),
    origin: `# Installed by MachineConfig ${input.name} (kmm-worker day1 machineconfig); see docs/day1.md.`,
  };
}

/** Ignition wants file contents as a URL; a data URL keeps the MachineConfig self-contained. */
export const dataUrl = (text: string) => `data:,${encodeURIComponent(text)}`;

export function buildMachineConfig(raw: MachineConfigInput): Record<string, unknown> {
  const input = checkMachineConfigInput(raw);
  const names = day1Names(input.name);
  const commands = podmanUnitCommands(input);
  return {
    apiVersion: 'machineconfiguration.openshift.io/v1',
    kind: 'MachineConfig',
    metadata: {
      name: input.name,
      labels: { 'machineconfiguration.openshift.io/role': input.pool },
    },
    spec: {
      config: {
        ignition: { version: IGNITION_VERSION },
        storage: {
          files: [
            {
              path: names.envFile,
              mode: 0o644,
              overwrite: true,
              contents: { source: dataUrl(renderEnvFile(input)) },
            },
          ],
        },
        systemd: {
          units: [
            { name: names.loadUnit, enabled: true, contents: renderLoadUnit(commands) },
            { name: names.pullUnit, enabled: true, contents: renderPullUnit(commands) },
          ],
        },
      },
    },
  };
}

export function renderMachineConfig(input: MachineConfigInput): string {
  return stringify(buildMachineConfig(input), { lineWidth: 0 });
}
