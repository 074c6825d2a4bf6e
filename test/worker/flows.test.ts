/**
 * src/worker/load.ts and unload.ts in-process, with fake ports (as upstream's worker_test.go drives its worker
 * with mocks): one journal records every host change, modprobe run and report in the order the flow makes
 * them, so the step order of docs/kmod.md is asserted directly. The node is a temp host root read by the real
 * Host; the module is the project's real kmm_hello.ko.
 */
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseModuleConfig } from '../../src/config/module-config.js';
import { loadModule } from '../../src/worker/load.js';
import { unloadModule } from '../../src/worker/unload.js';
import { printedPlan } from '../../src/worker/plan.js';
import type { WorkerDeps } from '../../src/worker/ports.js';
import { makeHostRoot } from '../helpers/host-root.js';
import { SRCVERSION, fakePorts, makeKmodsTree } from '../helpers/worker-ports.js';
import { ensureTestKmods } from '../kmods/kmods.js';

const kmods = await ensureTestKmods();
const kver = kmods.kver;
const kmodsTree = () => makeKmodsTree(t);

const config = parseModuleConfig(
  `kernelVersion: ${kver}\ncontainerImage: registry.example/kmm:1\ninTreeModulesToRemove: [dummy]\n` +
    'modprobe: {moduleName: kmm_hello, firmwarePath: /firmware}\n',
  'test config',
);

t.test('load: in-tree removal, then firmware, then firmware_class.path, then modprobe, then the report', async (t) => {
  const host = await makeHostRoot({ kver });
  t.teardown(host.cleanup);
  await host.addLoadedModule('dummy');
  const journal: string[] = [];
  await loadModule(fakePorts(host, await kmodsTree(), journal), config, { firmwarePath: '/var/lib/firmware' });
  t.same(journal, [
    'modprobe -r -v dummy',
    'copy <host>/var/lib/firmware/kmm_fw.bin',
    'mkdir <host>/var/lib/firmware/.kmm-worker/ns',
    'write <host>/var/lib/firmware/.kmm-worker/ns/hello.json',
    'parameter <host>/sys/module/firmware_class/parameters/path /var/lib/firmware',
    'modprobe -v -d <kmods> kmm_hello',
    'report ModuleLoaded',
  ], 'in-tree removal, firmware and its record, firmware_class.path, modprobe; the report after verification');
  t.same(await host.loadedModules(), ['kmm_hello']);
});

t.test('load that the kernel would refuse stops before the first host change and reports the failure', async (t) => {
  const host = await makeHostRoot({ kver: `${kver}-other` });
  t.teardown(host.cleanup);
  await host.addLoadedModule('dummy');
  const journal: string[] = [];
  await t.rejects(loadModule(fakePorts(host, await kmodsTree(), journal), config), /does not match the running kernel/);
  t.same(journal, ['report ModuleLoadFailed'], 'nothing touched; only the failure reported');
});

t.test('unload: modprobe -r, then the firmware it installed, then the report; in-tree modules stay out', async (t) => {
  const host = await makeHostRoot({ kver });
  t.teardown(host.cleanup);
  const tree = await kmodsTree();
  await host.addLoadedModule('kmm_hello', { srcversion: SRCVERSION });
  // the firmware record a load left (written for real, so the unload has something to remove)
  const recordDir = host.path('var/lib/firmware/.kmm-worker/ns');
  await mkdir(recordDir, { recursive: true });
  await writeFile(host.path('var/lib/firmware/kmm_fw.bin'), 'firmware\n');
  await writeFile(join(recordDir, 'hello.json'), JSON.stringify({ files: ['kmm_fw.bin'], dirs: [], modules: ['kmm_hello'] }));
  const journal: string[] = [];
  await unloadModule(fakePorts(host, tree, journal), config, { firmwarePath: '/var/lib/firmware' });
  t.same(journal, [
    'modprobe -r -v -d <kmods> kmm_hello',
    'remove <host>/var/lib/firmware/kmm_fw.bin',
    'remove <host>/var/lib/firmware/.kmm-worker/ns/hello.json',
    'rmdir <host>/var/lib/firmware/.kmm-worker/ns',
    'rmdir <host>/var/lib/firmware/.kmm-worker',
    'report ModuleUnloaded',
  ], 'the module, then the firmware it installed and its record; in-tree modules are not reloaded');
});

t.test('dry run is a port: the printed plan, no host change, no report', async (t) => {
  const host = await makeHostRoot({ kver });
  t.teardown(host.cleanup);
  await host.addLoadedModule('dummy');
  const journal: string[] = [];
  const printed: string[] = [];
  const deps = fakePorts(host, await kmodsTree(), journal);
  // what the wiring swaps under --dry-run: the plan, and printing host changes and modprobe
  const out = { write: (s: string) => (printed.push(s), true) };
  const dry: WorkerDeps = {
    ...deps,
    plan: printedPlan(out),
    changes: { ...deps.changes, writeParameter: async (p, v) => void out.write(`write ${v} to ${p}\n`) },
    modprobe: { run: async (argv) => void out.write(`run modprobe ${argv.join(' ')}\n`) },
    reporter: { report: async () => void t.fail('a dry run reports nothing') },
  };
  await loadModule(dry, config, { firmwarePath: '/var/lib/firmware' });
  t.match(printed.join(''), /^# dry run: load ns\/hello for kernel /m);
  t.match(printed.join(''), /^run modprobe -r -v dummy$/m);
  t.match(printed.join(''), /^verify .*sys\/module\/kmm_hello is live with srcversion ABCDEF/m);
  t.same(await host.loadedModules(), ['dummy'], 'the kernel is as it was');
});
