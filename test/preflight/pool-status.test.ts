import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBounded, TaskTimeoutError } from '../../src/preflight/pool.js';
import { mergeModuleStatuses, moduleStatus, rfc3339 } from '../../src/preflight/status.js';
import { renderTable } from '../../src/preflight/output.js';

t.test('at most `limit` tasks at once, results in input order', async (t) => {
  let running = 0;
  let peak = 0;
  const items = Array.from({ length: 10 }, (_, i) => i);
  const started = Date.now();
  const out = await runBounded(items, { limit: 3, timeoutSeconds: 5 }, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await sleep(50);
    running--;
    return i * 2;
  }, () => -1);
  t.same(out, items.map((i) => i * 2));
  t.equal(peak, 3);
  t.ok(Date.now() - started < 2000, 'all done well within the 5 s task timeout');
});

t.test('a task that hangs and ignores its signal is abandoned at its timeout; the others finish', async (t) => {
  const started = Date.now();
  let sawAbort = false;
  const out = await runBounded([0, 1, 2, 3], { limit: 2, timeoutSeconds: 1 }, async (i, signal) => {
    if (i === 0) {
      signal.addEventListener('abort', () => (sawAbort = true));
      return new Promise<string>(() => {}); // never settles
    }
    await sleep(20);
    return `ok${i}`;
  }, (_i, err) => (err instanceof TaskTimeoutError ? err.message : `other: ${String(err)}`));
  t.same(out, ['timed out after 1s', 'ok1', 'ok2', 'ok3']);
  t.ok(sawAbort, 'the task was told through its signal');
  const took = Date.now() - started;
  t.ok(took >= 950 && took < 4000, `took ${took} ms`);
});

t.test('the outer signal stops tasks not started and aborts running ones', async (t) => {
  const ac = new AbortController();
  const out = await runBounded([0, 1, 2], { limit: 1, timeoutSeconds: 10, signal: ac.signal }, async (i, signal) => {
    if (i === 0) {
      setTimeout(() => ac.abort(new Error('SIGINT')), 20);
      await sleep(5000, undefined, { signal });
    }
    return 'done';
  }, (_i, err) => `stopped: ${(err as Error).message}`);
  t.same(out, ['stopped: SIGINT', 'stopped: SIGINT', 'stopped: SIGINT']);
});

t.test('status shapes', async (t) => {
  const now = new Date('2026-11-21T06:00:00.123Z');
  t.equal(rfc3339(now), '2026-11-21T06:00:00Z');
  t.same(moduleStatus({ name: 'a', namespace: 'n' }, 'Success', 'ok', now), {
    name: 'a', namespace: 'n', verificationStage: 'Done', verificationStatus: 'Success', statusReason: 'ok',
    lastTransitionTime: '2026-11-21T06:00:00Z',
  });
  t.equal(moduleStatus({ name: 'a', namespace: 'n' }, 'InProgress', 'x', now).verificationStage, 'Image');
});

t.test('merging into an existing status list keeps other modules and unchanged transition times', async (t) => {
  const old = '2026-01-01T00:00:00Z';
  const existing = [
    { name: 'keep', namespace: 'z', verificationStage: 'Done', verificationStatus: 'Failure', statusReason: 'x', lastTransitionTime: old },
    { name: 'same', namespace: 'a', verificationStage: 'Done', verificationStatus: 'Success', statusReason: 'old reason', lastTransitionTime: old },
    { name: 'flip', namespace: 'a', verificationStage: 'Done', verificationStatus: 'Failure', statusReason: 'y', lastTransitionTime: old },
  ];
  const now = new Date('2026-11-21T06:00:00Z');
  const merged = mergeModuleStatuses(existing, [
    moduleStatus({ name: 'same', namespace: 'a' }, 'Success', 'new reason', now),
    moduleStatus({ name: 'flip', namespace: 'a' }, 'Success', 'fixed', now),
    moduleStatus({ name: 'new', namespace: 'b' }, 'Failure', 'no', now),
  ]);
  t.same(merged.map((m) => [`${m.namespace}/${m.name}`, m.verificationStatus, m.statusReason, m.lastTransitionTime]), [
    ['a/flip', 'Success', 'fixed', '2026-11-21T06:00:00Z'],
    ['a/same', 'Success', 'new reason', old],
    ['b/new', 'Failure', 'no', '2026-11-21T06:00:00Z'],
    ['z/keep', 'Failure', 'x', old],
  ]);
});

t.test('table', async (t) => {
  const now = new Date('2026-11-21T06:00:00Z');
  t.equal(
    renderTable({ kernelVersion: '6.1.0', modules: [moduleStatus({ name: 'a', namespace: 'default' }, 'Success', 'image x has /opt/a.ko', now), moduleStatus({ name: 'longer-name', namespace: 'k' }, 'Failure', 'no kernel mapping matches kernel 6.1.0', now)] }),
    [
      'Kernel 6.1.0',
      'NAMESPACE   NAME          STAGE   STATUS    REASON',
      'default     a             Done    Success   image x has /opt/a.ko',
      'k           longer-name   Done    Failure   no kernel mapping matches kernel 6.1.0',
      '',
    ].join('\n'),
  );
  t.equal(renderTable({ kernelVersion: '6.1.0', modules: [] }), 'No Modules to validate for kernel 6.1.0.\n');
});
