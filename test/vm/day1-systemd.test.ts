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
import { buildDisk, ensureSystemdRootfs } from './systemd/disk.js';

const REPO = 'kmm/kmm-test-kmods';
const PORT = 5000;
const MODULE = 'kmm_hello';
// A systemd boot of Node programs under TCG: ~1 min each on an idle 2-core machine, several when it is busy.
t.setTimeout(30 * 60_000);
const t0 = Date.now();

let kmods: TestKmods;
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
async function rebootInto(n: number): Promise<number> {
  const t1 = Date.now();
  await sh('systemctl --no-block reboot');
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
  const rootfs = await step('Debian rootfs (cached)', () => ensureSystemdRootfs(kmods));
  registry = await step('registry start', () => startRegistry());
  const reg = registry;
  await step('image build + push', async () => {
    const tree = path.join(workDir, 'image-tree');
    writeKmodTree(tree, kmods);
    const img = await buildLayout({ dir: path.join(workDir, 'layout'), tag: kmods.kver, layers: kmodTreeLayers(tree) });
    return pushImage(img, reg, `${REPO}:${kmods.kver}`);
  });
  const disk = await step('disk image', () => buildDisk(rootfs, workDir, {
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
    forwards: [{ guestPort: PORT, hostPort: Number(reg.host.split(':')[1]) }],
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
  const secs = await rebootInto(3);
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
