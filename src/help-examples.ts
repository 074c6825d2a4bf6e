/**
 * The examples each command's --help ends with: real command lines a host admin types, so help teaches
 * the common cases instead of only listing flags.
 */
export const HELP_EXAMPLES: Record<string, string[]> = {
  'kmm-worker': [
    'kmm-worker kmod load /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware',
    'kmm-worker image inspect quay.io/example/kmod:$(uname -r)',
    'kmm-worker diagnose /etc/kmm-worker/config.yaml --output /tmp/kmm-diagnose.tar.gz',
  ],
  'kmm-worker version': ['kmm-worker version', 'kmm-worker --version'],
  'kmm-worker kmod load': [
    'kmm-worker kmod load /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware',
    'kmm-worker --dry-run kmod load /etc/kmm-worker/config.yaml      # print the plan, touch nothing',
    'kmm-worker --host-root /host kmod load /etc/kmm-worker/config.yaml   # from a container with / at /host',
  ],
  'kmm-worker kmod unload': [
    'kmm-worker kmod unload /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware',
    'kmm-worker --dry-run kmod unload /etc/kmm-worker/config.yaml',
  ],
  'kmm-worker run': [
    'kmm-worker run /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware',
    'kmm-worker run /etc/kmm-worker/config.yaml --health-addr 0.0.0.0:8081 --check-interval 30',
  ],
  'kmm-worker image pull': [
    'kmm-worker image pull quay.io/example/kmod:6.1.0-57-amd64 --kernel 6.1.0-57-amd64',
    'kmm-worker image pull docker://registry.local:5000/kmod:v1 --all --pull-policy always --insecure',
    'kmm-worker --images-dir /tmp/cache image pull oci:/srv/kmod-layout:v1 --dir-name / --json',
  ],
  'kmm-worker image inspect': [
    'kmm-worker image inspect quay.io/example/kmod:6.1.0-57-amd64',
    'kmm-worker image inspect quay.io/example/kmod:v1 --platform linux/arm64 --json',
  ],
  'kmm-worker image ls': ['kmm-worker image ls', 'kmm-worker --images-dir /var/lib/kmm/images image ls --json'],
  'kmm-worker image prune': ['kmm-worker image prune --older-than 7d', 'kmm-worker image prune --older-than 0s --json'],
  'kmm-worker preflight': [
    'kmm-worker preflight --kernel 6.1.0-58-amd64 --module module.yaml',
    'kmm-worker preflight --from-cluster --kernel 5.14.0-427.el9.aarch64 --platform linux/arm64',
    'kmm-worker preflight --preflight pv.yaml --from-cluster --write-status pv-ocp --json',
  ],
  'kmm-worker day1 pull': [
    'kmm-worker day1 pull --image quay.io/example/kmod --module mydrv',
    'KMM_DAY1_IMAGE=quay.io/example/kmod KMM_DAY1_MODULE=mydrv kmm-worker day1 pull --reboot-command "systemctl reboot"',
  ],
  'kmm-worker day1 load': [
    'kmm-worker day1 load --image quay.io/example/kmod --module mydrv',
    'kmm-worker day1 load --image quay.io/example/kmod --module mydrv --in-tree-modules mydrv_old',
  ],
  'kmm-worker day1 machineconfig': [
    'kmm-worker day1 machineconfig --name 99-mydrv --pool worker --image quay.io/example/kmod --module mydrv > mc.yaml',
  ],
  'kmm-worker diagnose': [
    'kmm-worker diagnose /etc/kmm-worker/config.yaml',
    'kmm-worker diagnose --json',
    'kmm-worker --host-root /host diagnose /etc/kmm-worker/config.yaml --output /tmp/kmm-diagnose.tar.gz',
  ],
};

interface HelpNode {
  name(): string;
  parent: HelpNode | null;
  commands: readonly HelpNode[];
  addHelpText(position: 'after', text: string): unknown;
}

function fullName(cmd: HelpNode): string {
  const parts: string[] = [];
  for (let c: HelpNode | null = cmd; c; c = c.parent) parts.unshift(c.name());
  return parts.join(' ');
}

/** Appends its examples to the help of every command of the tree that has some. */
export function addExamples(root: HelpNode): void {
  const walk = (cmd: HelpNode) => {
    const examples = HELP_EXAMPLES[fullName(cmd)];
    if (examples) cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
    cmd.commands.forEach(walk);
  };
  walk(root);
}
