// The guest's initramfs, in two concatenated newc cpio archives (the kernel unpacks them in order):
//  - a base (busybox, kmod, Node 24, the kernel's in-tree modules the guest needs, /init), cached under
//    .cache/vm/ by a key of its inputs, since it is ~130 MB and rarely changes;
//  - an app part rebuilt every run: kmm-worker from this checkout (bin/, dist/, package.json, production
//    node_modules) and the trees a test wants inside the guest.
// Uncompressed on purpose: under TCG the guest kernel's decompressor is slower than reading the bytes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, testCacheDir, type TestKmods } from '../kmods/kmods.js';

const here = path.join(repoRoot, 'test/vm');

/** In-tree modules of the Debian kernel copied into the guest's /lib/modules (with their dependencies). */
export const GUEST_IN_TREE_MODULES = ['virtio_pci', 'virtio_net', 'dummy'];

/** The Node 24 binary the project pins (node_modules/node), resolved to the real ELF file. */
export function nodeBinary(): string {
  const p = fs.realpathSync(path.join(repoRoot, 'node_modules/node/bin/node'));
  const head = Buffer.alloc(4);
  const fd = fs.openSync(p, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (head.toString('latin1') !== '\x7fELF') throw new Error(`${p} is not an ELF binary (run npm ci)`);
  return p;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
}

function requireTool(file: string, pkg: string): string {
  if (!fs.existsSync(file)) throw new Error(`missing ${file}: install the Debian package ${pkg}`);
  return file;
}

/** Copies an ELF and the shared libraries the host's ldd resolves for it, at the same paths. */
function copyElf(root: string, src: string, dst: string): void {
  fs.mkdirSync(path.dirname(path.join(root, dst)), { recursive: true });
  fs.copyFileSync(src, path.join(root, dst));
  fs.chmodSync(path.join(root, dst), 0o755);
  const libs = sh('ldd', [src]).match(/\/\S+/g) ?? [];
  for (const lib of libs) {
    if (!fs.existsSync(lib)) continue;
    const to = path.join(root, lib);
    if (fs.existsSync(to)) continue;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), to);
  }
}

/** An in-tree module and, through `modinfo -F depends`, everything it needs. */
function copyInTreeModule(root: string, kmods: TestKmods, name: string, seen = new Set<string>()): void {
  if (seen.has(name)) return;
  seen.add(name);
  const found = sh('find', [path.join(kmods.kernel.modulesDir, 'kernel'), '-name', `${name}.ko*`, '-o', '-name',
    `${name.replace(/_/g, '-')}.ko*`]).split('\n').filter(Boolean);
  if (!found.length) {
    const builtin = fs.readFileSync(path.join(kmods.kernel.modulesDir, 'modules.builtin'), 'utf8');
    if (new RegExp(`/${name.replace(/_/g, '[-_]')}\\.ko$`, 'm').test(builtin)) return; // built into the kernel
    throw new Error(`in-tree module ${name} is not in the kernel package of ${kmods.kver}`);
  }
  const src = found[0]!;
  const rel = path.relative(kmods.kernel.modulesDir, src);
  const dst = path.join(root, 'usr/lib/modules', kmods.kver, rel);
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.copyFileSync(src, dst);
  for (const dep of sh('modinfo', ['-F', 'depends', src]).trim().split(',').filter(Boolean)) {
    copyInTreeModule(root, kmods, dep, seen);
  }
}

function writeCpio(stageDir: string, out: string): void {
  const tmp = `${out}.${process.pid}.tmp`; // two suites may build the same base at once
  // busybox cpio: the host has no cpio(1) by default; -R 0:0 so the guest sees root-owned files
  execFileSync('bash', ['-c', 'set -o pipefail; find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 > "$0" 2>/dev/null', tmp],
    { cwd: stageDir });
  fs.renameSync(tmp, out);
}

function baseKey(kmods: TestKmods, node: string): string {
  const h = createHash('sha256');
  const stamp = (f: string) => {
    const s = fs.statSync(f);
    return `${f}:${s.size}:${s.mtimeMs}`;
  };
  h.update(['v1', kmods.kver, stamp(node), stamp('/bin/busybox'), stamp('/usr/bin/kmod'),
    fs.readFileSync(path.join(here, 'guest-init.sh'), 'utf8'), GUEST_IN_TREE_MODULES.join(',')].join('\n'));
  return h.digest('hex').slice(0, 16);
}

