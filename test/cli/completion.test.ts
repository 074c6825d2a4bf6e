/** Shell completion as bash runs it: the script from `kmm-worker completion bash`, called as the shell would. */
import t from 'tap';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inPipe } from './run-cli.js';

const r = await inPipe(['completion', 'bash']);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-compl-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const script = path.join(dir, 'kmm-worker.bash');
await fs.writeFile(script, r.stdout);

/** What bash offers after the words typed so far (the last one is being completed). */
async function complete(...words: string[]): Promise<string[]> {
  const arr = ['kmm-worker', ...words].map((w) => `'${w}'`).join(' ');
  const res = await execa('bash', ['-c', `source '${script}'; COMP_WORDS=(${arr}); COMP_CWORD=${words.length}; _kmm_worker; printf '%s\\n' "\${COMPREPLY[@]}"`]);
  return res.stdout.split('\n').filter(Boolean);
}

t.test('bash: subcommands, their flags and the global ones; file names for arguments', async (t) => {
  t.equal(r.code, 0);
  t.same(await complete('im'), ['image']);
  t.same(await complete('image', 'p'), ['pull', 'prune']);
  t.same(await complete('--dry-run', 'image', 'pull', '--pl'), ['--platform']);
  t.same(await complete('image', 'pull', '--host-'), ['--host-root'], 'global options after the subcommand');
  t.same(await complete('diagnose', '--o'), ['--output']);
  t.same(await complete('kmod', 'load', ''), [], 'the config argument: left to file-name completion');
  t.match(r.stdout, /complete -o default -F _kmm_worker kmm-worker/);
});

t.test('zsh: the same function through bashcompinit; other shells refused', async (t) => {
  const z = await inPipe(['completion', 'zsh']);
  t.equal(z.code, 0);
  t.match(z.stdout, /^autoload -U \+X bashcompinit && bashcompinit\n/);
  const bad = await inPipe(['completion', 'fish']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /shell must be bash or zsh, got 'fish'/);
});
