// Day-1 under a real systemd: a Debian root filesystem (debootstrap minbase + systemd, test/vm/systemd/) boots
// Debian's kernel under QEMU with systemd as PID 1, the shipped kmm-day1-load/-pull units enabled and the shipped
// settings file filled in. The kmod image sits in a real registry on the host's 127.0.0.1. Everything asserted
// comes from the guest's journal, systemctl/systemd-analyze and the kernel (/sys/module). See docs/day1.md.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestKmods, type TestKmods } from '../kmods/kmods.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { buildLayout, pushImage } from '../helpers/images.js';
import { Guest, guestForwardHost, type ExecResult } from './guest.js';
import { kmodTreeLayers, writeKmodTree } from './kmod-image.js';
import { buildDisk, ensureSystemdRootfs, type SystemdRootfs } from './systemd/disk.js';
import { ensureSecondKernel } from './systemd/second-kernel.js';

const REPO = 'kmm/kmm-test-kmods';
const PORT = 5000;
const MODULE = 'kmm_hello';
// A systemd boot of Node programs under TCG: ~1 min each on an idle 2-core machine, several when it is busy.
t.setTimeout(30 * 60_000);
const t0 = Date.now();

let kmods: TestKmods;
/** a second real kernel package (another ABI), for the prefetch proof */
let kmods2: TestKmods;
let rootfs: SystemdRootfs;
let disk: string;
let hostPort: number;
let registry: TestRegistry | undefined;
let guest: Guest | undefined;
let workDir: string;
const figures: string[] = [];

function report(test: Test | typeof t, line: string) {
  test.comment(`vm-systemd: ${line}`);
}

async function sh(script: string, timeoutMs = 120_000): Promise<ExecResult> {
  if (!guest) throw new Error('no guest');
  return guest.exec(script, { timeoutMs });
}

/** stdout of a guest command that must succeed */
async function out(script: string): Promise<string> {
  const r = await sh(script);
  if (r.code !== 0) throw new Error(`guest: '${script}' exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `systemctl show -p P --value unit` as a number (monotonic µs since boot) */
async function monotonic(unit: string, prop: string): Promise<number> {
  return Number((await out(`systemctl show -p ${prop} --value ${unit}`)).trim());
}

/** The control service's READY line: "@@READY <uptime> <boots in the journal>" */
const bootsIn = (ready: string) => Number(ready.split(' ')[2]);

/** Asks for a reboot and waits until the control service of boot `n` is up. */
async function rebootInto(t: Test, n: number): Promise<number> {
  const t1 = Date.now();
  // a timer, so the answer leaves before the control service is stopped by the shutdown
  await out('systemd-run --quiet --on-active=2 /bin/systemctl reboot');
  const ready = await guest!.waitForLine((l) => l.startsWith('@@READY') && bootsIn(l) >= n, 15 * 60_000, `boot ${n}`);
  t.equal(bootsIn(ready), n, `the guest is in boot ${n}`);
  return (Date.now() - t1) / 1000;
}

const hostSrcversion = (module: string) =>
  execFileSync('modinfo', ['-F', 'srcversion', kmods.ko[module]!], { encoding: 'utf8' }).trim();

t.before(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmm-vm-systemd-'));
  const step = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t1 = Date.now();
    const v = await f();
    report(t, `${name}: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    return v;
  };
  kmods = await step('kernel + test modules', () => ensureTestKmods());
  kmods2 = await step('second kernel + test modules', () => ensureSecondKernel());
  rootfs = await step('Debian rootfs (cached)', () =>
    ensureSystemdRootfs(kmods, { kver: kmods2.kver, modulesDir: kmods2.kernel.modulesDir }));
  registry = await step('registry start', () => startRegistry());
  const reg = registry;
  await step('image build + push (both kernels)', async () => {
    for (const k of [kmods, kmods2]) {
      const tree = path.join(workDir, `image-tree-${k.kver}`);
      writeKmodTree(tree, k);
      const img = await buildLayout({ dir: path.join(workDir, 'layout'), tag: k.kver, layers: kmodTreeLayers(tree) });
      await pushImage(img, reg, `${REPO}:${k.kver}`);
    }
  });
  hostPort = Number(reg.host.split(':')[1]);
  disk = await step('disk image', () => buildDisk(rootfs, workDir, {
    settings: { KMM_DAY1_IMAGE: `${guestForwardHost(PORT)}/${REPO}`, KMM_DAY1_MODULE: MODULE },
  }));
  // Boot 1 stores the image and reboots; the control service (ordered after the pull) first answers in boot 2.
  guest = await step('boots 1 and 2 (first boot, the pull\'s reboot, second boot)', () => Guest.boot({
    vmlinux: kmods.kernel.vmlinux,
    initrd: rootfs.initrd(kmods.kver),
    disks: [disk],
    append: 'root=/dev/vda rw net.ifnames=0 quiet systemd.show_status=1 sysrq_always_enabled',
    allowReboot: true,
    workDir,
    bootTimeoutS: 20 * 60,
    forwards: [{ guestPort: PORT, hostPort }],
    log: (l) => report(t, l),
  }));
  report(t, `accelerator used: ${guest.accel}`);
});

