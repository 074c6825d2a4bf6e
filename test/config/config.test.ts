import t from 'tap';
import { parseModuleConfig } from '../../src/config/module-config.js';
import { UsageError } from '../../src/errors.js';
import { makeEnv } from '../worker/fixtures.js';

const KVER = '6.1.0-56-amd64';
const base = `kernelVersion: ${KVER}\ncontainerImage: registry.example/kmm/hello:${KVER}\n`;

// [name, config text, the message must start with]
const invalid: [string, string, string][] = [
  ['unknown top-level field', `${base}modprobe: {moduleName: a}\nextra: 1\n`, 'extra is not a known field'],
  ['unknown modprobe field', `${base}modprobe: {moduleName: a, modulename: b}\n`, 'modprobe.modulename is not a known field'],
  ['unknown args field', `${base}modprobe: {moduleName: a, args: {load: [-q], remove: [-q]}}\n`, 'modprobe.args.remove is not a known field'],
  ['duplicate top-level key', `${base}kernelVersion: ${KVER}\nmodprobe: {moduleName: a}\n`, 'kernelVersion is duplicated'],
  ['duplicate nested key', `${base}modprobe:\n  moduleName: a\n  moduleName: b\n`, 'modprobe.moduleName is duplicated'],
  ['duplicate key in JSON', `{"kernelVersion": "${KVER}", "containerImage": "x", "modprobe": {"moduleName": "a", "dirName": "/opt", "dirName": "/x"}}`, 'modprobe.dirName is duplicated'],
  ['kernelVersion missing', `containerImage: x\nmodprobe: {moduleName: a}\n`, 'kernelVersion is required'],
  ['kernelVersion empty', `kernelVersion: ""\ncontainerImage: x\nmodprobe: {moduleName: a}\n`, 'kernelVersion is required'],
  ['kernelVersion a number', `kernelVersion: 6.1\ncontainerImage: x\nmodprobe: {moduleName: a}\n`, 'kernelVersion must be a string, got a number'],
  ['kernelVersion with a slash', `kernelVersion: ../../etc\ncontainerImage: x\nmodprobe: {moduleName: a}\n`, "kernelVersion '../../etc' is not a kernel release"],
  ['containerImage missing', `kernelVersion: ${KVER}\nmodprobe: {moduleName: a}\n`, 'containerImage is required'],
  ['containerImage a list', `kernelVersion: ${KVER}\ncontainerImage: [a]\nmodprobe: {moduleName: a}\n`, 'containerImage must be a string, got a list'],
  ['imagePullPolicy unknown', `${base}imagePullPolicy: Sometimes\nmodprobe: {moduleName: a}\n`, 'imagePullPolicy must be one of IfNotPresent, Always, Never'],
  ['insecurePull a string', `${base}insecurePull: "yes"\nmodprobe: {moduleName: a}\n`, 'insecurePull must be true or false, got a string'],
  ['inTreeModulesToRemove a string', `${base}inTreeModulesToRemove: a\nmodprobe: {moduleName: a}\n`, 'inTreeModulesToRemove must be a list of strings'],
  ['inTreeModulesToRemove item a number', `${base}inTreeModulesToRemove: [a, 3]\nmodprobe: {moduleName: a}\n`, 'inTreeModulesToRemove[1] must be a string, got a number'],
  ['inTreeModulesToRemove bad name', `${base}inTreeModulesToRemove: [a, "b c"]\nmodprobe: {moduleName: a}\n`, "inTreeModulesToRemove[1] 'b c' is not a valid module name"],
  ['inTreeModulesToRemove duplicate by -/_', `${base}inTreeModulesToRemove: [mod-a, mod_a]\nmodprobe: {moduleName: x}\n`, "inTreeModulesToRemove[1] 'mod_a' duplicates"],
  ['legacy and list together', `${base}inTreeModuleToRemove: a\ninTreeModulesToRemove: [b]\nmodprobe: {moduleName: x}\n`, 'inTreeModuleToRemove cannot be combined with inTreeModulesToRemove'],
  ['modprobe missing', base, 'modprobe is required'],
  ['modprobe a list', `${base}modprobe: [a]\n`, 'modprobe must be a mapping, got a list'],
  ['moduleName missing', `${base}modprobe: {dirName: /opt}\n`, 'modprobe.moduleName is required unless modprobe.rawArgs is set'],
  ['moduleName with a slash', `${base}modprobe: {moduleName: ../evil}\n`, "modprobe.moduleName '../evil' is not a valid module name"],
  ['rawArgs with moduleName', `${base}modprobe: {moduleName: a, rawArgs: {load: [a], unload: [-r, a]}}\n`, 'modprobe.rawArgs cannot be combined with modprobe.moduleName'],
  ['rawArgs without unload', `${base}modprobe: {rawArgs: {load: [a]}}\n`, 'modprobe.rawArgs.unload is required'],
  ['rawArgs without load', `${base}modprobe: {rawArgs: {unload: [-r, a]}}\n`, 'modprobe.rawArgs.load is required'],
  ['modulesLoadingOrder of one', `${base}modprobe: {moduleName: a, modulesLoadingOrder: [a]}\n`, 'modprobe.modulesLoadingOrder must list at least 2 modules'],
  ['modulesLoadingOrder first is not moduleName', `${base}modprobe: {moduleName: a, modulesLoadingOrder: [b, a]}\n`, "modprobe.modulesLoadingOrder[0] must equal modprobe.moduleName ('a'), got 'b'"],
  ['modulesLoadingOrder duplicates', `${base}modprobe: {moduleName: a, modulesLoadingOrder: [a, b, a]}\n`, "modprobe.modulesLoadingOrder[2] 'a' duplicates modprobe.modulesLoadingOrder[0]"],
  ['parameters not a list', `${base}modprobe: {moduleName: a, parameters: "x=1"}\n`, 'modprobe.parameters must be a list of strings, got a string'],
  ['parameter that is an option', `${base}modprobe: {moduleName: a, parameters: [--force]}\n`, "modprobe.parameters[0] '--force' is not a module parameter"],
  ['args.load not an option', `${base}modprobe: {moduleName: a, args: {load: [b]}}\n`, "modprobe.args.load[0] 'b' must be a modprobe option"],
  ['dirName relative', `${base}modprobe: {moduleName: a, dirName: opt}\n`, "modprobe.dirName must be an absolute path inside the image, got 'opt'"],
  ['firmwarePath with ..', `${base}modprobe: {moduleName: a, firmwarePath: /firmware/../../etc}\n`, "modprobe.firmwarePath must not contain '..'"],
  ['modprobedDir relative', `${base}modprobe: {moduleName: a, modprobedDir: etc/modprobe.d}\n`, "modprobe.modprobedDir must be an absolute path inside the image, got 'etc/modprobe.d'"],
  ['modprobedDir with ..', `${base}modprobe: {moduleName: a, modprobedDir: /opt/../../etc}\n`, "modprobe.modprobedDir must not contain '..'"],
  ['modprobedDir the image root', `${base}modprobe: {moduleName: a, modprobedDir: /}\n`, 'modprobe.modprobedDir must name a directory below the image root'],
  ['modprobedDir a list', `${base}modprobe: {moduleName: a, modprobedDir: [/a]}\n`, 'modprobe.modprobedDir must be a string, got a list'],
  ['not YAML', `kernelVersion: [unclosed\n`, ''],
  ['not a mapping', `- a\n- b\n`, 'the config must be a mapping'],
  ['empty file', ``, ''],
];

