// src/errors.ts: stable codes, and context added without losing the kind of failure (its exit code) or its cause.
import t from 'tap';
import {
  ErrorCodes, InterruptedError, OperationError, UsageError, errorMessage, exitCodeOf, isLocated, withContext,
} from '../src/errors.js';
import { DigestMismatchError } from '../src/image/verify.js';

t.test('every kind of failure has a stable code', async (t) => {
  t.equal(new UsageError('x').code, ErrorCodes.usage);
  t.equal(new OperationError('x').code, ErrorCodes.operation);
  t.equal(new InterruptedError('SIGTERM').code, ErrorCodes.interrupted);
  t.equal(new OperationError('x', { code: 'KMM_SOMETHING' }).code, 'KMM_SOMETHING');
  t.equal(new DigestMismatchError('blob sha256:aa: content does not match').code, 'KMM_DIGEST_MISMATCH');
});

t.test('withContext puts the context first and keeps kind, code, detail and cause', async (t) => {
  const usage = new UsageError('bad flag', { detail: 'see --help' });
  const u = withContext(usage, '--platform');
  t.type(u, UsageError);
  t.equal(u.message, '--platform: bad flag');
  t.equal(exitCodeOf(u), 2);
  t.equal((u as UsageError).detail, 'see --help');
  t.equal(u.cause, usage);

  const digest = new DigestMismatchError('blob sha256:aa: content does not match its digest');
  const d = withContext(digest, 'image r/x:1');
  t.type(d, DigestMismatchError, 'a subclass stays itself');
  t.equal((d as OperationError).code, 'KMM_DIGEST_MISMATCH');
  t.equal(exitCodeOf(d), 1);

  const foreign = withContext(new RangeError('out of range'), 'layer 1/2');
  t.type(foreign, OperationError);
  t.equal(foreign.message, 'layer 1/2: out of range');

  const stop = new InterruptedError('SIGINT');
  t.equal(withContext(stop, 'anything'), stop, 'an interruption is never reworded');
});

t.test('errorMessage of anything thrown', async (t) => {
  t.equal(errorMessage(new Error('boom')), 'boom');
  t.equal(errorMessage('text'), 'text');
  t.equal(errorMessage(42), '42');
});

t.test('located: whether a message already names its image or registry is a property, kept through withContext', async (t) => {
  t.equal(new OperationError('layer sha256:aa: bad tar').located, false);
  const named = new OperationError('registry r.example: pull access denied', { located: true });
  t.equal(named.located, true);
  t.equal(isLocated(withContext(named, 'while pulling')), true, 'context in front keeps it');
  const layer = withContext(new OperationError('bad tar'), 'image r/x:1: layer sha256:aa', { located: true });
  t.equal(isLocated(layer), true, 'context that names the image sets it');
  t.equal(isLocated(withContext(new Error('EIO'), 'layer sha256:aa')), false, 'other context does not');
  t.equal(isLocated(new Error('image x: looks named but is not marked')), false, 'never read from the words');
});
