/**
 * `diagnose`: gathers what a support ticket needs about KMM on this node, reading only, and gives each
 * check a verdict. Nothing secret is read: no pull secrets, no auth files, no environment.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Host, DEFAULT_FIRMWARE_DIR } from '../host/host.js';
import type { ModuleConfig } from '../config/module-config.js';
import { findModuleKo, kernelModulesDir } from '../kmod/find-ko.js';
import { kernelMatches, normaliseModuleName } from '../kmod/names.js';
import type { ModinfoRunner } from '../host/runners.js';
import { RECORD_DIR, type FirmwareRecord } from '../host/firmware.js';
import { listImages, type ListedImage } from '../store/inventory.js';
import { parseReference } from '../image/reference.js';
import { oneLine } from '../errors.js';
import { size } from './render.js';
import {
  kernelLogMentions, liveModule, modprobeDMentions, securityState,
  type KernelLog, type LiveModule, type ModprobeDMatch, type SecurityState,
} from './node-facts.js';

export type Verdict = 'ok' | 'warn' | 'fail' | 'info';

export interface Check {
  check: string;
  verdict: Verdict;
  summary: string;
}

export interface ModuleFacts extends LiveModule {
  /** the .ko of the cached image for the config's kernel, and its srcversion (modinfo) */
  imageKo?: string;
  imageSrcversion?: string;
}

export interface DiagnoseReport {
  generated: string;
  version: string;
  hostRoot: string;
  config?: { path: string; kernelVersion: string; containerImage: string; moduleName?: string; dirName: string; modules: string[] };
  kernel: { running: string | undefined };
  security: SecurityState;
  modules: ModuleFacts[];
  firmware: {
    classPath: string | undefined;
    dirs: string[];
    records: Array<{ file: string; module: string; modules: string[]; files: number }>;
  };
  cache: Array<{ reference: string; digest: string; selection: string; files: number; bytes: number; lastUsed: string; ageSeconds: number; root: string }>;
  modprobeD: ModprobeDMatch[];
  kernelLog: KernelLog;
  registry?: { image: string; reachable: boolean; digest?: string; error?: string };
  checks: Check[];
}

export interface DiagnoseDeps {
  hostRoot: string;
  imagesDir: string;
  version: string;
  /** an extra host firmware dir to look for KMM's records in (besides firmware_class.path and /var/lib/firmware) */
  firmwarePath?: string;
  modinfo: ModinfoRunner;
  /** HEADs the image's manifest; resolves to its digest */
  resolveDigest?: (ref: string) => Promise<string>;
  dmesg?: string;
  now?: () => Date;
}

async function firmwareRecords(dir: string, host: Host): Promise<DiagnoseReport['firmware']['records']> {
  const base = join(host.path(dir), RECORD_DIR);
  const out: DiagnoseReport['firmware']['records'] = [];
  for (const ns of (await readdir(base).catch(() => [] as string[])).sort()) {
    for (const f of (await readdir(join(base, ns)).catch(() => [] as string[])).sort()) {
      if (!f.endsWith('.json')) continue;
      const file = `${dir}/${RECORD_DIR}/${ns}/${f}`.replace(/\/+/g, '/');
      try {
        const r = JSON.parse(await readFile(join(base, ns, f), 'utf8')) as FirmwareRecord;
        out.push({ file, module: r.module, modules: Array.isArray(r.modules) ? r.modules : [], files: Array.isArray(r.files) ? r.files.length : 0 });
      } catch {
        out.push({ file, module: `${ns}/${f.replace(/\.json$/, '')}`, modules: [], files: 0 });
      }
    }
  }
  return out;
}

function configModules(c: ModuleConfig): string[] {
  const names = c.modprobe.modulesLoadingOrder.length > 0 ? c.modprobe.modulesLoadingOrder : [c.modprobe.moduleName].filter(Boolean) as string[];
  return [...new Set(names.map(normaliseModuleName))];
}

