/** Failure messages end with the fix, in the terms of whoever set the options. */
import t from 'tap';
import { messages, speakTo, currentAudience } from '../../src/messages.js';
import { checkKernelPlatform, kernelArch } from '../../src/preflight/kernel-arch.js';
import { UsageError } from '../../src/errors.js';
import { inPipe } from './run-cli.js';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

t.test('TLS and plain-HTTP fixes per audience', async (t) => {
  t.equal(currentAudience(), 'cli', 'a command-line user by default');
  t.match(messages.tlsUntrusted('r:5000', 'r:5000', 'self-signed certificate', 'cli'), /certs\.d\/r:5000\/ca\.crt .*pass --insecure$/);
  t.match(messages.tlsUntrusted('r:5000', 'r:5000', 'x', 'module-config'), /set insecurePull: true in the config$/);
  t.match(messages.tlsUntrusted('r:5000', 'r:5000', 'x', 'module'), /registryTLS\.insecureSkipTLSVerify: true/);
  t.equal(messages.plainHttp('r:5000', 'module-config'), 'registry r:5000 does not speak HTTPS; to use plain HTTP set insecurePull: true in the config');
  speakTo('module-config');
  t.match(messages.plainHttp('r:5000'), /insecurePull/, 'the audience a command set is used');
  speakTo('cli');
  t.notMatch(messages.tlsUntrusted('r', 'r', 'x', 'cli'), /insecurePull|use-system-ca/);
});

t.test('missing tag: the tags the repository has, at most 8', async (t) => {
  const many = Array.from({ length: 11 }, (_, i) => `v${i}`);
  t.equal(messages.manifestUnknown('r/k:x', "tag 'x'", 'r', many), "image r/k:x: tag 'x' not found on registry r; the repository has: v0, v1, v2, v3, v4, v5, v6, v7 and 3 more");
  t.equal(messages.manifestUnknown('r/k:x', "tag 'x'", 'r', []), "image r/k:x: tag 'x' not found on registry r; the repository has no tags");
});

t.test('the architecture a kernel release names', async (t) => {
  t.equal(kernelArch('5.14.0-427.13.1.el9_4.aarch64'), 'arm64');
  t.equal(kernelArch('6.1.0-57-arm64'), 'arm64');
  t.equal(kernelArch('5.14.0-427.el9.x86_64'), 'amd64');
  t.equal(kernelArch('6.1.0-57-amd64'), 'amd64');
  t.equal(kernelArch('5.14.0-284.el9.ppc64le'), 'ppc64le');
  t.equal(kernelArch('6.8.0-1-generic'), undefined);
  t.throws(() => checkKernelPlatform('6.1.0-57-arm64', undefined, 'amd64'), { constructor: UsageError, message: /pass --platform linux\/arm64$/ });
  t.doesNotThrow(() => checkKernelPlatform('6.1.0-57-arm64', 'linux/arm64', 'amd64'));
  t.doesNotThrow(() => checkKernelPlatform('6.1.0-57-amd64', undefined, 'amd64'));
  t.doesNotThrow(() => checkKernelPlatform('6.8.0-1-generic', undefined, 'amd64'));
});

t.test('preflight of an arm64 kernel on an amd64 host without --platform: refused with the flag to use', async (t) => {
  if (process.arch !== 'x64') {
    t.comment('the host is not amd64: the case needs another architecture than the host');
    return;
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-pf-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'module.yaml');
  await fs.writeFile(file, `apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: { name: m, namespace: ns }
spec:
  moduleLoader:
    container:
      modprobe: { moduleName: m }
      kernelMappings: [{ regexp: '.', containerImage: '127.0.0.1:1/kmod:v1' }]
  selector: {}
`);
  const r = await inPipe(['preflight', '--kernel', '5.14.0-427.el9.aarch64', '--module', file]);
  t.equal(r.code, 2);
  t.match(r.stderr, /kernel 5\.14\.0-427\.el9\.aarch64 is an arm64 kernel but .* amd64; pass --platform linux\/arm64/);
});

t.test("Node's --use-system-ca advice is not passed on", async (t) => {
  const m = messages.tlsUntrusted('r', 'r', 'unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca', 'cli');
  t.equal(m, "registry r: TLS certificate not trusted (unable to verify the first certificate); put the registry's CA in /etc/containers/certs.d/r/ca.crt (under --host-root), or to skip verification pass --insecure");
});

t.test('the same TLS failure, told to a ModuleConfig user and to a command-line user', async (t) => {
  const { startRegistry } = await import('../helpers/registry.js');
  const { makeHostRoot } = await import('../helpers/host-root.js');
  const reg = await startRegistry({ tls: true });
  t.teardown(() => reg.stop());
  const host = await makeHostRoot({ kver: '6.1.0-57-amd64' });
  t.teardown(() => host.cleanup());
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-tls-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'config.yaml');
  await fs.writeFile(config, `kernelVersion: 6.1.0-57-amd64\ncontainerImage: ${reg.host}/kmod:v1\nmodprobe:\n  moduleName: kmm_hello\n`);
  const common = ['--host-root', host.root, '--images-dir', path.join(dir, 'cache'), '--shared-dir', path.join(dir, 'shared')];

  const load = await inPipe([...common, '--report', 'off', 'kmod', 'load', config]);
  t.equal(load.code, 1);
  t.match(load.stderr, new RegExp(`^ERROR registry ${reg.host}: TLS certificate not trusted .*certs\\.d/${reg.host}/ca\\.crt .*set insecurePull: true in the config `, 'm'));
  t.notMatch(load.stderr, /--insecure|use-system-ca/);

  const pull = await inPipe([...common, 'image', 'pull', `${reg.host}/kmod:v1`, '--kernel', '6.1.0-57-amd64']);
  t.equal(pull.code, 1);
  t.match(pull.stderr, /^ERROR registry .*TLS certificate not trusted .*or to skip verification pass --insecure /m);
  t.notMatch(pull.stderr, /insecurePull|use-system-ca/);
});
