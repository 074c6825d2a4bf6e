/**
 * `kmm-worker preflight --day1-image REPO --day1-module NAME`: before a kernel upgrade rolls, the Day-1 image of
 * the upcoming kernel (REPO:<kernel>, as the Day-1 units name it) is checked like a Module, and a missing one is
 * pointed out with the tag to push. Real docker-registry on 127.0.0.1, images pushed by skopeo, the real CLI.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fakeKo, K, K_OLD, moduleCR, publish, runCli, testRegistry, tmpDir, writeYaml } from './fixtures.js';

const reg = await testRegistry(t);
const work = await tmpDir('day1');
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
// the Day-1 repository has the running kernel's image only; /srv/kmods is a custom directory
await publish(reg, work, [`day1/kmod:${K_OLD}`], [{ [`opt/lib/modules/${K_OLD}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a', K_OLD) }]);
await publish(reg, work, [`day1/srv:${K}`], [{ [`srv/kmods/lib/modules/${K}/kmm_ci_a.ko`]: fakeKo('kmm_ci_a') }]);

type Report = { kernelVersion: string; modules: { name: string; namespace: string; verificationStatus: string; statusReason: string }[] };

t.test("the next kernel's Day-1 image is missing: exit 1, and the reason names the tag to push", async (t) => {
  const r = await runCli(['preflight', '--kernel', K, '--day1-image', `${reg.host}/day1/kmod`, '--day1-module', 'kmm_ci_a', '--json']);
  t.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.modules.length, 1);
  const m = report.modules[0]!;
  t.same([m.namespace, m.name, m.verificationStatus], ['day1', 'kmm_ci_a', 'Failure']);
  t.match(m.statusReason, `image ${reg.host}/day1/kmod:${K} not found`);
  t.match(m.statusReason, `push ${reg.host}/day1/kmod:${K} before nodes boot kernel ${K}`);
  t.match(r.stderr, /1 of 1 Modules failed preflight/);
});

t.test("the running kernel's image passes; a custom --day1-dir-name is looked in", async (t) => {
  const old = await runCli(['preflight', '--kernel', K_OLD, '--day1-image', `${reg.host}/day1/kmod`, '--day1-module', 'kmm_ci_a', '--json']);
  t.equal(old.code, 0, old.stderr);
  t.match((JSON.parse(old.stdout) as Report).modules[0]!.statusReason, `image ${reg.host}/day1/kmod:${K_OLD} has /opt/lib/modules/${K_OLD}/kmm_ci_a.ko`);
  const srv = await runCli(['preflight', '--kernel', K, '--day1-image', `${reg.host}/day1/srv`, '--day1-module', 'kmm_ci_a', '--day1-dir-name', '/srv/kmods']);
  t.equal(srv.code, 0, srv.stderr);
  t.match(srv.stdout, /day1\s+kmm_ci_a\s+Done\s+Success/);
});

t.test('with Modules: the Day-1 row follows them; only a Module without an image fails', async (t) => {
  const file = await writeYaml(path.join(work, 'modules.yaml'), [
    moduleCR('srv', { modprobe: { moduleName: 'kmm_ci_a', dirName: '/srv/kmods' }, kernelMappings: [{ regexp: '.', containerImage: `${reg.host}/day1/srv:\${KERNEL_FULL_VERSION}` }] }),
  ]);
  const r = await runCli(['preflight', '--kernel', K, '--module', file, '--day1-image', `${reg.host}/day1/kmod`, '--day1-module', 'kmm_ci_a', '--json']);
  t.equal(r.code, 1);
  t.same((JSON.parse(r.stdout) as Report).modules.map((m) => [m.namespace, m.name, m.verificationStatus]), [['default', 'srv', 'Success'], ['day1', 'kmm_ci_a', 'Failure']]);
});

t.test('bad Day-1 flags: exit 2 with one line', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--day1-image', `${reg.host}/day1/kmod`], /^--day1-image needs --day1-module NAME/],
    [['--day1-module', 'kmm_ci_a'], /^--day1-module needs --day1-image REPO/],
    [['--day1-image', `${reg.host}/day1/kmod:${K}`, '--day1-module', 'kmm_ci_a'], /^--day1-image must be a repository without a tag/],
    [['--day1-image', `${reg.host}/day1/kmod`, '--day1-module', 'a b'], /^--day1-module must be a kernel module name/],
    [['--day1-image', `${reg.host}/day1/kmod`, '--day1-module', 'kmm_ci_a', '--day1-dir-name', 'opt'], /^--day1-dir-name must be an absolute path/],
    [['--day1-dir-name', '/opt', '--module', 'x.yaml'], /^--day1-dir-name needs --day1-image and --day1-module/],
  ];
  for (const [flags, message] of cases) {
    const r = await runCli(['preflight', '--kernel', K, ...flags]);
    t.equal(r.code, 2, flags.join(' '));
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line: ${r.stderr}`);
    t.match((JSON.parse(lines[0]!) as { msg: string }).msg, message);
  }
});
