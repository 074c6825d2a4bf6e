import t from 'tap';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoRoot } from '../worker/fixtures.js';

const demo = join(repoRoot, 'examples/dry-run-demo.sh');

t.test('examples/dry-run-demo.sh prints the plan of a complete load', async (t) => {
  const r = await execa('bash', [demo], { reject: false });
  t.equal(r.exitCode, 0, 'exit 0', { stderr: r.stderr });
  const lines = r.stdout.split('\n');
  t.match(lines[0], /^# dry run: load default\/kmm_user for kernel \S+$/);
  t.match(lines[1], /^# kmods from shared dir \S+\/shared\/opt\/lib\/modules\/\S+$/);
  t.same(
    lines.filter((l) => l.startsWith('run ')).map((l) => l.replace(/-d \S+/, '-d ROOT')),
    ['run modprobe -r -v dummy', 'run modprobe -v -d ROOT kmm_fw', 'run modprobe -v -d ROOT kmm_lib', 'run modprobe -v -d ROOT kmm_user'],
  );
  t.equal(lines.filter((l) => l.startsWith('verify ')).length, 3);
});

t.test('examples/dry-run-demo.sh --real loads into its temp host root with the recording modprobe', async (t) => {
  const r = await execa('bash', [demo, '--real'], { reject: false });
  t.equal(r.exitCode, 0, 'exit 0', { stderr: r.stderr });
  t.match(r.stdout, /--- live modules:\nkmm_fw live\nkmm_lib live\nkmm_user live\n/);
  t.match(r.stdout, /--- host firmware:\n\.\/\.kmm-worker\/default\/kmm_user\.json\n\.\/kmm\/demo\.bin/);
});
