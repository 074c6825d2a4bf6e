// Proof on a real kernel: Debian's kernel boots under QEMU with Node 24 and kmm-worker (built from this
// checkout) in its initramfs; real `kmm-worker` commands run inside it, and every assertion is about what the
// kernel says (/proc/modules, /sys/module, dmesg). The kmod image comes from a real registry on the host's
// loopback, reached through QEMU user networking. See docs/vm.md.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { startLab, GUEST_SHARED_DIR, GUEST_SHARED_DIR_NO_DEPMOD, type Lab } from './lab.js';
import type { ExecResult } from './guest.js';
import { FIRMWARE_BODY, FIRMWARE_REL } from './kmod-image.js';

const HOST_FIRMWARE = '/var/lib/firmware';
// Boot + ~25 kmm-worker runs under TCG: ~2 min on an idle 2-core machine, far more when other suites share it.
t.setTimeout(20 * 60_000);
const t0 = Date.now();
let lab: Lab;

/** A report line, as a TAP comment: in raw TAP (CI logs), and on a terminal with `tap --comments` (test:vm). */
function report(test: Test | typeof t, line: string) {
  test.comment(`vm: ${line}`);
}

t.before(async () => {
  lab = await startLab((line) => report(t, line));
  report(t, `accelerator used: ${lab.guest.accel}`);
});
t.teardown(async () => {
  await lab?.close();
  report(t, `whole suite ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

// ---------------------------------------------------------------- guest helpers
const sh = (script: string, timeoutMs?: number) => lab.guest.exec(script, { timeoutMs });

async function kw(args: string): Promise<ExecResult> {
  const r = await sh(`kmm-worker ${args}`);
  return r;
}

/** /proc/modules as name → { refcnt, state } */
async function procModules(): Promise<Map<string, { refcnt: number; state: string; line: string }>> {
  const r = await sh('cat /proc/modules');
  const m = new Map<string, { refcnt: number; state: string; line: string }>();
  for (const line of r.stdout.trim().split('\n').filter(Boolean)) {
    const f = line.split(/\s+/);
    m.set(f[0]!, { refcnt: Number(f[2]), state: f[4]!, line });
  }
  return m;
}

async function read(file: string): Promise<string | undefined> {
  const r = await sh(`cat '${file}'`);
  return r.code === 0 ? r.stdout.replace(/\n$/, '') : undefined;
}

async function exists(file: string): Promise<boolean> {
  return (await sh(`test -e '${file}'`)).code === 0;
}

/** The kernel ring buffer since the last call (busybox `dmesg -c` reads and clears). */
async function dmesgDrain(): Promise<string[]> {
  const r = await sh('dmesg -c');
  return r.stdout.split('\n').filter(Boolean);
}

const indexOfLine = (lines: string[], text: string) => lines.findIndex((l) => l.includes(text));

async function writeConfig(name: string, config: Record<string, unknown>): Promise<string> {
  const file = `/etc/kmm/${name}.yaml`;
  const r = await sh(`mkdir -p /etc/kmm && cat > ${file} <<'KMM_EOF'\n${YAML.stringify(config)}KMM_EOF`);
  if (r.code !== 0) throw new Error(`writing ${file}: ${r.stderr}`);
  return file;
}

const hostSrcversion = (module: string) =>
  execFileSync('modinfo', ['-F', 'srcversion', lab.kmods.ko[module]!], { encoding: 'utf8' }).trim();

function exitsWith(t: Test, r: ExecResult, code: number, what: string) {
  t.equal(r.code, code, `${what} exits ${code} (${(r.ms / 1000).toFixed(1)} s)`, { stderr: r.stderr, stdout: r.stdout });
}

// Scenarios 1, 2 and 7 take the kmods from the image (scenario 1 pulls it, 2 finds it in the image cache);
// 1b and 3-6 as a KMM init container leaves them (--shared-dir).
const SHARED = `--shared-dir ${GUEST_SHARED_DIR}`;

const baseConfig = (moduleName: string, extra: Record<string, unknown> = {}) => ({
  kernelVersion: lab.kmods.kver,
  containerImage: lab.guestImage,
  imagePullPolicy: 'IfNotPresent',
  // the guest reaches the registry at 10.0.2.100 over plain HTTP, which is not loopback for kmm-worker
  insecurePull: true,
  ...extra,
  modprobe: { moduleName, ...((extra.modprobe as object | undefined) ?? {}) },
});

/** Scenario wrapper: prints its result and time as a comment too, so the CI log reads as a report. */
function scenario(name: string, fn: (t: Test) => Promise<void>) {
  t.test(name, async (t) => {
    const s0 = Date.now();
    await dmesgDrain();
    await fn(t);
    const ok = t.passing();
    report(t, `${name}: ${ok ? 'PASS' : 'FAIL'} (${((Date.now() - s0) / 1000).toFixed(1)} s)`);
  });
}

// ---------------------------------------------------------------- scenarios
scenario('guest: the Debian kernel, Node 24 and kmm-worker are what runs', async (t) => {
  const probe = await sh(`printf 'out \\303\\251\\nline 2'; echo 'to stderr' >&2; exit 3`);
  t.same([probe.code, probe.stdout, probe.stderr], [3, 'out \u00e9\nline 2', 'to stderr\n'],
    'the control channel carries exit code, stdout and stderr byte-exact');
  t.equal(await read('/proc/sys/kernel/osrelease'), lab.kmods.kver);
  t.match((await sh('node --version')).stdout, /^v24\./);
  t.match((await kw('version')).stdout, /kmm-worker/);
  t.notOk((await procModules()).has('kmm_hello'), 'no test module is loaded at boot');
  // The control loop must not lose a line to orphans exiting: PID 1 adopts them, and their SIGCHLD used to make
  // busybox `read` drop a half-read command line (two CI runs hung so). Orphans exit every 0.1 s while a command
  // arrives in two halves a second apart.
  exitsWith(t, await sh('(i=0; while [ $i -lt 20 ]; do (sleep 0.1 &); sleep 0.1; i=$((i + 1)); done &)'), 0,
    'a stream of orphans started');
  const split = await lab.guest.exec('echo intact', { pauseMidLineMs: 1000, timeoutMs: 60_000 })
    .catch((e: Error) => ({ stdout: e.message.split('\n')[0] }));
  t.equal(split.stdout, 'intact\n', 'a command line that arrives in halves while orphans exit runs intact');
});

scenario('1. kmod load pulls the image from the host registry; parameters reach the kernel; unload', async (t) => {
  const cfg = await writeConfig('hello', baseConfig('kmm_hello', {
    modprobe: { parameters: ['count=7', 'greeting=from-kmm-worker'] },
  }));
  await lab.registry.clearRequests();
  exitsWith(t, await kw(`kmod load ${cfg}`), 0, 'kmod load');

  const reqs = await lab.registry.requests();
  t.ok(reqs.some((r) => r.method === 'GET' && r.path.startsWith('/v2/kmm/kmm-test-kmods/manifests/') && r.status === 200),
    'the image manifest was fetched from the host registry', { requests: reqs });
  t.ok(reqs.some((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:') && r.status === 200),
    'layer blobs were fetched from the host registry');

  const mods = await procModules();
  t.equal(mods.get('kmm_hello')?.state, 'Live', '/proc/modules: kmm_hello Live', { line: mods.get('kmm_hello')?.line });
  t.equal(await read('/sys/module/kmm_hello/parameters/count'), '7');
  t.equal(await read('/sys/module/kmm_hello/parameters/greeting'), 'from-kmm-worker');
  t.equal(await read('/sys/module/kmm_hello/srcversion'), hostSrcversion('kmm_hello'), 'srcversion is the image\'s');
  const dmesg = await dmesgDrain();
  t.ok(indexOfLine(dmesg, 'kmm_hello: loaded count=7 greeting=from-kmm-worker') >= 0, 'dmesg shows the load', { dmesg });

  exitsWith(t, await kw(`kmod unload ${cfg}`), 0, 'kmod unload');
  t.notOk((await procModules()).has('kmm_hello'), '/proc/modules: kmm_hello gone');
  t.notOk(await exists('/sys/module/kmm_hello'), '/sys/module/kmm_hello gone');
  t.ok(indexOfLine(await dmesgDrain(), 'kmm_hello: unloaded count=7') >= 0, 'dmesg shows the unload');
});

scenario('1b. kmod load from a KMM init container\'s shared dir: no registry request', async (t) => {
  const cfg = await writeConfig('shared', {
    ...baseConfig('kmm_standalone'),
    containerImage: lab.guestImage.replace('kmm-test-kmods', 'never-pushed'),
  });
  await lab.registry.clearRequests();
  exitsWith(t, await kw(`kmod load ${cfg} --shared-dir ${GUEST_SHARED_DIR}`), 0, 'kmod load --shared-dir');
  t.equal((await procModules()).get('kmm_standalone')?.state, 'Live', '/proc/modules: kmm_standalone Live');
  t.same(await lab.registry.requests(), [], 'the registry was not asked');
  exitsWith(t, await kw(`kmod unload ${cfg} --shared-dir ${GUEST_SHARED_DIR}`), 0, 'kmod unload --shared-dir');
  t.notOk((await procModules()).has('kmm_standalone'), '/proc/modules: kmm_standalone gone');
});

scenario('2. firmware: kmm_fw loads only once kmm-worker installed the image\'s firmware and set firmware_class.path',
  async (t) => {
    const fwFile = `${HOST_FIRMWARE}/${FIRMWARE_REL}`;
    t.notOk(await exists(fwFile), 'the firmware is not on the host yet');
    // the proof that the module needs it: without the firmware the kernel refuses it
    const bare = await sh(`/usr/sbin/modprobe -d ${GUEST_SHARED_DIR}/opt kmm_fw`);
    t.not(bare.code, 0, 'plain modprobe of kmm_fw fails without the firmware');
    t.ok(indexOfLine(await dmesgDrain(), `kmm_fw: request_firmware(${FIRMWARE_REL}) failed: -2`) >= 0,
      'dmesg: request_firmware failed with ENOENT');

    const cfg = await writeConfig('fw', baseConfig('kmm_fw', { modprobe: { firmwarePath: '/firmware' } }));
    exitsWith(t, await kw(`kmod load ${cfg} --firmware-path ${HOST_FIRMWARE}`), 0, 'kmod load --firmware-path');
    t.equal(await read('/sys/module/firmware_class/parameters/path'), HOST_FIRMWARE, 'firmware_class.path set');
    t.equal(await read(fwFile), FIRMWARE_BODY, 'the image\'s firmware is on the host');
    t.equal((await procModules()).get('kmm_fw')?.state, 'Live', '/proc/modules: kmm_fw Live');
    const dmesg = await dmesgDrain();
    t.ok(indexOfLine(dmesg, `kmm_fw: got firmware ${FIRMWARE_REL} size=${FIRMWARE_BODY.length}`) >= 0,
      'dmesg: the kernel read the firmware kmm-worker installed', { dmesg });

    exitsWith(t, await kw(`kmod unload ${cfg} --firmware-path ${HOST_FIRMWARE}`), 0, 'kmod unload');
    t.notOk((await procModules()).has('kmm_fw'), '/proc/modules: kmm_fw gone');
    t.notOk(await exists(fwFile), 'the firmware file it installed is removed');
    t.notOk(await exists(`${HOST_FIRMWARE}/kmm-test`), 'the directory it left empty is removed');
    t.ok(await exists(HOST_FIRMWARE), 'the host firmware directory itself stays');
  });

scenario('3. modulesLoadingOrder: loaded last-to-first (dmesg order), unloaded in reverse', async (t) => {
  const order = ['kmm_hello', 'kmm_standalone', 'kmm_lib'];
  const cfg = await writeConfig('order', baseConfig('kmm_hello', { modprobe: { modulesLoadingOrder: order } }));
  exitsWith(t, await kw(`kmod load ${cfg} ${SHARED}`), 0, 'kmod load');
  const mods = await procModules();
  for (const m of order) t.equal(mods.get(m)?.state, 'Live', `/proc/modules: ${m} Live`);
  const loaded = await dmesgDrain();
  const at = order.map((m) => indexOfLine(loaded, `${m}: loaded`));
  t.ok(at.every((i) => i >= 0), 'each module logged its load', { dmesg: loaded });
  t.ok(at[2]! < at[1]! && at[1]! < at[0]!, 'kernel saw kmm_lib, then kmm_standalone, then kmm_hello', { dmesg: loaded });

  exitsWith(t, await kw(`kmod unload ${cfg} ${SHARED}`), 0, 'kmod unload');
  const left = await procModules();
  for (const m of order) t.notOk(left.has(m), `/proc/modules: ${m} gone`);
  const unloaded = await dmesgDrain();
  const un = order.map((m) => indexOfLine(unloaded, `${m}: unloaded`));
  t.ok(un.every((i) => i >= 0) && un[0]! < un[1]! && un[1]! < un[2]!,
    'unloaded in reverse: kmm_hello, kmm_standalone, kmm_lib', { dmesg: unloaded });
});

scenario('4. in-tree replacement: the in-tree dummy is removed and the image\'s dummy is live', async (t) => {
  exitsWith(t, await sh('/usr/sbin/modprobe dummy'), 0, 'modprobe of the in-tree dummy');
  t.equal((await procModules()).get('dummy')?.state, 'Live', 'in-tree dummy Live');
  t.notOk(await exists('/sys/module/dummy/srcversion'), 'the in-tree build has no srcversion');
  t.ok(await exists('/sys/class/net/dummy0'), 'the in-tree driver made dummy0');

  const cfg = await writeConfig('dummy', baseConfig('dummy', { inTreeModulesToRemove: ['dummy'] }));
  exitsWith(t, await kw(`kmod load ${cfg} ${SHARED}`), 0, 'kmod load with inTreeModulesToRemove');
  t.equal((await procModules()).get('dummy')?.state, 'Live', 'dummy Live');
  t.equal(await read('/sys/module/dummy/srcversion'), hostSrcversion('dummy'), 'srcversion: the image\'s dummy');
  t.equal(await read('/sys/module/dummy/version'), '1.0-kmm-oot');
  t.notOk(await exists('/sys/class/net/dummy0'), 'dummy0 went away with the in-tree driver');
  t.ok(indexOfLine(await dmesgDrain(), 'dummy: out-of-tree kmm-worker test build loaded') >= 0, 'dmesg: out-of-tree load');

  exitsWith(t, await kw(`kmod unload ${cfg} ${SHARED}`), 0, 'kmod unload');
  t.notOk((await procModules()).has('dummy'), 'dummy gone; the in-tree one is not reloaded');
});

scenario('5. without inTreeModulesToRemove the live in-tree dummy is an error (exit 1)', async (t) => {
  exitsWith(t, await sh('/usr/sbin/modprobe dummy'), 0, 'modprobe of the in-tree dummy');
  const cfg = await writeConfig('dummy-no-removal', baseConfig('dummy'));
  const r = await kw(`kmod load ${cfg} ${SHARED}`);
  exitsWith(t, r, 1, 'kmod load');
  t.match(r.stderr, /dummy/, 'the message names the module');
  t.match(r.stderr, /inTreeModulesToRemove/, 'the message says to add it to inTreeModulesToRemove');
  t.notOk(await exists('/sys/module/dummy/srcversion'), 'the in-tree dummy is still the live one');
  t.ok(await exists('/sys/class/net/dummy0'), 'dummy0 still there');
  exitsWith(t, await sh('/usr/sbin/modprobe -r dummy'), 0, 'cleanup: remove the in-tree dummy');
});

scenario('6. run (daemon): loads, re-loads a module removed behind its back, SIGTERM unloads and exits 0',
  async (t) => {
    const cfg = await writeConfig('daemon', baseConfig('kmm_hello', { modprobe: { parameters: ['count=3'] } }));
    // One guest script, so the shell that starts the daemon can `wait` for its exit code.
    const r = await sh(`
      live() { [ "$(cat /sys/module/kmm_hello/initstate 2>/dev/null)" = live ]; }
      upto() { i=0; while ! "$@"; do i=$((i + 1)); [ $i -gt 1200 ] && return 1; sleep 0.1; done; }
      ready() { timeout 2 wget -q -O /dev/null http://127.0.0.1:8081/readyz 2>/dev/null; }
      kmm-worker run ${cfg} ${SHARED} --health-addr 127.0.0.1:8081 --check-interval 1 >/tmp/daemon.log 2>&1 &
      pid=$!
      upto live && echo "loaded"
      upto ready && echo "readyz ok"
      /usr/sbin/rmmod kmm_hello && echo "removed behind its back"
      sleep 0.5; upto live && echo "re-loaded"
      kill -TERM $pid
      wait $pid; echo "exit $?"
      grep -q '^kmm_hello ' /proc/modules && echo "still loaded" || echo "unloaded"
      cat /tmp/daemon.log >&2`, 240_000);
    const lines = r.stdout.trim().split('\n');
    t.same(lines, ['loaded', 'readyz ok', 'removed behind its back', 're-loaded', 'exit 0', 'unloaded'],
      'the daemon loaded, answered /readyz, re-loaded the vanished module, and SIGTERM unloaded with exit 0',
      { stderr: r.stderr });
    const dmesg = await dmesgDrain();
    t.equal(dmesg.filter((l) => l.includes('kmm_hello: loaded count=3')).length, 2, 'dmesg: loaded twice', { dmesg });
    t.ok(indexOfLine(dmesg, 'kmm_hello: unloaded count=3') >= 0, 'dmesg: unloaded');
  });

scenario('7. Day-1: day1 pull stores the image and reboots once; day1 load works with the network down',
  async (t) => {
    // a store of its own: the image cache of the earlier scenarios already holds this image
    const day1 = `--image ${lab.guestRepo} --module kmm_hello --images-dir /var/lib/kmm/day1-store`;
    const pulled = await kw(`day1 pull ${day1} --insecure --reboot-command "touch /tmp/reboot-requested"`);
    exitsWith(t, pulled, 0, 'day1 pull');
    t.ok(await exists('/tmp/reboot-requested'), 'the reboot command ran after storing the image');
    await sh('rm -f /tmp/reboot-requested');
    exitsWith(t, await kw(`day1 pull ${day1} --insecure --reboot-command "touch /tmp/reboot-requested"`), 0,
      'second day1 pull');
    t.notOk(await exists('/tmp/reboot-requested'), 'nothing new stored: no second reboot');

    // before the network: no link, no route, and the registry is asked nothing
    exitsWith(t, await sh('ip link set eth0 down && ! ip route | grep -q default'), 0, 'network down');
    await lab.registry.clearRequests();
    const loaded = await kw(`day1 load ${day1}`);
    exitsWith(t, loaded, 0, 'day1 load');
    t.equal((await procModules()).get('kmm_hello')?.state, 'Live', '/proc/modules: kmm_hello Live');
    t.equal(await read('/sys/module/kmm_hello/srcversion'), hostSrcversion('kmm_hello'), 'srcversion is the image\'s');
    t.same(await lab.registry.requests(), [], 'no registry request during day1 load');
    await sh('/usr/sbin/rmmod kmm_hello; ip link set eth0 up && ip route add default via 10.0.2.2');
  });

scenario('9. modprobedDir: a parameter set only by the image\'s modprobe.d file reaches the kernel; nothing stays',
  async (t) => {
    const confDir = `${GUEST_SHARED_DIR}/etc/kmm-modprobe.d`;
    await sh(`mkdir -p ${confDir} && printf 'options kmm_hello count=11 greeting=from-modprobe-d\n' > ${confDir}/kmm.conf`);
    const snapshot = 'ls -la /etc/modprobe.d /lib/modprobe.d /run/modprobe.d 2>&1; ls /tmp /var/tmp 2>&1';
    const before = (await sh(snapshot)).stdout;
    const cfg = await writeConfig('modprobed', baseConfig('kmm_hello', { modprobe: { modprobedDir: '/etc/kmm-modprobe.d' } }));
    exitsWith(t, await kw(`kmod load ${cfg} ${SHARED}`), 0, 'kmod load');
    t.equal(await read('/sys/module/kmm_hello/parameters/count'), '11', 'count from the image\'s modprobe.d file');
    t.equal(await read('/sys/module/kmm_hello/parameters/greeting'), 'from-modprobe-d', 'greeting from the image\'s modprobe.d file');
    t.ok(indexOfLine(await dmesgDrain(), 'kmm_hello: loaded count=11 greeting=from-modprobe-d') >= 0, 'dmesg shows the load');
    exitsWith(t, await kw(`kmod unload ${cfg} ${SHARED}`), 0, 'kmod unload');
    t.notOk((await procModules()).has('kmm_hello'), '/proc/modules: kmm_hello gone');
    t.equal((await sh(snapshot)).stdout, before, 'no modprobe.d directory and no temp dir changed');
    await sh(`rm -rf ${GUEST_SHARED_DIR}/etc`);
  });

scenario('8. a symbol dependency from kmods without modules.dep: kmm-worker runs depmod, modprobe loads both',
  async (t) => {
    const dir = `${GUEST_SHARED_DIR_NO_DEPMOD}/opt/lib/modules/${lab.kmods.kver}`;
    t.notOk(await exists(`${dir}/modules.dep`), 'the kmods come without modules.dep');
    const flags = `--shared-dir ${GUEST_SHARED_DIR_NO_DEPMOD}`;
    const cfg = await writeConfig('user', baseConfig('kmm_user'));
    exitsWith(t, await kw(`kmod load ${cfg} ${flags}`), 0, 'kmod load');
    const mods = await procModules();
    t.equal(mods.get('kmm_lib')?.state, 'Live', 'kmm_lib (the dependency) Live');
    t.equal(mods.get('kmm_lib')?.refcnt, 1, 'kmm_lib is used once (by kmm_user)');
    t.equal(mods.get('kmm_user')?.state, 'Live', 'kmm_user Live');
    const dmesg = await dmesgDrain();
    t.ok(indexOfLine(dmesg, 'kmm_lib: loaded') >= 0 && indexOfLine(dmesg, 'kmm_lib: loaded') < indexOfLine(dmesg, 'kmm_user: loaded answer=42'),
      'dmesg: kmm_lib before kmm_user, which called into it', { dmesg });
    t.notOk(await exists(`${dir}/modules.dep`), 'the source tree was not written to');
    exitsWith(t, await kw(`kmod unload ${cfg} ${flags}`), 0, 'kmod unload');
    const left = await procModules();
    t.notOk(left.has('kmm_user') || left.has('kmm_lib'), 'both gone');
  });
