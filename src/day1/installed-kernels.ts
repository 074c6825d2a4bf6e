/**
 * The kernels a node may boot next, besides the running one: what Day-1 prefetches an image for, so the first
 * boot of a new kernel loads the module before the network with no extra reboot.
 *
 * Sources, all read under the host root:
 *  - `/lib/modules/<release>` (or `/usr/lib/modules`) with its kernel image: `/boot/vmlinuz-<release>` (Debian,
 *    Ubuntu) or `/lib/modules/<release>/vmlinuz` (Fedora, RHEL);
 *  - Boot Loader Specification entries `/boot/loader/entries/*.conf` (their `linux` and `version` lines), and
 *    GRUB's `saved_entry` in grubenv, which names the default entry;
 *  - on rpm-ostree systems (RHCOS), the deployments of `rpm-ostree status --json`: the staged one (what the next
 *    boot runs) and the others, each with its own `/usr/lib/modules/<release>` under `/ostree/deploy`.
 */
import { access, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';

export interface InstalledKernel {
  release: string;
  /** where it was found, for logs: 'modules+vmlinuz', 'boot entry', 'default boot entry', 'rpm-ostree staged', ... */
  sources: string[];
}

export interface KernelScan {
  /** installed kernels other than the running one, sorted by release */
  others: InstalledKernel[];
  /** the release the boot loader will start next, when a source says so (may be the running one) */
  defaultNext?: string;
}

/** `rpm-ostree status --json`, or undefined when rpm-ostree is not there (a port, so tests can give the JSON). */
export type RpmOstreeStatus = () => Promise<string | undefined>;

export interface KernelScanOptions {
  running: string;
  log?: Logger;
  rpmOstreeStatus?: RpmOstreeStatus;
}

// A kernel release as it can appear in a file name or a boot entry: starts with a digit, no separators.
const RELEASE = /^[0-9][A-Za-z0-9._+~-]*$/;

const exists = (p: string) => access(p).then(() => true, () => false);
const listDir = (p: string) => readdir(p).catch(() => [] as string[]);

/** Runs the host's rpm-ostree; undefined when it is not installed (not an rpm-ostree system). */
export const hostRpmOstreeStatus: RpmOstreeStatus = async () => {
  const r = await execa('rpm-ostree', ['status', '--json'], { reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.failed) {
    if ((r as { code?: string }).code === 'ENOENT') return undefined;
    throw new Error(`rpm-ostree status --json failed: ${(r.stderr || r.shortMessage || '').toString().split('\n')[0]}`);
  }
  return r.stdout;
};

/** Kernels with their modules tree and their image in /boot or next to the modules. */
async function modulesWithImage(root: string): Promise<string[]> {
  const found = new Set<string>();
  for (const modules of ['lib/modules', 'usr/lib/modules']) {
    for (const release of await listDir(join(root, modules))) {
      if (!RELEASE.test(release) || found.has(release)) continue;
      if (await exists(join(root, 'boot', `vmlinuz-${release}`)) || await exists(join(root, modules, release, 'vmlinuz'))) {
        found.add(release);
      }
    }
  }
  return [...found];
}

interface BootEntry {
  id: string;
  release: string;
}

/** BLS entries: the release from `linux .../vmlinuz-<release>`, else from `version`. */
async function blsEntries(root: string): Promise<BootEntry[]> {
  const dir = join(root, 'boot/loader/entries');
  const out: BootEntry[] = [];
  for (const name of (await listDir(dir)).filter((n) => n.endsWith('.conf')).sort()) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    const field = (key: string) => new RegExp(`^\\s*${key}\\s+(\\S+)`, 'm').exec(text)?.[1];
    const fromLinux = /vmlinuz-([^/\s]+)$/.exec(field('linux') ?? '')?.[1];
    const release = fromLinux ?? field('version');
    if (release && RELEASE.test(release)) out.push({ id: name.slice(0, -'.conf'.length), release });
  }
  return out;
}

/** GRUB's saved_entry (grubenv), if any. */
async function grubSavedEntry(root: string): Promise<string | undefined> {
  for (const f of ['boot/grub2/grubenv', 'boot/grub/grubenv']) {
    const text = await readFile(join(root, f), 'utf8').catch(() => undefined);
    const m = text && /^saved_entry=(.+)$/m.exec(text);
    if (m) return m[1]!.trim();
  }
  return undefined;
}

/**
 * The release a saved_entry stands for: a BLS entry id, or a GRUB menu entry title/id that contains a release
 * (Debian: "gnulinux-6.1.0-56-amd64-advanced-<uuid>", "Advanced options...>Debian GNU/Linux, with Linux 6.1.0-56-amd64").
 */
function releaseOfSavedEntry(saved: string, entries: BootEntry[], known: string[]): string | undefined {
  const bls = entries.find((e) => e.id === saved);
  if (bls) return bls.release;
  // the longest known release the title contains ("6.1.0-56-amd64" over "6.1.0-56")
  return known.filter((k) => saved.includes(k)).sort((a, b) => b.length - a.length)[0];
}

interface RpmOstreeDeployment {
  osname?: string;
  checksum?: string;
  serial?: number;
  booted?: boolean;
  staged?: boolean;
}

/** Releases of each deployment's /usr/lib/modules under /ostree/deploy/<os>/deploy/<checksum>.<serial>/. */
async function rpmOstreeKernels(root: string, status: string): Promise<Array<{ release: string; staged: boolean; first: boolean }>> {
  const doc = JSON.parse(status) as { deployments?: RpmOstreeDeployment[] };
  const out: Array<{ release: string; staged: boolean; first: boolean }> = [];
  for (const [i, d] of (doc.deployments ?? []).entries()) {
    if (d.booted || !d.osname || !d.checksum) continue;
    const dir = join(root, 'ostree/deploy', d.osname, 'deploy', `${d.checksum}.${d.serial ?? 0}`, 'usr/lib/modules');
    for (const release of await listDir(dir)) {
      if (RELEASE.test(release)) out.push({ release, staged: Boolean(d.staged), first: i === 0 });
    }
  }
  return out;
}

export async function scanInstalledKernels(root: string, opts: KernelScanOptions): Promise<KernelScan> {
  const found = new Map<string, Set<string>>();
  const add = (release: string, source: string) => {
    if (!found.has(release)) found.set(release, new Set());
    found.get(release)!.add(source);
  };
  for (const release of await modulesWithImage(root)) add(release, 'modules+vmlinuz');

  const entries = await blsEntries(root);
  for (const e of entries) add(e.release, 'boot entry');
  let defaultNext: string | undefined;
  const saved = await grubSavedEntry(root);
  if (saved) {
    defaultNext = releaseOfSavedEntry(saved, entries, [...found.keys(), opts.running]);
    if (defaultNext) add(defaultNext, 'default boot entry');
  }

  const status = await (opts.rpmOstreeStatus ?? hostRpmOstreeStatus)().catch((err: unknown) => {
    opts.log?.warn(`cannot list rpm-ostree deployments: ${errorMessage(err)}`);
    return undefined;
  });
  if (status !== undefined) {
    try {
      for (const k of await rpmOstreeKernels(root, status)) {
        add(k.release, k.staged ? 'rpm-ostree staged deployment' : 'rpm-ostree deployment');
        // the staged deployment, or else the first of the list, is what the next boot runs
        if (k.staged || (k.first && !defaultNext)) defaultNext = k.release;
      }
    } catch (err) {
      opts.log?.warn(`cannot read rpm-ostree status: ${errorMessage(err)}`);
    }
  }

  const others = [...found.entries()]
    .filter(([release]) => release !== opts.running)
    .map(([release, sources]) => ({ release, sources: [...sources] }))
    .sort((a, b) => a.release.localeCompare(b.release, 'en', { numeric: true }));
  return { others, ...(defaultNext ? { defaultNext } : {}) };
}
