/**
 * Hostile input on the command line (issue 14 F11, F12): a reference naming an impossible address is a usage
 * error before anything is created, and no failure line echoes more than ~200 characters of what it was given.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cli, errorLine } from './cli.js';
import { parseReference } from '../../src/image/reference.js';
import { UsageError, cutEchoes, oneLine } from '../../src/errors.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmm-hostile-input-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

t.test('an impossible port or IPv4 address is exit 2 at parse time, and nothing is created', async (t) => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1:99999/x', `image reference '127.0.0.1:99999/x': registry port 99999 is out of range (1-65535)`],
    ['localhost:0/x', `image reference 'localhost:0/x': registry port 0 is out of range (1-65535)`],
    ['999.999.999.999/x', `image reference '999.999.999.999/x': registry host '999.999.999.999' is not a valid IPv4 address`],
    ['10.0.0.300:5000/x:v1', `image reference '10.0.0.300:5000/x:v1': registry host '10.0.0.300' is not a valid IPv4 address`],
  ];
  for (const [ref, msg] of cases) {
    t.throws(() => parseReference(ref), new UsageError(msg), ref);
    const images = path.join(work, `images-${cases.indexOf(cases.find((c) => c[0] === ref)!)}`);
    const pull = await cli(['--images-dir', images, 'image', 'pull', ref, '--all']);
    t.equal(pull.code, 2, `image pull ${ref}`);
    t.equal(errorLine(pull.stderr), msg);
    t.notOk(await exists(images), 'the images dir was not created');
    const inspect = await cli(['image', 'inspect', ref]);
    t.equal(inspect.code, 2, `image inspect ${ref}`);
    t.equal(errorLine(inspect.stderr), msg);
  }
  for (const ok of ['127.0.0.1:65535/x', '10.0.0.1/x', '[::1]:1/x', 'reg.example:5000/x']) {
    t.doesNotThrow(() => parseReference(ok), ok);
  }
});

t.test('failure lines cut echoed input at 200 characters', async (t) => {
  const long = 'a'.repeat(100_000);
  let r = await cli(['image', 'inspect', long]);
  t.equal(r.code, 2);
  let line = errorLine(r.stderr);
  t.equal(line, `image reference '${'a'.repeat(200)}…': repository name longer than 255 characters`);
  t.ok(r.stderr.length < 4000, `all of stderr is short (${r.stderr.length} bytes)`);

  // whitespace inside: no single run is long, but the line still is bounded
  r = await cli(['image', 'inspect', 'a '.repeat(30_000).trim()]);
  t.equal(r.code, 2);
  line = errorLine(r.stderr);
  t.ok(line.length <= 1001, `line of ${line.length} characters`);
  t.match(line, /^image reference 'a a a [a ]*…' contains whitespace$/);

  // commander's own errors
  r = await cli(['image', 'inspect', 'x', `--${'z'.repeat(100_000)}`]);
  t.equal(r.code, 2);
  t.ok(r.stderr.length < 2000, `commander's message is cut (${r.stderr.length} bytes)`);
  t.match(r.stderr, /unknown option '--z{198}…'/);
});

t.test('cutEchoes', async (t) => {
  t.equal(cutEchoes('short line'), 'short line');
  t.equal(cutEchoes(`x '${'b'.repeat(201)}' y`), `x '${'b'.repeat(200)}…' y`);
  t.equal(cutEchoes(`x '${'b'.repeat(200)}' y`), `x '${'b'.repeat(200)}' y`, 'exactly 200 is kept');
  t.equal(cutEchoes(`${'c'.repeat(300)} tail`), `${'c'.repeat(200)}… tail`);
  t.equal(cutEchoes(`'${'😀'.repeat(150)}'`), `'${'😀'.repeat(100)}…'`, 'no half surrogate pair');
  t.equal(oneLine(new Error(`bad '${'q'.repeat(1000)}'\nsecond line`)), `bad '${'q'.repeat(200)}…'`);
});
