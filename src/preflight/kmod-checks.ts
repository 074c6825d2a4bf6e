/**
 * Issue 19 in preflight: the `.ko` found in the image, asked what the upcoming kernel will ask of it —
 * vermagic against `--kernel`, the signature against `--trusted-keys DIR`, the symbols against `--symvers FILE`
 * (plus the image's own modules for that kernel). Each check is its own part of the status reason.
 */
import { posix } from 'node:path';
import { MiB } from '../bounded-read.js';
import { readInputFile, whyUnreadable } from './module-cr.js';
import { UsageError, oneLine } from '../errors.js';
import type { TrustedKey } from '../kmod/trust.js';
import { koFromBytes, type KoFile } from '../kmod/ko-file.js';
import { modinfoField } from '../kmod/elf.js';
import { describeKey, describeSignature, symbolsVerdict, trustingKey, vermagicVerdict } from '../kmod/verdicts.js';
import { parseSymvers, readTrustedKeysDir, CertificateError } from '../kmod/certs.js';
import { moduleNameOfFile, normaliseModuleName } from '../kmod/names.js';

export interface KmodCheckInputs {
  /** certificates from --trusted-keys DIR */
  trustedKeys?: TrustedKey[];
  /** --symvers FILE: exported symbol → module */
  symvers?: Map<string, string>;
}

/** Reads --trusted-keys and --symvers once for the run; a bad file is the command line's fault (exit 2). */
export async function readKmodCheckInputs(opts: { trustedKeys?: string; symvers?: string }): Promise<KmodCheckInputs> {
  const out: KmodCheckInputs = {};
  if (opts.trustedKeys) {
    try {
      out.trustedKeys = await readTrustedKeysDir(opts.trustedKeys);
    } catch (err) {
      const why = err instanceof CertificateError ? err.message : (err as NodeJS.ErrnoException).code ?? oneLine(err);
      throw new UsageError(`--trusted-keys ${opts.trustedKeys}: ${why}`);
    }
    if (out.trustedKeys.length === 0) throw new UsageError(`--trusted-keys ${opts.trustedKeys}: no certificate in it`);
  }
  if (opts.symvers) {
    // Module.symvers of a distribution kernel is a few MB
    const text = await readInputFile(opts.symvers, 64 * MiB).catch((err: unknown) => {
      throw new UsageError(`--symvers ${opts.symvers}: cannot read it (${whyUnreadable(err)})`);
    });
    out.symvers = parseSymvers(text);
    if (out.symvers.size === 0) throw new UsageError(`--symvers ${opts.symvers}: no symbol in it (not a Module.symvers?)`);
  }
  return out;
}

/** Which `.ko` files of the image the checks read: the module's, or with --symvers every one of its kernel's. */
export function kosToRead(kernelDir: string, moduleName: string | undefined, inputs: KmodCheckInputs): (path: string) => boolean {
  const dir = `${posix.join('/', kernelDir)}/`;
  const wanted = moduleName === undefined ? undefined : normaliseModuleName(moduleName);
  return (path) => path.startsWith(dir) && (inputs.symvers !== undefined || wanted === undefined || moduleNameOfFile(posix.basename(path)) === wanted);
}

export interface KmodCheckResult {
  ok: boolean;
  /** one part per check, e.g. `vermagic 6.1.0-57-amd64 matches`, or the failing check's message */
  parts: string[];
}

export async function checkKmodForKernel(
  path: string,
  collected: Map<string, Buffer>,
  kernelVersion: string,
  image: string,
  inputs: KmodCheckInputs,
): Promise<KmodCheckResult> {
  const bytes = collected.get(path);
  if (!bytes) return { ok: true, parts: ['module file not read (reached through a symlink): vermagic, signature and symbols not checked'] };
  const label = `${path} in image ${image}`;
  let ko: KoFile;
  try {
    ko = await koFromBytes(label, bytes, path);
  } catch (err) {
    return { ok: false, parts: [oneLine(err)] };
  }
  const name = moduleNameOfFile(posix.basename(path))!;
  const failed: string[] = [];
  const passed: string[] = [];
  const vermagic = vermagicVerdict(name, ko, kernelVersion);
  (vermagic.ok ? passed : failed).push(vermagic.ok ? `vermagic matches ${kernelVersion}` : `vermagic: ${vermagic.message}`);

  const signature = describeSignature(ko);
  if (inputs.trustedKeys) {
    const key = trustingKey(ko, inputs.trustedKeys);
    if (key) passed.push(`signature: ${signature}, trusted by --trusted-keys ${describeKey(key)}`);
    else {
      failed.push(
        `signature: module ${name} is ${signature}, and no key of --trusted-keys (${inputs.trustedKeys.map(describeKey).join(', ')}) verifies it: ` +
          "a node that enforces signatures would refuse it. Fix: sign it with one of these keys, or enroll its certificate with 'mokutil --import' before the upgrade",
      );
    }
  } else passed.push(`signature: ${signature} (no --trusted-keys to check it against)`);

  if (inputs.symvers) {
    const others = await otherModules(collected, path, image);
    const exported = new Set(others.flatMap((k) => k.elf.exportedSymbols));
    const imageModules = new Set(others.map((k) => moduleNameOfFile(posix.basename(k.path.split(' in image ')[0]!))!));
    const symvers = inputs.symvers;
    const symversModules = new Set(symvers.values());
    const missing = ko.elf.undefinedSymbols.filter((s) => s !== '.TOC.' && !symvers.has(s) && !exported.has(s));
    const missingModules = (modinfoField(ko.elf, 'depends') ?? '')
      .split(',')
      .filter(Boolean)
      .map(normaliseModuleName)
      .filter((d) => !imageModules.has(d) && !symversModules.has(d));
    const v = symbolsVerdict(name, ko, missing, missingModules, `kernel ${kernelVersion}'s --symvers, the image's modules`);
    (v.ok ? passed : failed).push(v.ok ? `symbols: all ${ko.elf.undefinedSymbols.length} found in --symvers or the image` : `symbols: ${v.message}`);
  }
  return failed.length > 0 ? { ok: false, parts: failed } : { ok: true, parts: passed };
}

async function otherModules(collected: Map<string, Buffer>, path: string, image: string): Promise<KoFile[]> {
  const out: KoFile[] = [];
  for (const [p, bytes] of collected) {
    if (p === path) continue;
    // a broken neighbour is its own module's problem, not this one's
    const ko = await koFromBytes(`${p} in image ${image}`, bytes, p).catch(() => undefined);
    if (ko) out.push(ko);
  }
  return out;
}
