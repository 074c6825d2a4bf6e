/**
 * The credentials admins already have, without --auth-file: `podman login`'s auth.json at its default path, a
 * docker config.json, the kubelet's config.json under --host-root, and docker credential helpers (a real script
 * on PATH) named by credHelpers / credsStore. Real registries with Basic auth on loopback.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, writeAuthFile } from '../helpers/registry.js';
import { buildLayout, pushImage, kmodLayers } from '../helpers/images.js';
import { cli, errorLine, allStderr } from './cli.js';
import { runCredentialHelper } from '../../src/image/cred-helper.js';

const exec = promisify(execFile);
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-creddef-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const img = await buildLayout({ dir: path.join(work, 'oci'), tag: 'v1', layers: kmodLayers('6.1.0-test') });
const reg = await startRegistry({ auth: 'basic' });
t.teardown(() => reg.stop());
await pushImage(img, reg, 'kmod:v1');
const ref = `${reg.host}/kmod:v1`;

/** A fresh HOME (and runtime dir) with nothing in it; the env for the CLI. */
async function emptyHome(): Promise<{ home: string; runtime: string; env: Record<string, string> }> {
  const home = await fs.mkdtemp(path.join(work, 'home-'));
  const runtime = path.join(home, 'run');
  await fs.mkdir(runtime);
  return { home, runtime, env: { HOME: home, XDG_RUNTIME_DIR: runtime, DOCKER_CONFIG: '' } };
}

const bin = path.join(work, 'bin');
await fs.mkdir(bin);
const helperLog = path.join(work, 'helper.log');
// a docker credential helper: records what it was asked, answers for the test registry only
await fs.writeFile(path.join(bin, 'docker-credential-kmmtest'), `#!/bin/sh
read server
echo "$1 $server" >> ${helperLog}
if [ "$server" = "${reg.host}" ]; then
  printf '{"ServerURL":"%s","Username":"${reg.username}","Secret":"${reg.password}"}\\n' "$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`, { mode: 0o755 });
await fs.writeFile(path.join(bin, 'docker-credential-broken'), `#!/bin/sh
echo "leaked-${reg.password}" >&2
echo "leaked-${reg.password}"
exit 3
`, { mode: 0o755 });
await fs.writeFile(path.join(bin, 'docker-credential-slow'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
const PATH = `${bin}:${process.env.PATH}`;

t.test('podman login writes auth.json at its default path; inspect finds it without --auth-file', async (t) => {
  const { runtime, env } = await emptyHome();
  await exec('podman', ['login', '--tls-verify=false', '-u', reg.username!, '-p', reg.password!, reg.host],
    { env: { ...process.env, ...env, REGISTRY_AUTH_FILE: '' } });
  t.ok(await fs.stat(path.join(runtime, 'containers/auth.json')), 'podman wrote ${XDG_RUNTIME_DIR}/containers/auth.json');
  const r = await cli(['image', 'inspect', ref, '--json'], env);
  t.equal(r.code, 0, errorLine(r.stderr));
  t.same(Object.keys(JSON.parse(r.stdout || '{}').kernels ?? {}), ['6.1.0-test']);
});

t.test('$HOME/.config/containers/auth.json, $HOME/.docker/config.json and the kubelet config.json', async (t) => {
  for (const where of ['.config/containers/auth.json', '.docker/config.json']) {
    const { home, env } = await emptyHome();
    await writeAuthFile(reg, path.join(home, where));
    const r = await cli(['image', 'inspect', ref, '--json'], env);
    t.equal(r.code, 0, `${where}: ${errorLine(r.stderr)}`);
  }
  const { env } = await emptyHome();
  const root = await fs.mkdtemp(path.join(work, 'root-'));
  await writeAuthFile(reg, path.join(root, 'var/lib/kubelet/config.json'));
  const r = await cli(['--host-root', root, 'image', 'inspect', ref, '--json'], env);
  t.equal(r.code, 0, `kubelet config.json under --host-root: ${errorLine(r.stderr)}`);
});

t.test('credHelpers and credsStore run docker-credential-<name>; its output is never logged', async (t) => {
  for (const cfg of [{ credHelpers: { [reg.host]: 'kmmtest' } }, { credsStore: 'kmmtest', auths: {} }]) {
    await fs.rm(helperLog, { force: true });
    const { home, env } = await emptyHome();
    await fs.mkdir(path.join(home, '.docker'));
    await fs.writeFile(path.join(home, '.docker/config.json'), JSON.stringify(cfg));
    const r = await cli(['image', 'inspect', ref, '--json'], { ...env, PATH });
    t.equal(r.code, 0, `${Object.keys(cfg)[0]}: ${errorLine(r.stderr)}`);
    t.match(await fs.readFile(helperLog, 'utf8'), `get ${reg.host}\n`, 'the helper was asked with `get` and the registry');
  }
  // a failing helper: warned about by name and exit code, its output (a secret here) nowhere
  const { home, env } = await emptyHome();
  await fs.mkdir(path.join(home, '.docker'));
  await fs.writeFile(path.join(home, '.docker/config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'broken' } }));
  const r = await cli(['image', 'inspect', ref], { ...env, PATH });
  t.equal(r.code, 1);
  t.match(r.stderr, /"helper":"docker-credential-broken".*"exitCode":3/);
  t.match(errorLine(r.stderr), /no credentials were found for it \(looked in .*; give --auth-file\)$/);

  // with --auth-file, only that file is read, and the message names it
  const given = path.join(work, 'absent-auth.json');
  const g = await cli(['image', 'inspect', ref, '--auth-file', given], { ...env, PATH });
  t.equal(g.code, 1);
  t.equal(errorLine(g.stderr), `registry ${reg.host} requires authentication for kmod and no credentials were found for ` +
    `it (looked in pull secrets /nonexistent-kmm-secrets, auth file ${given})`);
});

t.test('a helper that hangs is stopped by the timeout; a missing helper is a warning', async (t) => {
  const started = Date.now();
  const lines: string[] = [];
  const log = { warn: (o: object, m: string) => lines.push(`${m} ${JSON.stringify(o)}`), debug: () => undefined };
  process.env.PATH = PATH;
  t.teardown(() => {
    process.env.PATH = PATH.slice(bin.length + 1);
  });
  t.equal(await runCredentialHelper('slow', reg.host, log as never, 300), undefined);
  t.ok(Date.now() - started < 5000, 'stopped well before the helper would end');
  t.match(lines[0], /timed out/);
  t.equal(await runCredentialHelper('absent-helper', reg.host, log as never, 300), undefined);
  t.match(lines[1], /not found in PATH/);
});

t.test('no secret in any log line', async (t) => {
  for (const s of allStderr) t.notOk(s.includes(reg.password!), 'the password is never logged');
});
