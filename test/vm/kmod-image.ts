// The kmod image of the VM scenarios, laid out as KMM images are: modules (+ depmod output, + the `host`
// symlink to the node's tree) under <dirName>/lib/modules/<kver>/, firmware under /firmware/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestKmods } from '../kmods/kmods.js';
import type { LayerSpec } from '../helpers/images.js';

/** Firmware kmm_fw requests (its default fw_name), relative to the firmware search path. */
export const FIRMWARE_REL = 'kmm-test/kmm_fw.bin';
export const FIRMWARE_BODY = 'KMM-TEST-FIRMWARE-0123456789';

/** Modules shipped in the image: every test module. */
export const IMAGE_MODULES = ['kmm_hello', 'kmm_standalone', 'kmm_fw', 'kmm_lib', 'kmm_user', 'dummy'];

/** Writes the image's file tree under `root` (as a KMM init container would leave it in its shared dir). */
export function writeKmodTree(root: string, kmods: TestKmods, opts: { dirName?: string; depmod?: boolean } = {}): void {
  const dirName = opts.dirName ?? 'opt';
  const mods = path.join(root, dirName, 'lib/modules', kmods.kver);
  fs.mkdirSync(mods, { recursive: true });
  for (const m of IMAGE_MODULES) {
    const ko = kmods.ko[m];
    if (!ko) throw new Error(`test module ${m} was not built`);
    fs.copyFileSync(ko, path.join(mods, `${m}.ko`));
  }
  // depmod warns that modules.order/builtin are missing: an image ships neither, so its stderr is kept quiet
  if (opts.depmod !== false) {
    execFileSync('depmod', ['-b', path.join(root, dirName), kmods.kver], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  // after depmod, so depmod does not wander into the build host's tree
  fs.symlinkSync(`/lib/modules/${kmods.kver}`, path.join(mods, 'host'));
  const fw = path.join(root, 'firmware', FIRMWARE_REL);
  fs.mkdirSync(path.dirname(fw), { recursive: true });
  fs.writeFileSync(fw, FIRMWARE_BODY);
}

/** The tree as image layers: one with the modules, one with the firmware. */
export function kmodTreeLayers(root: string): LayerSpec[] {
  const modules: LayerSpec = {};
  const firmware: LayerSpec = {};
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      const rel = path.relative(root, abs);
      const layer = rel.startsWith('firmware/') ? firmware : modules;
      if (e.isSymbolicLink()) layer[rel] = { symlink: fs.readlinkSync(abs) };
      else if (e.isDirectory()) walk(abs);
      else layer[rel] = fs.readFileSync(abs);
    }
  };
  walk(root);
  return [modules, firmware];
}