/** The newest cache entry of the config's image that holds the config's kernel. */
function cachedEntry(cache: ListedImage[], c: ModuleConfig): ListedImage | undefined {
  let name: string;
  try {
    name = parseReference(c.containerImage).name;
  } catch {
    return undefined;
  }
  return cache
    .filter((e) => e.references.includes(name) || e.reference === name)
    .sort((a, b) => b.lastUsed.localeCompare(a.lastUsed))[0];
}

function moduleCheck(m: ModuleFacts, haveImage: boolean): Check {
  const check = `module ${m.name}`;
  if (m.state === 'absent') return { check, verdict: 'fail', summary: 'not loaded (no /sys/module entry)' };
  if (m.state === 'builtin') return { check, verdict: 'warn', summary: 'built into the kernel: the image cannot replace it' };
  const facts = `initstate ${m.initstate}, refcnt ${m.refcnt}${m.holders?.length ? `, used by ${m.holders.join(',')}` : ''}${m.taint ? `, taint ${m.taint}` : ''}`;
  if (m.initstate !== 'live') return { check, verdict: 'warn', summary: `loaded but not live (${facts})` };
  if (m.imageSrcversion && m.srcversion !== m.imageSrcversion) {
    return { check, verdict: 'fail', summary: `live but not the image's: srcversion ${m.srcversion ?? 'none'}, the image's ${m.imageSrcversion} (${facts})` };
  }
  if (m.imageSrcversion) return { check, verdict: 'ok', summary: `live, srcversion ${m.srcversion} is the image's (${facts})` };
  return { check, verdict: haveImage ? 'warn' : 'info', summary: `live, srcversion ${m.srcversion ?? 'none'}; ${haveImage ? "the image's .ko is not in the cache" : 'no image to compare with'} (${facts})` };
}