/** The cached base archive; built when its inputs changed. */
export function baseArchive(kmods: TestKmods): string {
  const node = nodeBinary();
  requireTool('/bin/busybox', 'busybox-static');
  requireTool('/usr/bin/kmod', 'kmod');
  const dir = path.join(testCacheDir, 'vm');
  const out = path.join(dir, `base-${kmods.kver}-${baseKey(kmods, node)}.cpio`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  for (const old of fs.readdirSync(dir)) {
    // archives of older inputs only; another process may be finishing this very one
    if (old.startsWith('base-') && old.endsWith('.cpio') && old !== path.basename(out)) {
      fs.rmSync(path.join(dir, old), { force: true });
    }
  }
  const root = fs.mkdtempSync(path.join(dir, 'stage-base-'));
  try {
    for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'proc', 'sys', 'dev', 'tmp',
      'run', 'root', 'etc', 'srv', 'var/lib/firmware', 'var/lib/kmm']) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
    }
    // merged /usr like Debian, so the library paths ldd prints resolve inside the guest
    for (const l of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${l}`, path.join(root, l));
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    fs.copyFileSync('/bin/busybox', path.join(root, 'usr/bin/busybox'));
    fs.chmodSync(path.join(root, 'usr/bin/busybox'), 0o755);
    const kmodTools = new Set(['modprobe', 'insmod', 'rmmod', 'lsmod', 'depmod', 'modinfo']);
    for (const applet of sh('/bin/busybox', ['--list']).split('\n').filter(Boolean)) {
      if (kmodTools.has(applet) || applet === 'busybox') continue;
      fs.symlinkSync('busybox', path.join(root, 'usr/bin', applet));
    }
    copyElf(root, '/usr/bin/kmod', '/usr/bin/kmod');
    for (const t of kmodTools) fs.symlinkSync('../bin/kmod', path.join(root, 'usr/sbin', t));
    copyElf(root, node, '/usr/bin/node');

    const mods = path.join(root, 'usr/lib/modules', kmods.kver);
    fs.mkdirSync(mods, { recursive: true });
    for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
      fs.copyFileSync(path.join(kmods.kernel.modulesDir, f), path.join(mods, f));
    }
    const seen = new Set<string>();
    for (const m of GUEST_IN_TREE_MODULES) copyInTreeModule(root, kmods, m, seen);
    sh('depmod', ['-b', root, kmods.kver]);

    fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(root, 'etc/hosts'), '127.0.0.1 localhost kmm-vm\n');
    fs.copyFileSync(path.join(here, 'guest-init.sh'), path.join(root, 'init'));
    fs.chmodSync(path.join(root, 'init'), 0o755);
    writeCpio(root, out);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return out;
}

/** Packages of package-lock.json that production needs (what `npm ci --omit=dev` would install). */
function productionPackages(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith('node_modules/') && !v.dev && !v.devOptional)
    .map(([k]) => k)
    .filter((k) => !/(^|\/)node_modules\/@types\//.test(k)) // declarations only, nothing runs them
    .filter((k) => fs.existsSync(path.join(repoRoot, k)));
}

/** Copies a directory without what never runs (type declarations, source maps, docs): a leaner initramfs. */
function copyRuntimeFiles(from: string, to: string): void {
  fs.cpSync(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !/\.(d\.[cm]?ts|[cm]?ts|map|md|markdown)$/i.test(path.basename(src)),
  });
}

/** kmm-worker from this checkout under `root`/usr/local/lib/kmm-worker, linked as /usr/local/bin/kmm-worker. */
export function installKmmWorker(root: string): void {
  for (const f of ['dist/cli.js', 'bin/kmm-worker.js', 'package.json']) {
    if (!fs.existsSync(path.join(repoRoot, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  const app = path.join(root, 'usr/local/lib/kmm-worker');
  fs.mkdirSync(app, { recursive: true });
  copyRuntimeFiles(path.join(repoRoot, 'dist'), path.join(app, 'dist'));
  fs.cpSync(path.join(repoRoot, 'bin'), path.join(app, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(app, 'package.json'));
  for (const pkg of productionPackages()) copyRuntimeFiles(path.join(repoRoot, pkg), path.join(app, pkg));
  fs.mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
  fs.symlinkSync('../lib/kmm-worker/bin/kmm-worker.js', path.join(root, 'usr/local/bin/kmm-worker'));
  fs.chmodSync(path.join(app, 'bin/kmm-worker.js'), 0o755);
}

export interface AppOptions {
  /** guest directory → host directory copied there (e.g. '/srv/shared' → a KMM init-container tree) */
  trees?: Record<string, string>;
  /** guest path → file contents */
  files?: Record<string, string | Buffer>;
}

/** kmm-worker as built in dist/ + production dependencies + the test's trees, as a cpio in `workDir`. */
export function appArchive(workDir: string, opts: AppOptions = {}): string {
  for (const f of ['dist/cli.js', 'bin/kmm-worker.js', 'package.json']) {
    if (!fs.existsSync(path.join(repoRoot, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  const root = path.join(workDir, 'stage-app');
  fs.rmSync(root, { recursive: true, force: true });
  installKmmWorker(root);
  for (const [guest, host] of Object.entries(opts.trees ?? {})) {
    assertAppPath(guest);
    fs.cpSync(host, path.join(root, guest), { recursive: true, verbatimSymlinks: true });
  }
  for (const [guest, body] of Object.entries(opts.files ?? {})) {
    assertAppPath(guest);
    fs.mkdirSync(path.dirname(path.join(root, guest)), { recursive: true });
    fs.writeFileSync(path.join(root, guest), body);
  }
  const out = path.join(workDir, 'app.cpio');
  writeCpio(root, out);
  fs.rmSync(root, { recursive: true, force: true });
  return out;
}

// The base holds /bin, /lib… as symlinks into /usr; a real directory of the same name in the second archive
// would replace the symlink when the kernel unpacks it.
function assertAppPath(guest: string): void {
  if (!/^\/(srv|usr\/local|etc|root|var|opt|tmp)\//.test(guest)) {
    throw new Error(`guest path ${guest} must be under /srv, /usr/local, /etc, /root, /var, /opt or /tmp`);
  }
}

/** base + app, concatenated into the one initrd file QEMU takes. */
export function buildInitrd(kmods: TestKmods, workDir: string, opts: AppOptions = {}): string {
  const base = baseArchive(kmods);
  const app = appArchive(workDir, opts);
  const out = path.join(workDir, 'initrd.cpio');
  fs.copyFileSync(base, out);
  fs.appendFileSync(out, fs.readFileSync(app));
  fs.rmSync(app);
  return out;
}
