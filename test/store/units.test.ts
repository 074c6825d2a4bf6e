import t from 'tap';
import { parseDuration } from '../../src/duration.js';
import { parsePullPolicy } from '../../src/store/pull.js';
import { pathFilter, selectionPrefixes } from '../../src/extract/selection.js';
import { UsageError } from '../../src/errors.js';

t.test('durations', async (t) => {
  t.equal(parseDuration('0s'), 0);
  t.equal(parseDuration('7d'), 7 * 86_400_000);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('2w'), 14 * 86_400_000);
  for (const bad of ['', '7', 'd7', '1.5h', '7 d', '-1h', '1y']) t.throws(() => parseDuration(bad), UsageError, bad);
});

t.test('pull policies', async (t) => {
  t.equal(parsePullPolicy(undefined), 'IfNotPresent');
  t.equal(parsePullPolicy(''), 'IfNotPresent');
  t.equal(parsePullPolicy('Always'), 'Always');
  t.equal(parsePullPolicy('always'), 'Always', 'as people type it (issue 18)');
  t.equal(parsePullPolicy('IFNOTPRESENT'), 'IfNotPresent');
  t.throws(() => parsePullPolicy('sometimes'), { constructor: UsageError, message: /got 'sometimes'/ });
});

t.test('selection prefixes and what they let through', async (t) => {
  t.same(selectionPrefixes({ dirName: '/opt', kernelVersion: '6.1.0', firmwarePath: '/firmware/' }), ['opt/lib/modules/6.1.0', 'firmware']);
  t.same(selectionPrefixes({ dirName: '/', kernelVersion: '6.1.0' }), ['lib/modules/6.1.0']);
  t.throws(() => selectionPrefixes({ dirName: '/opt', kernelVersion: '../x' }), UsageError);
  const f = pathFilter({ dirName: '/opt', kernelVersion: '6.1.0', firmwarePath: '/lib/firmware' });
  t.equal(f.classify('opt/lib/modules/6.1.0/a.ko'), 'inside');
  t.equal(f.classify('opt/lib/modules/6.1.0'), 'inside');
  t.equal(f.classify('opt/lib'), 'ancestor');
  t.equal(f.classify(''), 'ancestor');
  t.equal(f.classify('opt/lib/modules/6.1.01/a.ko'), false, 'a prefix of a name is not its directory');
  t.equal(f.classify('lib/firmware/x/y.bin'), 'inside');
  t.equal(f.classify('usr/bin/sh'), false);
  t.equal(pathFilter('all').classify('anything/at/all'), 'inside');
});

