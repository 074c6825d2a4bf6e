/**
 * Defaults that a flag's help, the flag's own default and the code reading a config or a Module all state: each is
 * written here once. This module imports nothing, so the command line can read it without loading the code that
 * uses the values.
 */

/** The image directory holding `lib/modules/<kernel>` when none is named (`dirName` of KMM's Module and config). */
export const DEFAULT_DIR_NAME = '/opt';

/** The host firmware directory when none is named (the kernel's own search path). */
export const DEFAULT_FIRMWARE_DIR = '/var/lib/firmware';

/** What the Day-1 pull service runs after storing a new image. */
export const DEFAULT_REBOOT_COMMAND = 'systemctl reboot';

/** The image pull policy when none is named (`imagePullPolicy` of KMM's config, `--pull-policy`), as Kubernetes has it for a tagged image. */
export const DEFAULT_PULL_POLICY = 'IfNotPresent';
