import t from 'tap';
import { exitCodeOf, OperationError, UsageError } from '../src/errors.js';

t.test('exit codes of the error kinds', async (t) => {
  t.equal(exitCodeOf(new UsageError('x')), 2);
  t.equal(exitCodeOf(new OperationError('x')), 1);
  t.equal(exitCodeOf(new Error('x')), 1);
});