t.test('invalid configs: UsageError whose message starts with the field path', async (t) => {
  for (const [name, text, start] of invalid) {
    let err: unknown;
    try {
      parseModuleConfig(text, 'config.yaml');
    } catch (e) {
      err = e;
    }
    t.type(err, UsageError, name);
    t.ok((err as Error).message.startsWith(start), `${name}: ${(err as Error).message}`);
  }
});

t.test('what the KMM operator writes: optional fields absent, null or empty', async (t) => {
  const variants = [
    `${base}modprobe:\n  moduleName: kmm_hello\n`,
    `${base}imagePullPolicy: ""\ninsecurePull: false\ninTreeModulesToRemove: null\ninTreeModuleToRemove: ""\nmodprobe:\n  moduleName: kmm_hello\n  dirName: ""\n  firmwarePath: ""\n  parameters: null\n  modulesLoadingOrder: []\n  args: null\n  rawArgs: null\n`,
    `${base}imagePullPolicy: null\ninsecurePull: null\ninTreeModulesToRemove: []\nmodprobe:\n  moduleName: kmm_hello\n  parameters: []\n  args: {load: null, unload: null}\n  rawArgs: {}\n`,
    JSON.stringify({ kernelVersion: KVER, containerImage: `registry.example/kmm/hello:${KVER}`, imagePullPolicy: '', modprobe: { moduleName: 'kmm_hello', args: { load: null, unload: null } } }),
  ];
  for (const v of variants) {
    const c = parseModuleConfig(v, 'c.yaml');
    t.same(c, {
      kernelVersion: KVER,
      containerImage: `registry.example/kmm/hello:${KVER}`,
      imagePullPolicy: 'IfNotPresent',
      insecurePull: false,
      inTreeModulesToRemove: [],
      modprobe: { moduleName: 'kmm_hello', parameters: [], dirName: '/opt', modulesLoadingOrder: [], args: { load: [], unload: [] } },
    });
  }
});

