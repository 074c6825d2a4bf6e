/** Help that teaches: global options and examples in every command's help, --version, forgiving inputs. */
import t from 'tap';
import { inPipe } from './run-cli.js';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const COMMANDS = [
  ['kmod', 'load'], ['kmod', 'unload'], ['run'], ['image', 'pull'], ['image', 'inspect'], ['image', 'ls'],
  ['image', 'prune'], ['preflight'], ['day1', 'pull'], ['day1', 'load'], ['day1', 'machineconfig'], ['diagnose'], ['completion'], ['version'],
];

t.test('every command: global options and 2-3 examples that run that command', async (t) => {
  for (const cmd of COMMANDS) {
    const r = await inPipe([...cmd, '--help']);
    t.equal(r.code, 0, `${cmd.join(' ')} --help exits 0`);
    t.match(r.stdout, /Global Options:[\s\S]*--host-root[\s\S]*--images-dir[\s\S]*--log-format/, `${cmd.join(' ')}: global options`);
    if (cmd[0] !== 'version') t.match(r.stdout, /--dry-run/);
    const examples = r.stdout.split('Examples:')[1]?.split('\n').filter((l) => l.includes('$ ')) ?? [];
    t.ok(examples.length >= 1 && examples.length <= 3, `${cmd.join(' ')}: ${examples.length} examples`);
    for (const e of examples) t.match(e, cmd.join(' ').replace('version', 'version'), `example runs ${cmd.join(' ')}`);
  }
});

t.test('--version and -V print the version and exit 0', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await inPipe([flag]);
    t.equal(r.code, 0);
    t.equal(r.stdout, `kmm-worker ${pkg.version}`, 'one line');
  }
});

t.test('pull policies in any case; docker:// references as skopeo users type them', async (t) => {
  const r = await inPipe(['--images-dir', '/nonexistent-kmm-cache', 'image', 'pull', 'docker://127.0.0.1:1/kmod:v1', '--pull-policy', 'never', '--kernel', '6.1.0']);
  t.equal(r.code, 1, 'got past parsing: the operation itself failed');
  t.match(r.stderr, /image 127\.0\.0\.1:1\/kmod:v1 is not in the cache .* pull policy is Never/);
  const bad = await inPipe(['image', 'pull', 'r.example/kmod:v1', '--pull-policy', 'sometimes', '--kernel', '6.1.0']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--pull-policy must be one of IfNotPresent, Always, Never; got 'sometimes'/);
  const url = await inPipe(['image', 'pull', 'https://r.example/kmod:v1', '--kernel', '6.1.0']);
  t.equal(url.code, 2, 'other URL schemes are still refused');
});

t.test('global options after the subcommand work too', async (t) => {
  const r = await inPipe(['image', 'ls', '--images-dir', '/nonexistent-kmm-cache', '--json']);
  t.equal(r.code, 0, r.stderr);
});
