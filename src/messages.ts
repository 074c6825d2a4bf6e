/**
 * The failure messages that end with a fix, in one place so their wording stays the same everywhere.
 * A fix is said in the user's own terms: a flag to a command-line user, a field to someone whose
 * settings come from a ModuleConfig (the worker) or from a Module (preflight).
 */

/** Who set the options of this run, hence where the fix goes. One command runs per process. */
export type Audience = 'cli' | 'module-config' | 'module';

let audience: Audience = 'cli';

/** Called by a command at its start when its image settings come from a file rather than flags. */
export function speakTo(a: Audience): void {
  audience = a;
}

export function currentAudience(): Audience {
  return audience;
}

function insecureFix(a: Audience): string {
  switch (a) {
    case 'module-config':
      return 'set insecurePull: true in the config';
    case 'module':
      return "set the Module's registryTLS.insecureSkipTLSVerify: true (or insecure: true for plain HTTP), or pass --insecure";
    default:
      return 'pass --insecure';
  }
}

export const messages = {
  tlsUntrusted(registry: string, endpoint: string, detail: string, a: Audience = audience): string {
    // Node's own advice (restart Node with --use-system-ca) is not something a kmm-worker user can act on
    const why = detail.replace(/;?\s*if the root CA is installed locally, try running Node\.js with --use-system-ca\.?/i, '');
    return `registry ${registry}: TLS certificate not trusted (${why}); put the registry's CA in ` +
      `/etc/containers/certs.d/${endpoint}/ca.crt (under --host-root), or to skip verification ${insecureFix(a)}`;
  },
  plainHttp(registry: string, a: Audience = audience): string {
    return `registry ${registry} does not speak HTTPS; to use plain HTTP ${insecureFix(a)}`;
  },
  repositoryUnknown(image: string, repository: string, registry: string): string {
    return `image ${image}: repository ${repository} not found on registry ${registry}; check the image name`;
  },
  manifestUnknown(image: string, what: string, registry: string, tags?: string[]): string {
    const base = `image ${image}: ${what} not found on registry ${registry}`;
    if (!tags) return base;
    if (tags.length === 0) return `${base}; the repository has no tags`;
    const shown = tags.slice(0, 8).join(', ');
    return `${base}; the repository has: ${shown}${tags.length > 8 ? ` and ${tags.length - 8} more` : ''}`;
  },
  kernelPlatformMismatch(kernel: string, kernelArch: string, hostArch: string): string {
    return `kernel ${kernel} is an ${kernelArch} kernel but the images would be checked for this host's ${hostArch}; ` +
      `pass --platform linux/${kernelArch}`;
  },
};
