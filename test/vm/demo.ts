// `npm run demo`: the README's main job, `kmm-worker kmod load` / `kmod unload`, run for real against Debian's
// kernel in a throw-away QEMU guest — the kmod image pulled from a registry on this machine's loopback — with
// the kernel's own answers shown: dmesg, /proc/modules, the module's parameters. No cluster, no registry of yours.
import { startLab } from './lab.js';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);

async function main(): Promise<number> {
  say(bold('kmm-worker demo: a real kernel in QEMU, a real registry on 127.0.0.1'));
  const lab = await startLab((line) => say(`  · ${line}`));
  try {
    const { guest, kmods } = lab;
    const show = async (title: string, script: string) => {
      const r = await guest.exec(script);
      say();
      say(bold(`guest# ${title}`));
      const text = (r.stdout + r.stderr).trimEnd();
      if (text) say(text.replace(/^/gm, '  '));
      return r;
    };
    const config = [
      `kernelVersion: ${kmods.kver}`,
      `containerImage: ${lab.guestImage}`,
      'insecurePull: true   # the guest reaches the registry over plain HTTP at 10.0.2.100',
      'modprobe:',
      '  moduleName: kmm_hello',
      '  parameters: [count=42, greeting=hello-from-kmm-worker]',
      '  firmwarePath: /firmware',
      '  modulesLoadingOrder: [kmm_hello, kmm_standalone]',
    ].join('\n');
    say();
    say(bold(`guest: Linux ${kmods.kver} under QEMU (${guest.accel}), booted in ${guest.bootSeconds.toFixed(1)} s`));
    await show('cat /etc/kmm-worker/config.yaml', `mkdir -p /etc/kmm-worker && cat > /etc/kmm-worker/config.yaml <<'EOF'\n${config}\nEOF\ncat /etc/kmm-worker/config.yaml`);
    await guest.exec('dmesg -c >/dev/null');
    const load = await show('kmm-worker kmod load /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware --log-format pretty',
      'kmm-worker kmod load /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware --log-format pretty; echo "exit code $?"');
    await show('dmesg   (what the kernel said)', 'dmesg -c');
    await show('grep kmm_ /proc/modules', 'grep kmm_ /proc/modules');
    await show('grep . /sys/module/kmm_hello/parameters/* /sys/module/kmm_hello/srcversion',
      'grep . /sys/module/kmm_hello/parameters/* /sys/module/kmm_hello/srcversion');
    await show('cat /sys/module/firmware_class/parameters/path; find /var/lib/firmware -type f',
      'cat /sys/module/firmware_class/parameters/path; find /var/lib/firmware -type f');
    const unload = await show('kmm-worker kmod unload /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware --log-format pretty',
      'kmm-worker kmod unload /etc/kmm-worker/config.yaml --firmware-path /var/lib/firmware --log-format pretty; echo "exit code $?"');
    await show('dmesg', 'dmesg -c');
    await show('grep -c kmm_ /proc/modules', 'grep -c kmm_ /proc/modules');
    const ok = /exit code 0$/.test(load.stdout.trim()) && /exit code 0$/.test(unload.stdout.trim());
    say();
    say(bold(ok ? 'demo: load and unload succeeded on a real kernel' : 'demo: kmm-worker failed (see above)'));
    return ok ? 0 : 1;
  } finally {
    await lab.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
