/** Reading a modprobe command line as kmod's modprobe does: which modules a raw argv (rawArgs) acts on. */

// modprobe options that take a value as the next argument
const WITH_VALUE = new Set(['-d', '--dirname', '-S', '--set-version', '-C', '--config']);

/** The modules an arbitrary modprobe argv acts on (for rawArgs): all operands with -a/-r, else the first. */
export function modulesOfArgv(argv: string[]): string[] {
  const operands: string[] = [];
  let all = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('--')) {
      if (a === '--all' || a === '--remove') all = true;
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      const flags = a.slice(1);
      if (/[ar]/.test(flags.replace(/[dSC].*$/, ''))) all = true;
      // a value glued to or following a short option that takes one (-d/opt, -dv /opt is not valid modprobe)
      if (/^[^dSC]*[dSC]$/.test(flags)) i++;
      continue;
    }
    operands.push(a);
  }
  return all ? operands : operands.slice(0, 1);
}