t.test('legacy inTreeModuleToRemove is merged into the list; full config keeps every field', async (t) => {
  const legacy = parseModuleConfig(`${base}inTreeModuleToRemove: dummy\nmodprobe: {moduleName: a}\n`, 'c');
  t.same(legacy.inTreeModulesToRemove, ['dummy']);
  const full = parseModuleConfig(
    `${base}imagePullPolicy: Always\ninsecurePull: true\ninTreeModulesToRemove: [dummy, ice-old]\nmodprobe:\n  moduleName: kmm_user\n  parameters: [a=1, "b=x y"]\n  dirName: /opt/kmm\n  firmwarePath: /firmware\n  modulesLoadingOrder: [kmm_user, kmm_lib]\n  args: {load: [--ignore-install], unload: [--ignore-install]}\n`,
    'c',
  );
  t.same(full, {
    kernelVersion: KVER,
    containerImage: `registry.example/kmm/hello:${KVER}`,
    imagePullPolicy: 'Always',
    insecurePull: true,
    inTreeModulesToRemove: ['dummy', 'ice-old'],
    modprobe: {
      moduleName: 'kmm_user',
      parameters: ['a=1', 'b=x y'],
      dirName: '/opt/kmm',
      firmwarePath: '/firmware',
      modulesLoadingOrder: ['kmm_user', 'kmm_lib'],
      args: { load: ['--ignore-install'], unload: ['--ignore-install'] },
    },
  });
  const withConf = parseModuleConfig(`${base}modprobe: {moduleName: a, modprobedDir: /opt/modprobe.d}\n`, 'c');
  t.equal(withConf.modprobe.modprobedDir, '/opt/modprobe.d', 'upstream KMM modprobe.modprobedDir is accepted');
  t.equal(parseModuleConfig(`${base}modprobe: {moduleName: a, modprobedDir: ""}\n`, 'c').modprobe.modprobedDir, undefined, 'empty = not set');
  const raw = parseModuleConfig(`${base}modprobe: {rawArgs: {load: [-v, kmm_hello], unload: [-r, kmm_hello]}}\n`, 'c');
  t.same(raw.modprobe.rawArgs, { load: ['-v', 'kmm_hello'], unload: ['-r', 'kmm_hello'] });
  t.equal(raw.modprobe.moduleName, undefined);
});

t.test('CLI: every invalid config exits 2 with one line naming the field; modprobe never runs', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  for (const [i, [name, text, start]] of invalid.entries()) {
    const verb = i % 2 ? 'unload' : 'load';
    const r = await env.cli(['kmod', verb, await env.config(text)]);
    t.equal(r.code, 2, `${name}: exit 2`, { stderr: r.stderr });
    t.equal(r.errors.length, 1, `${name}: one error line`);
    t.ok(r.errors[0]?.startsWith(start), `${name}: ${r.errors[0]}`);
  }
  const missing = await env.cli(['kmod', 'load', `${env.work}/nope.yaml`]);
  t.equal(missing.code, 2);
  t.match(missing.errors[0], /^cannot read config .*nope\.yaml: no such file/);
  const badFlag = await env.cli(['kmod', 'load', await env.config(`${base}modprobe: {moduleName: kmm_hello}\n`), '--firmware-path', 'relative/dir']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.errors[0], /^--firmware-path must be an absolute host path/);
  t.same(await env.argv(), [], 'the recording modprobe was never called');
  t.same(await env.host.loadedModules(), []);
});

t.test('every shipped example is a valid config', async (t) => {
  const { readdir, readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { repoRoot } = await import('../worker/fixtures.js');
  const dir = join(repoRoot, 'examples');
  const files = (await readdir(dir)).filter((f) => /\.(ya?ml|json)$/.test(f));
  t.ok(files.length >= 4, `examples: ${files.join(', ')}`);
  for (const f of files) {
    const c = parseModuleConfig(await readFile(join(dir, f), 'utf8'), f);
    t.equal(c.kernelVersion, '6.1.0-27-amd64', f);
  }
  const full = parseModuleConfig(await readFile(join(dir, 'module-config.yaml'), 'utf8'), 'module-config.yaml');
  t.same(full.modprobe.modulesLoadingOrder, ['acme_nic_oot', 'acme_ptp', 'acme_auxbus']);
  t.equal(full.modprobe.firmwarePath, '/firmware');
  t.same(full.inTreeModulesToRemove, ['acme_nic', 'acme-nic-ptp']);
});

t.test('CLI: a module identity that is not a plain name is exit 2 (it names a file on the host)', async (t) => {
  const env = await makeEnv({ modules: ['kmm_hello'] });
  t.teardown(env.cleanup);
  const cfg = await env.config(`${base}modprobe: {moduleName: kmm_hello, firmwarePath: /firmware}\n`);
  for (const [flag, value] of [['--module-name', '../../etc/evil'], ['--module-namespace', '..']]) {
    const r = await env.cli(['kmod', 'load', cfg, flag!, value!]);
    t.equal(r.code, 2, `${flag} ${value}`);
    t.match(r.errors[0], `${flag} '${value}' is not a Kubernetes name`);
  }
  t.same(await env.argv(), []);
});
