#!/usr/bin/env node
// A test double for kmod's modprobe (plain JS, any Node >= 20). It is strict about modprobe's command line
// (unknown options are rejected as kmod does), appends its argv as one JSON line to $RECORDING_MODPROBE_LOG,
// and plays the kernel's part under $RECORDING_MODPROBE_HOST_ROOT: /sys/module/<m>/{initstate,srcversion,
// refcnt,holders/,parameters/}. Modules are resolved through <-d dir>/lib/modules/<kver>/modules.dep (kver from
// -S or <host root>/proc/sys/kernel/osrelease) and the srcversion is the real `modinfo -F srcversion` of the
// .ko. "Already loaded" is a no-op; -r of a module that is not loaded is a no-op (kmod without --first-time);
// -r refuses a module whose refcnt > 0. $RECORDING_MODPROBE_FAIL=<module> makes inserting that module fail;
// $RECORDING_MODPROBE_DELAY_MS makes each call slow.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename, dirname, isAbsolute, join } from 'node:path';

const argv = process.argv.slice(2);
const logFile = process.env.RECORDING_MODPROBE_LOG;
if (logFile) appendFileSync(logFile, JSON.stringify({ argv }) + '\n');
const hostRoot = process.env.RECORDING_MODPROBE_HOST_ROOT;
// $RECORDING_MODPROBE_DELAY_MS: take this long before acting, like a slow module init
if (process.env.RECORDING_MODPROBE_DELAY_MS) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.RECORDING_MODPROBE_DELAY_MS));
}
if (!hostRoot) fatal('RECORDING_MODPROBE_HOST_ROOT is not set', 3);

function fatal(msg, code = 1) {
  process.stderr.write(`modprobe: FATAL: ${msg}\n`);
  process.exit(code);
}
function error(msg) {
  process.stderr.write(`modprobe: ERROR: ${msg}\n`);
  process.exit(1);
}

// --- options, as kmod 30's modprobe knows them -------------------------------------------------------------
const SHORT_FLAGS = { a: 'all', r: 'remove', v: 'verbose', n: 'dryRun', q: 'quiet', b: 'blacklist', i: 'ignoreInstall', f: 'force', s: 'syslog' };
const SHORT_VALUE = { d: 'dirname', S: 'kver', C: 'config' };
const LONG_FLAGS = {
  all: 'all', remove: 'remove', verbose: 'verbose', 'dry-run': 'dryRun', show: 'dryRun', quiet: 'quiet',
  'use-blacklist': 'blacklist', 'ignore-install': 'ignoreInstall', force: 'force', syslog: 'syslog', 'first-time': 'firstTime',
};
const LONG_VALUE = { dirname: 'dirname', 'set-version': 'kver', config: 'config' };

const o = { operands: [] };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--') { o.operands.push(...argv.slice(i + 1)); break; }
  if (a.startsWith('--')) {
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (name in LONG_FLAGS && inline === undefined) { o[LONG_FLAGS[name]] = true; continue; }
    if (name in LONG_VALUE) {
      const v = inline ?? argv[++i];
      if (v === undefined) error(`option '--${name}' requires an argument`);
      o[LONG_VALUE[name]] = v;
      continue;
    }
    error(`unrecognized option '${a}'`);
  }
  if (a.startsWith('-') && a.length > 1) {
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      if (c in SHORT_FLAGS) { o[SHORT_FLAGS[c]] = true; continue; }
      if (c in SHORT_VALUE) {
        const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
        if (v === undefined) error(`option requires an argument -- '${c}'`);
        o[SHORT_VALUE[c]] = v;
        break;
      }
      error(`invalid option -- '${c}'`);
    }
    continue;
  }
  o.operands.push(a);
}
if (o.operands.length === 0) error('missing parameters. See -h.');

const norm = (n) => n.replaceAll('-', '_');
const kver = o.kver ?? readFileSync(join(hostRoot, 'proc/sys/kernel/osrelease'), 'utf8').trim();
// without -d modprobe uses the host's own tree: under the simulated host root
const base = o.dirname ?? hostRoot;
const modDir = join(base, 'lib/modules', kver);
const sys = (m) => join(hostRoot, 'sys/module', norm(m));
const say = (line) => { if (o.verbose || o.dryRun) process.stdout.write(line + '\n'); };

