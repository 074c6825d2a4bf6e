import t from 'tap';
import { substituteVariables, SubstitutionError } from '../../src/preflight/substitute.js';
import { kernelVariables, normalizeKernelVersion, checkKernelArgument } from '../../src/preflight/kernel.js';
import { compileGoRegexp } from '../../src/preflight/go-regexp.js';
import { resolveModuleForKernel } from '../../src/preflight/kernel-mapping.js';
import { parseModuleDocuments } from '../../src/preflight/module-cr.js';
import { UsageError } from '../../src/errors.js';

t.test('variable substitution follows envsubst as KMM uses it', async (t) => {
  const vars = { A: 'a', EMPTY: '', KERNEL_X: '6' };
  const cases: [string, string][] = [
    ['img:$A', 'img:a'],
    ['img:${A}', 'img:a'],
    ['img:${A}-x', 'img:a-x'],
    ['img:$A_b', 'img:'], // the identifier runs on: A_b is unset
    ['img:${UNSET}', 'img:'],
    ['img:$UNSET.x', 'img:.x'],
    ['img:${UNSET:-def}', 'img:def'],
    ['img:${EMPTY:-def}', 'img:def'],
    ['img:${EMPTY-def}', 'img:'],
    ['img:${UNSET-def}', 'img:def'],
    ['img:${UNSET:=def}', 'img:def'],
    ['img:${A:-def}', 'img:a'],
    ['img:${A:+alt}', 'img:alt'],
    ['img:${UNSET:+alt}', 'img:'],
    ['img:${UNSET:-$KERNEL_X}', 'img:6'],
    ['cost $$5', 'cost $5'],
    ['a$', 'a$'],
    ['a$-b', 'a$-b'],
    ['${}', '${}'],
    ['no vars', 'no vars'],
  ];
  for (const [input, want] of cases) t.equal(substituteVariables(input, vars), want, input);
  t.throws(() => substituteVariables('img:${A', vars), SubstitutionError);
});

t.test('kernel normalisation and the KERNEL_* variables', async (t) => {
  t.equal(normalizeKernelVersion('6.1.0+gke/x'), '6.1.0_gke_x');
  t.same(kernelVariables('5.14.0-570.19.1.el9_6.x86_64'), {
    KERNEL_FULL_VERSION: '5.14.0-570.19.1.el9_6.x86_64',
    KERNEL_VERSION: '5.14.0-570.19.1.el9_6.x86_64',
    KERNEL_XYZ: '5.14.0',
    KERNEL_X: '5',
    KERNEL_Y: '14',
    KERNEL_Z: '0',
  });
  t.same(kernelVariables('6.1.0-27-amd64').KERNEL_XYZ, '6.1.0');
  // "6.1+x" normalises to "6.1_x": two components only, KMM refuses it
  t.throws(() => kernelVariables('6.1+x'), UsageError);
  t.throws(() => checkKernelArgument('  ', '--kernel'), /empty/);
  t.throws(() => checkKernelArgument('6.1.0/../x', '--kernel'), /not a kernel release/);
  t.equal(checkKernelArgument(' 6.1.0-27-amd64\n', '--kernel'), '6.1.0-27-amd64');
});

t.test('Go regexp spellings', async (t) => {
  t.ok(compileGoRegexp('fc37').test('6.0.15-300.fc37.x86_64'), 'unanchored');
  t.ok(compileGoRegexp('(?i)FC37').test('6.0.15-300.fc37.x86_64'), '(?i)');
  t.ok(compileGoRegexp('\\Afoo\\z').test('foo'));
  t.notOk(compileGoRegexp('\\Afoo\\z').test('foo\n'));
  t.ok(compileGoRegexp('^(?P<v>\\d+)\\.').test('6.1'));
  t.ok(compileGoRegexp('[]a]').test(']'));
  t.throws(() => compileGoRegexp('('), /invalid regular expression/);
});

function mod(container: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const text = JSON.stringify({
    apiVersion: 'kmm.sigs.x-k8s.io/v1beta1',
    kind: 'Module',
    metadata: { name: 'kmm-ci', namespace: 'ops' },
    spec: { moduleLoader: { container: { modprobe: { moduleName: 'kmm_ci_a' }, ...container } }, selector: {}, ...extra },
  });
  return parseModuleDocuments(text, 'm.yaml')[0]!;
}

t.test('kernel mappings: literal exact, regexp unanchored, first match wins', async (t) => {
  const m = mod({
    containerImage: 'reg/default:${KERNEL_FULL_VERSION}',
    kernelMappings: [
      { literal: '6.1.0-27', containerImage: 'reg/literal:${KERNEL_X}' },
      { regexp: 'fc37', containerImage: 'reg/fc:${KERNEL_XYZ}' },
      { regexp: '^.+$' },
    ],
  });
  const r1 = resolveModuleForKernel(m, '6.1.0-27');
  t.equal(r1.kind === 'resolved' && r1.module.containerImage, 'reg/literal:6');
  // a literal is not a prefix match: 6.1.0-27-amd64 skips it
  const r2 = resolveModuleForKernel(m, '6.1.0-27-amd64');
  t.equal(r2.kind === 'resolved' && r2.module.containerImage, 'reg/default:6.1.0-27-amd64');
  t.equal(r2.kind === 'resolved' && r2.module.mapping, "kernelMappings[2] (regexp '^.+$')");
  const r3 = resolveModuleForKernel(m, '6.0.15-300.fc37.x86_64');
  t.equal(r3.kind === 'resolved' && r3.module.containerImage, 'reg/fc:6.0.15');
  t.equal(r3.kind === 'resolved' && r3.module.dirName, '/opt', 'dirName defaults to /opt');

  const none = resolveModuleForKernel(mod({ containerImage: 'x', kernelMappings: [{ literal: '1.2.3' }, { regexp: '^5\\.' }] }), '6.1.0');
  t.same(none, { kind: 'no-mapping', message: 'no kernel mapping matches kernel 6.1.0' });
});