export async function collectDiagnosis(config: { path: string; config: ModuleConfig } | undefined, deps: DiagnoseDeps): Promise<DiagnoseReport> {
  const host = new Host(deps.hostRoot);
  const now = (deps.now ?? (() => new Date()))();
  const checks: Check[] = [];
  const c = config?.config;

  const running = await host.runningKernel().catch(() => undefined);
  if (!running) checks.push({ check: 'kernel', verdict: 'fail', summary: `cannot read ${host.path('/proc/sys/kernel/osrelease')}` });
  else if (c && !kernelMatches(running, c.kernelVersion)) {
    checks.push({ check: 'kernel', verdict: 'fail', summary: `running ${running}, but the config is for ${c.kernelVersion}` });
  } else checks.push({ check: 'kernel', verdict: c ? 'ok' : 'info', summary: `running ${running}${c ? ', as the config says' : ''}` });

  const security = await securityState(host);
  const strict = security.secureBoot === true || security.sigEnforce === true;
  const fmt = (v: boolean | undefined) => (v === undefined ? 'unknown' : v ? 'on' : 'off');
  checks.push({
    check: 'module signing',
    verdict: 'info',
    summary: `lockdown ${security.lockdown ?? 'unknown'}, Secure Boot ${fmt(security.secureBoot)}, sig_enforce ${fmt(security.sigEnforce)}` +
      (strict ? ': only modules signed with a key the kernel trusts will load' : ''),
  });

  const classPath = await host.firmwareClassPath();
  const dirs = [...new Set([deps.firmwarePath, classPath || undefined, DEFAULT_FIRMWARE_DIR].filter((d): d is string => Boolean(d)))];
  const records = (await Promise.all(dirs.map((d) => firmwareRecords(d, host)))).flat();
  const cacheList = await listImages(deps.imagesDir).catch(() => [] as ListedImage[]);

  const names = c ? configModules(c) : [...new Set(records.flatMap((r) => r.modules).map(normaliseModuleName))].sort();
  const entry = c ? cachedEntry(cacheList, c) : undefined;
  const modules: ModuleFacts[] = [];
  for (const name of names) {
    const m: ModuleFacts = await liveModule(host, name);
    if (entry && c) {
      const ko = await findModuleKo(kernelModulesDir(entry.root, c.modprobe.dirName, c.kernelVersion), name);
      if (ko) {
        m.imageKo = ko;
        m.imageSrcversion = await deps.modinfo.srcversion(ko).catch(() => undefined);
      }
    }
    modules.push(m);
    checks.push(moduleCheck(m, Boolean(c)));
  }
  if (names.length === 0) checks.push({ check: 'modules', verdict: 'info', summary: 'no config given and no firmware records of KMM: no module to look at' });

  const recordDirs = [...new Set(records.map((r) => r.file.split(`/${RECORD_DIR}/`)[0]!))];
  if (records.length === 0) checks.push({ check: 'firmware', verdict: 'info', summary: `firmware_class.path ${JSON.stringify(classPath ?? '')}; no KMM firmware records in ${dirs.join(', ')}` });
  else {
    const pointed = recordDirs.some((d) => classPath && d.replace(/\/+$/, '') === classPath.replace(/\/+$/, ''));
    checks.push({
      check: 'firmware',
      verdict: pointed || recordDirs.includes('/lib/firmware') ? 'ok' : 'warn',
      summary: `firmware_class.path ${JSON.stringify(classPath ?? '')}; ${records.length} record(s) in ${recordDirs.join(', ')}` +
        (pointed ? '' : ': the kernel does not look there for firmware'),
    });
  }

  const cache = cacheList.map((e) => ({
    reference: e.reference, digest: e.digest, selection: e.selection, files: e.files, bytes: e.bytes, lastUsed: e.lastUsed,
    ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(e.lastUsed)) / 1000)), root: e.root,
  }));
  const total = cache.reduce((n, e) => n + e.bytes, 0);
  checks.push({
    check: 'image cache',
    verdict: c && !entry ? 'warn' : 'info',
    summary: `${cache.length} entr${cache.length === 1 ? 'y' : 'ies'}, ${size(total)} in ${deps.imagesDir}` +
      (c && !entry ? `; none for ${c.containerImage}` : ''),
  });

  const modprobeD = await modprobeDMentions(host, names);
  const blocking = modprobeD.flatMap((m) => m.lines.filter((l) => /^\s*(blacklist\b|install\s+\S+\s+\/bin\/(false|true)\b)/.test(l)).map((l) => `${m.file}: ${l.trim()}`));
  checks.push({
    check: 'modprobe.d',
    verdict: blocking.length > 0 ? 'warn' : 'info',
    summary: blocking.length > 0 ? `blocks a module: ${blocking.join('; ')}` : `${modprobeD.length} file(s) mention the modules`,
  });

  const kernelLog = names.length > 0 ? await kernelLogMentions(names, deps.dmesg) : { readable: true, lines: [] };
  checks.push({
    check: 'kernel log',
    verdict: 'info',
    summary: kernelLog.readable ? `${kernelLog.lines.length} line(s) mention the modules` : `not readable: ${kernelLog.reason}`,
  });

  let registry: DiagnoseReport['registry'];
  if (c && deps.resolveDigest) {
    try {
      const digest = await deps.resolveDigest(c.containerImage);
      registry = { image: c.containerImage, reachable: true, digest };
      checks.push({ check: 'registry', verdict: 'ok', summary: `${c.containerImage} is there: ${digest}` });
    } catch (err) {
      registry = { image: c.containerImage, reachable: false, error: oneLine(err) };
      checks.push({ check: 'registry', verdict: 'fail', summary: oneLine(err) });
    }
  }

  return {
    generated: now.toISOString(),
    version: deps.version,
    hostRoot: deps.hostRoot,
    ...(config && c ? { config: { path: config.path, kernelVersion: c.kernelVersion, containerImage: c.containerImage,
      ...(c.modprobe.moduleName ? { moduleName: c.modprobe.moduleName } : {}), dirName: c.modprobe.dirName, modules: names } } : {}),
    kernel: { running },
    security,
    modules,
    firmware: { classPath, dirs, records },
    cache,
    modprobeD,
    kernelLog,
    ...(registry ? { registry } : {}),
    checks,
  };
}

