/**
 * transport/retry.ts: bounded retries of requests, and the decision to resume a body that broke mid-way.
 */
import t from 'tap';
import { OperationError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { HttpStatusError } from '../../../src/image/transport/errors.js';
import { resumeDelay, withRetries, type RetryScope } from '../../../src/image/transport/retry.js';

const scope: RetryScope = { registry: 'reg.example', endpoint: 'reg.example', log: silentLogger(),
  policy: { attempts: 3, baseDelayMs: 5, maxDelayMs: 12 } };
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

t.test('withRetries: transient failures are tried `attempts` times, then one line', async (t) => {
  let tries = 0;
  await t.rejects(withRetries(scope, 'manifest of x', undefined, async () => {
    tries++;
    throw new HttpStatusError(503);
  }), { message: 'registry reg.example: manifest of x failed with HTTP 503 after 3 tries' });
  t.equal(tries, 3);
  tries = 0;
  t.equal(await withRetries(scope, 'x', undefined, async () => {
    if (++tries < 3) throw reset();
    return 'ok';
  }), 'ok');
});

t.test('withRetries: an OperationError is not retried', async (t) => {
  let tries = 0;
  await t.rejects(withRetries(scope, 'x', undefined, async () => {
    tries++;
    throw new OperationError('tag not found');
  }), { message: 'tag not found' });
  t.equal(tries, 1);
});

t.test('resumeDelay: backoff without jitter, up to the maximum; `attempts` resumes, then one line', async (t) => {
  t.same([0, 1, 2].map((n) => resumeDelay(scope, reset(), 'download of blob b', n)), [5, 10, 12]);
  t.throws(() => resumeDelay(scope, reset(), 'download of blob b', 3),
    { message: 'registry reg.example: download of blob b failed after 4 tries: socket hang up' });
  t.throws(() => resumeDelay(scope, new Error('digest mismatch'), 'download of blob b', 0),
    { message: 'registry reg.example: download of blob b failed: digest mismatch' }, 'not transient: no resume');
});