function readDeps() {
  const file = join(modDir, 'modules.dep');
  if (!existsSync(file)) return undefined;
  const map = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const c = line.indexOf(':');
    if (c <= 0) continue;
    const abs = (p) => (isAbsolute(p) ? p : join(modDir, p));
    const path = abs(line.slice(0, c).trim());
    const deps = line.slice(c + 1).trim().split(/\s+/).filter(Boolean).map(abs);
    map.set(norm(basename(path).replace(/\.ko(\.xz|\.zst|\.gz)?$/, '')), { path, deps });
  }
  return map;
}
const nameOf = (path) => norm(basename(path).replace(/\.ko(\.xz|\.zst|\.gz)?$/, ''));
const readNum = (f) => Number(readFileSync(f, 'utf8').trim());
const isLoaded = (m) => existsSync(join(sys(m), 'initstate'));
const isBuiltin = (m) => existsSync(sys(m)) && !isLoaded(m);

function srcversionOf(path) {
  try {
    return execFileSync(process.env.RECORDING_MODPROBE_MODINFO || 'modinfo', ['-F', 'srcversion', path], { encoding: 'utf8' }).trim();
  } catch (e) {
    fatal(`could not read ${path}: ${e.message.split('\n')[0]}`);
  }
}

function insert(name, path, params, holder) {
  const dir = sys(name);
  if (!isLoaded(name)) {
    // kmod's own -v format: `insmod PATH PARAMS` with values that hold spaces quoted
    say(`insmod ${path} ${params.map((p) => p.replace(/=(.*\s.*)$/s, '="$1"')).join(' ')}`.trimEnd());
    if (!o.dryRun) {
      if (process.env.RECORDING_MODPROBE_FAIL === name) error(`could not insert '${name}': Invalid argument`);
      mkdirSync(join(dir, 'holders'), { recursive: true });
      mkdirSync(join(dir, 'parameters'), { recursive: true });
      const sv = srcversionOf(path);
      if (sv) writeFileSync(join(dir, 'srcversion'), sv + '\n');
      writeFileSync(join(dir, 'refcnt'), '0\n');
      for (const p of params) {
        const [k, v = 'Y'] = p.split(/=(.*)/s, 2);
        writeFileSync(join(dir, 'parameters', k), v + '\n');
      }
      writeFileSync(join(dir, 'initstate'), 'live\n');
    }
  }
  if (holder && !o.dryRun && !existsSync(join(dir, 'holders', holder))) {
    writeFileSync(join(dir, 'holders', holder), '');
    writeFileSync(join(dir, 'refcnt'), `${readNum(join(dir, 'refcnt')) + 1}\n`);
  }
}

function load(name, params) {
  const deps = readDeps();
  if (!deps) fatal(`Module ${name} not found in directory ${modDir}`);
  const entry = deps.get(norm(name));
  if (!entry) fatal(`Module ${name} not found in directory ${modDir}`);
  if (isBuiltin(name)) return; // built in: nothing to do, like kmod
  // dependencies first, the deepest (listed last) first
  for (const d of [...entry.deps].reverse()) insert(nameOf(d), d, [], undefined);
  insert(norm(name), entry.path, params, undefined);
  for (const d of entry.deps) insert(nameOf(d), d, [], norm(name));
}

function remove(name) {
  const m = norm(name);
  if (isBuiltin(m)) fatal(`Module ${m} is builtin.`);
  if (!isLoaded(m)) {
    if (o.firstTime) fatal(`Module ${m} is not in kernel.`);
    return;
  }
  if (readNum(join(sys(m), 'refcnt')) > 0) fatal(`Module ${m} is in use.`);
  say(`rmmod ${m}`);
  if (o.dryRun) return;
  rmSync(sys(m), { recursive: true, force: true });
  // release what it held; remove dependencies nobody uses any more, as modprobe -r does
  const root = join(hostRoot, 'sys/module');
  for (const other of existsSync(root) ? readdirSync(root) : []) {
    const h = join(root, other, 'holders', m);
    if (!existsSync(h)) continue;
    rmSync(h);
    const rc = readNum(join(root, other, 'refcnt')) - 1;
    writeFileSync(join(root, other, 'refcnt'), `${rc}\n`);
    if (rc === 0 && readdirSync(join(root, other, 'holders')).length === 0) remove(other);
  }
}

if (o.remove) {
  for (const n of o.operands) remove(n);
} else if (o.all) {
  for (const n of o.operands) load(n, []);
} else {
  load(o.operands[0], o.operands.slice(1));
}
