/**
 * The suite-wide check that no command ends in an unhandled 'error' event, rejection or exception
 * (test/helpers/crash-watch.mjs, loaded into every test process by tap's node-arg): it sees what a CLI child
 * prints on the side, and it fails the test file that spawned it.
 */
import t from 'tap';
import { execa } from 'execa';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const WATCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/crash-watch.mjs');
const watcher = (globalThis as unknown as { kmmCrashWatch?: { seen: { line: string }[]; clear(): unknown } }).kmmCrashWatch;

const crashes: [string, string][] = [
  ['an unhandled error event', `new (require('events'))().emit('error', new Error('boom'))`],
  ['an unhandled rejection', `Promise.reject(new Error('boom'))`],
  ['an uncaught exception', `setTimeout(() => { throw new Error('boom') })`],
];

t.test('the watcher is loaded into this test process', async (t) => {
  t.ok(watcher, 'tap.node-arg in package.json loads test/helpers/crash-watch.mjs');
});

t.test('it sees each kind of crash a child prints, whichever helper spawned it', async (t) => {
  for (const [what, code] of crashes) {
    watcher!.clear();
    const r = await execa(process.execPath, ['-e', code], { reject: false });
    t.not(r.exitCode, 0, what);
    t.equal(watcher!.seen.length, 1, `${what} (execa)`);
    watcher!.clear();
    await promisify(execFile)(process.execPath, ['-e', code]).catch(() => undefined);
    t.equal(watcher!.seen.length, 1, `${what} (execFile)`);
  }
  watcher!.clear();
  await execa(process.execPath, ['-e', `console.error('all fine'); process.exitCode = 1`], { reject: false });
  t.same(watcher!.seen, [], 'a plain failure is not a crash');
});

t.test('a test process whose child crashed exits non-zero, naming the child and the line', async (t) => {
  const script = `import { execFile } from 'node:child_process';
execFile(process.execPath, ['-e', "Promise.reject(new Error('boom'))"], () => console.log('the test itself passed'));`;
  const r = await execa(process.execPath, [`--import=${WATCH}`, '--input-type=module', '-e', script], { reject: false });
  t.equal(r.stdout, 'the test itself passed');
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /^crash-watch: a child process printed ".*" \(node -e Promise\.reject/m);
  watcher!.clear();
});
