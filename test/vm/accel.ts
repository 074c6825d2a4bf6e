// Which QEMU accelerator can boot a stock kernel here. /dev/kvm alone proves nothing: some hosts expose a
// software KVM (no vmx/svm in /proc/cpuinfo) under which a stock kernel crawls or dies, so KVM is only tried
// when the CPU advertises hardware virtualisation and QEMU reports KVM enabled; the caller still falls back to
// TCG when a KVM boot fails.
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';

export type Accel = 'kvm' | 'tcg';

export function qemuArgsFor(accel: Accel): string[] {
  return accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max'];
}

/** Accelerators to try, best first. `KMM_VM_ACCEL=tcg|kvm` forces one. */
export async function acceleratorCandidates(): Promise<{ accels: Accel[]; why: string }> {
  const forced = process.env.KMM_VM_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return { accels: [forced], why: `KMM_VM_ACCEL=${forced}` };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accels: ['tcg'], why: 'no usable /dev/kvm' };
  }
  if (!/\b(vmx|svm)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) {
    return { accels: ['tcg'], why: '/dev/kvm exists but the CPU shows no vmx/svm (software KVM)' };
  }
  const ok = await qemuSaysKvmEnabled();
  return ok
    ? { accels: ['kvm', 'tcg'], why: 'vmx/svm present and QEMU enables KVM' }
    : { accels: ['tcg'], why: 'QEMU could not enable KVM' };
}

function qemuSaysKvmEnabled(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = execFile(
      'qemu-system-x86_64',
      ['-accel', 'kvm', '-machine', 'none', '-display', 'none', '-nodefaults', '-qmp', 'stdio'],
      { timeout: 20_000 },
      (_err, stdout) => resolve(/"enabled":\s*true/.test(stdout)),
    );
    child.stdin?.end('{"execute":"qmp_capabilities"}{"execute":"query-kvm"}{"execute":"quit"}');
  });
}