t.test('every substitution variable, and mapping values override container ones', async (t) => {
  const m = mod(
    {
      containerImage: 'reg/never',
      registryTLS: { insecure: true },
      build: { dockerfileConfigMap: { name: 'df' } },
      modprobe: { moduleName: 'kmm_ci_a', dirName: '/srv' },
      kernelMappings: [
        {
          regexp: '^5\\.14',
          containerImage:
            'reg/${MOD_NAMESPACE}/${MOD_NAME}:${KERNEL_FULL_VERSION}_${KERNEL_VERSION}_${KERNEL_XYZ}_${KERNEL_X}_${KERNEL_Y}_${KERNEL_Z}_$KERNEL_X${NOPE:-d}',
          registryTLS: { insecure: false },
        },
      ],
    },
    { imageRepoSecret: { name: 'pull' } },
  );
  const r = resolveModuleForKernel(m, '5.14.0-570.19.1.el9_6.x86_64');
  t.equal(r.kind, 'resolved');
  if (r.kind !== 'resolved') return;
  t.equal(
    r.module.containerImage,
    'reg/ops/kmm-ci:5.14.0-570.19.1.el9_6.x86_64_5.14.0-570.19.1.el9_6.x86_64_5.14.0_5_14_0_5d',
  );
  t.equal(r.module.insecure, false, "the mapping's registryTLS wins");
  t.equal(r.module.build, true, 'container-level build applies to the mapping');
  t.equal(r.module.sign, false);
  t.equal(r.module.dirName, '/srv');
  t.equal(r.module.imageRepoSecret, 'pull');
});

t.test('a broken Module is that Module\'s failure, naming the field', async (t) => {
  const bad = (container: Record<string, unknown>) => {
    const r = resolveModuleForKernel(mod(container), '6.1.0-27-amd64');
    return r.kind === 'invalid' ? r.message : `not invalid: ${r.kind}`;
  };
  t.match(bad({ kernelMappings: [{ regexp: '(' , containerImage: 'x' }] }), /^invalid Module: spec\.moduleLoader\.container\.kernelMappings\[0\]\.regexp: invalid regular expression/);
  t.match(bad({ kernelMappings: [{ regexp: '.' }] }), /kernelMappings\[0\]\.containerImage: missing/);
  t.match(bad({ kernelMappings: [{ literal: 'a', regexp: 'b' }] }), /mutually exclusive/);
  t.match(bad({ kernelMappings: [] }), /at least one mapping/);
  t.match(bad({ containerImage: 'x', kernelMappings: [{ regexp: '.' }], modprobe: {} }), /modprobe\.moduleName is required/);
  t.match(bad({ containerImage: 'x:${A', kernelMappings: [{ regexp: '.' }] }), /containerImage: closing brace expected/);
  t.match(bad({ containerImage: 'x', kernelMappings: [{ regexp: '.' }], modprobe: { moduleName: 'a', dirName: 'rel' } }), /dirName must be an absolute path/);
});

t.test('Module documents: multi-doc, other kinds ignored, identity checked', async (t) => {
  const text = `
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: a}
spec: {}
---
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: b, namespace: kmm}
spec: {}
`;
  const mods = parseModuleDocuments(text, 'f.yaml');
  t.same(mods.map((m) => `${m.namespace}/${m.name}`), ['default/a', 'kmm/b']);
  t.throws(() => parseModuleDocuments('kind: Module\napiVersion: kmm.sigs.x-k8s.io/v1beta1\nmetadata: {}\n', 'f.yaml'), {
    message: 'f.yaml: Module metadata.name is required',
  });
  t.throws(() => parseModuleDocuments('a: [\n', 'f.yaml'), /^f\.yaml: invalid YAML/);
});

t.test('a kubectl List of Modules (kubectl get modules -A -o yaml)', async (t) => {
  const text = `apiVersion: v1
kind: List
items:
- apiVersion: kmm.sigs.x-k8s.io/v1beta1
  kind: Module
  metadata: {name: a, namespace: x, deletionTimestamp: "2026-01-01T00:00:00Z"}
  spec: {}
- apiVersion: kmm.sigs.x-k8s.io/v1beta1
  kind: Module
  metadata: {name: b, namespace: y}
  spec: {}
`;
  t.same(parseModuleDocuments(text, 'list.yaml').map((m) => [m.namespace, m.name, m.deleting]), [['x', 'a', true], ['y', 'b', false]]);
});