t.teardown(async () => {
  await guest?.poweroff().catch(() => guest?.kill());
  await registry?.stop();
  if (!process.env.KMM_VM_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  else report(t, `kept ${workDir}`);
  for (const f of figures) report(t, f);
  report(t, `whole file ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

t.test('first boot: the load finds nothing, the pull stores the image and reboots once', async (t) => {
  const boots = (await out('journalctl --list-boots -q')).trim().split('\n');
  t.equal(boots.length, 2, 'two boots in the journal: the machine restarted once', { boots });
  const load1 = await out('journalctl -b -1 -o cat -u kmm-day1-load.service');
  t.match(load1, `${REPO}:${kmods.kver} is not in the store`, 'boot 1: the load unit found nothing');
  t.match(load1, 'kmm-day1-pull.service will fetch it', 'boot 1: and says the pull unit will fetch it');
  const pull1 = await out('journalctl -b -1 -o cat -u kmm-day1-pull.service');
  t.match(pull1, new RegExp(`stored ${guestForwardHost(PORT)}/${REPO}:${kmods.kver}@sha256:[0-9a-f]{64}`), 'boot 1: the pull stored the image');
  t.match(pull1, 'rebooting: systemctl reboot', 'boot 1: the pull ran the reboot');
  t.equal((pull1.match(/rebooting:/g) ?? []).length, 1, 'boot 1: exactly one reboot asked for');
  const sys1 = await out('journalctl -b -1 -o cat _PID=1');
  t.match(sys1, /Reached target (reboot\.target|System Reboot)/, 'boot 1: systemd reached the reboot target');
  t.notMatch(await out(`journalctl -b -1 -k -o cat`), `${MODULE}: loaded`, `boot 1: ${MODULE} was never loaded`);
});

t.test('second boot: the load unit loads the module before network-pre.target; no further reboot', async (t) => {
  const load2 = await out('journalctl -b 0 -o cat -u kmm-day1-load.service');
  t.match(load2, `loading ${MODULE} from the stored image`, 'boot 2: the load unit loaded from the store');
  t.equal((await out('systemctl is-active kmm-day1-load.service')).trim(), 'active', 'the load unit is active');
  t.equal((await out(`cat /sys/module/${MODULE}/initstate`)).trim(), 'live', `/sys/module/${MODULE} is live`);
  t.equal((await out(`cat /sys/module/${MODULE}/srcversion`)).trim(), hostSrcversion(MODULE),
    'its srcversion is the image\'s .ko');

  const loadDone = await monotonic('kmm-day1-load.service', 'ActiveEnterTimestampMonotonic');
  const netPre = await monotonic('network-pre.target', 'ActiveEnterTimestampMonotonic');
  const networkd = await monotonic('systemd-networkd.service', 'ExecMainStartTimestampMonotonic');
  t.ok(loadDone > 0 && netPre > 0 && networkd > 0, 'systemd recorded all three times', { loadDone, netPre, networkd });
  t.ok(loadDone <= netPre, `the load finished (${(loadDone / 1e6).toFixed(2)} s) before network-pre.target (${(netPre / 1e6).toFixed(2)} s)`);
  t.ok(loadDone < networkd, `... and before systemd-networkd started (${(networkd / 1e6).toFixed(2)} s)`);
  const kernelLine = await out(`journalctl -b 0 -k -o short-monotonic --grep '${MODULE}: loaded'`);
  const kernelAt = Number(/\[\s*([\d.]+)\]/.exec(kernelLine)?.[1]);
  t.ok(kernelAt > 0 && kernelAt * 1e6 < netPre, `the kernel logged '${MODULE}: loaded' at ${kernelAt} s, before network-pre.target`, { kernelLine });

  const chain = await out('systemd-analyze critical-chain --no-pager network-pre.target kmm-day1-load.service');
  report(t, `systemd-analyze critical-chain (boot 2):\n${chain}`);
  t.match(chain, 'kmm-day1-load.service', 'critical-chain shows the load unit');
  const time = (await out('systemd-analyze time --no-pager')).trim();
  figures.push(`boot 2 systemd-analyze time: ${time.split('\n')[0]}`);
  figures.push(`boot 2: load unit active at ${(loadDone / 1e6).toFixed(2)} s, network-pre.target at ${(netPre / 1e6).toFixed(2)} s, ` +
    `systemd-networkd started at ${(networkd / 1e6).toFixed(2)} s (monotonic, since the kernel started)`);
  figures.push(`boot 2: kmm-day1-load.service took ${(await out('systemd-analyze blame --no-pager | grep kmm-day1-load')).trim()}`);

  const pull2 = await out('journalctl -b 0 -o cat -u kmm-day1-pull.service');
  t.match(pull2, 'is already in the store', 'boot 2: the pull found the image stored');
  t.notMatch(pull2, 'rebooting', 'boot 2: and did not reboot');
  t.equal((await out('journalctl --list-boots -q')).trim().split('\n').length, 2, 'still two boots');
  t.equal((await out('systemctl --failed --plain --no-legend')).trim(), '', 'no failed unit');
});

t.test('a broken store entry makes the load unit fail, visible in systemctl --failed', async (t) => {
  // a complete store entry whose .ko is no module any more: the load must fail, not pass as "nothing to load"
  const ko = (await out(`find /var/lib/kmm -name '${MODULE}.ko' -path '*/${kmods.kver}/*'`)).trim().split('\n')[0]!;
  t.ok(ko, 'the stored module file', { ko });
  await out(`rm -f '${ko}' && echo 'not an ELF module' > '${ko}' && sync`);
  const secs = await rebootInto(t, 3);
  figures.push(`reboot into boot 3: ${secs.toFixed(1)} s as the host saw it`);
  const failed = await out('systemctl --failed --plain --no-legend');
  t.match(failed, /kmm-day1-load\.service\s+loaded\s+failed\s+failed/, 'systemctl --failed lists the load unit');
  t.equal((await sh('systemctl is-failed kmm-day1-load.service')).stdout.trim(), 'failed', 'is-failed says failed');
  const load3 = await out('journalctl -b 0 -o cat -u kmm-day1-load.service');
  t.match(load3, /Failed with result 'exit-code'|Main process exited, code=exited, status=1/, 'the journal shows exit code 1');
  t.match(load3, new RegExp(`${MODULE}`), 'and the cause names the module', { load3 });
  t.equal((await sh(`test -e /sys/module/${MODULE}`)).code, 1, `${MODULE} is not loaded`);
  t.equal((await out('systemctl is-active systemd-networkd.service')).trim(), 'active', 'the boot went on: the network is up');
  t.notMatch(await out('journalctl -b 0 -o cat -u kmm-day1-pull.service'), 'rebooting', 'the pull did not reboot');
});

t.test('prefetch: the pull on the old kernel stores the new kernel\'s image; its first boot loads early, no second reboot', async (t) => {
  const k2 = kmods2.kver;
  // "apt install linux-image-<k2>": its modules are in place, its image lands in /boot; it becomes the default entry
  await out(`mv /var/lib/kmm-test/vmlinuz-${k2} /boot/ && mkdir -p /boot/grub && ` +
    `printf 'saved_entry=gnulinux-advanced-kmm>gnulinux-${k2}-advanced-kmm\\n' > /boot/grub/grubenv`);
  const r = await sh('systemctl restart kmm-day1-pull.service', 600_000);
  t.equal(r.code, 0, 'the pull unit ran on the old kernel', { stderr: r.stderr });
  const pull = await out('journalctl -b 0 -o cat -u kmm-day1-pull.service');
  t.match(pull, `the next boot starts kernel ${k2} (default boot entry)`, 'the pull names the next kernel');
  t.match(pull, new RegExp(`prefetched ${guestForwardHost(PORT)}/${REPO}:${k2}@sha256:[0-9a-f]{64} for the installed kernel ${k2}`),
    'and stored its image');
  t.notMatch(pull, 'rebooting', 'without a reboot');
  t.equal((await out('uname -r')).trim(), kmods.kver, 'still on the old kernel');

  // QEMU's -kernel is this machine's boot loader: the host boots the default entry's kernel, from the same disk
  await guest!.poweroff();
  const t1 = Date.now();
  guest = await Guest.boot({
    vmlinux: kmods2.kernel.vmlinux,
    initrd: rootfs.initrd(k2),
    disks: [disk],
    append: 'root=/dev/vda rw net.ifnames=0 quiet systemd.show_status=1 sysrq_always_enabled',
    allowReboot: true,
    workDir,
    bootTimeoutS: 15 * 60,
    forwards: [{ guestPort: PORT, hostPort }],
    log: (l) => report(t, l),
  });
  figures.push(`boot 4 (new kernel ${k2}) to the control service: ${((Date.now() - t1) / 1000).toFixed(1)} s as the host saw it`);
  t.equal((await out('uname -r')).trim(), k2, `the new kernel ${k2} runs`);
  t.equal((await out('journalctl --list-boots -q')).trim().split('\n').length, 4, 'boot 4: no reboot in between');
  const load = await out('journalctl -b 0 -o cat -u kmm-day1-load.service');
  t.match(load, `loading ${MODULE} from the stored image ${guestForwardHost(PORT)}/${REPO}:${k2}@sha256:`, 'the first boot of the new kernel loads from the store');
  t.equal((await out(`cat /sys/module/${MODULE}/initstate`)).trim(), 'live', `${MODULE} is live`);
  const src2 = execFileSync('modinfo', ['-F', 'srcversion', kmods2.ko[MODULE]!], { encoding: 'utf8' }).trim();
  t.equal((await out(`cat /sys/module/${MODULE}/srcversion`)).trim(), src2, 'with the srcversion of the module built for the new kernel');
  const loadDone = await monotonic('kmm-day1-load.service', 'ActiveEnterTimestampMonotonic');
  const netPre = await monotonic('network-pre.target', 'ActiveEnterTimestampMonotonic');
  t.ok(loadDone > 0 && loadDone <= netPre, `loaded (${(loadDone / 1e6).toFixed(2)} s) before network-pre.target (${(netPre / 1e6).toFixed(2)} s)`);
  figures.push(`boot 4 (${k2}): load unit active at ${(loadDone / 1e6).toFixed(2)} s, network-pre.target at ${(netPre / 1e6).toFixed(2)} s`);
  const pull4 = await out('journalctl -b 0 -o cat -u kmm-day1-pull.service');
  t.match(pull4, 'is already in the store', 'the pull finds the image stored');
  t.notMatch(pull4, 'rebooting', 'and does not reboot: no second reboot after the kernel upgrade');
});
