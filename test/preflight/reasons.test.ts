import t from 'tap';
import { classifyImageError, failureReason, ModuleCheckFailure } from '../../src/preflight/validate-module.js';
import { TaskTimeoutError } from '../../src/preflight/pool.js';
import { ErrorCodes, OperationError } from '../../src/errors.js';
import type { ResolvedModule } from '../../src/preflight/kernel-mapping.js';

const base: ResolvedModule = {
  name: 'm', namespace: 'ns', kernelVersion: '6.1.0-27-amd64', mapping: "kernelMappings[1] (regexp '^6')",
  containerImage: 'reg.example/org/kmod:6.1.0-27-amd64', moduleName: 'kmm_ci_a', dirName: '/opt',
  build: false, sign: false, insecure: false, imageRepoSecret: undefined,
};
const notFound = new OperationError("image reg.example/org/kmod:6.1.0-27-amd64: tag '6.1.0-27-amd64' not found on registry reg.example");
const noCreds = new OperationError('registry reg.example requires authentication for org/kmod and no credentials were found for it');

t.test('classification of the registry client\'s errors', async (t) => {
  t.equal(classifyImageError(notFound), 'not-found');
  t.equal(classifyImageError(new OperationError('image x: repository org/kmod not found on registry r')), 'not-found');
  t.equal(classifyImageError(noCreds), 'denied');
  t.equal(classifyImageError(new OperationError('registry r: authentication failed for org/kmod: the credentials from f were rejected')), 'denied');
  t.equal(classifyImageError(new OperationError('registry r: access to org/kmod denied (HTTP 403)')), 'denied');
  t.equal(classifyImageError(Object.assign(new Error('x'), { status: 404 })), 'not-found');
  t.equal(classifyImageError(new OperationError('registry r: ping /v2/: connect ECONNREFUSED 127.0.0.1:1')), 'other');
  // the registry client's own errors are told apart by their stable code, whatever their words
  t.equal(classifyImageError(new OperationError('no words to match', { code: ErrorCodes.imageNotFound })), 'not-found');
  t.equal(classifyImageError(new OperationError('no words to match', { code: ErrorCodes.registryDenied })), 'denied');
});

t.test('reasons a user reads', async (t) => {
  t.equal(failureReason(base, notFound, undefined, false),
    "image reg.example/org/kmod:6.1.0-27-amd64 not found: tag '6.1.0-27-amd64' not found on registry reg.example");
  t.equal(failureReason({ ...base, build: true }, notFound, undefined, false),
    "image reg.example/org/kmod:6.1.0-27-amd64 does not exist and kernelMappings[1] (regexp '^6') of the Module has build: an in-cluster build is required (KMM's own preflight can run it)");
  t.match(failureReason({ ...base, sign: true }, notFound, undefined, false), /has sign: an in-cluster sign is required/);
  t.match(failureReason({ ...base, build: true, sign: true }, notFound, undefined, false), /has build and sign: an in-cluster build and sign is required/);
  t.equal(failureReason(base, noCreds, undefined, false),
    'access to image reg.example/org/kmod:6.1.0-27-amd64 denied: registry reg.example requires authentication for org/kmod and no credentials were found for it; the Module has no imageRepoSecret');
  t.match(failureReason({ ...base, imageRepoSecret: 'pull' }, noCreds, undefined, false), /; imageRepoSecret pull is only read with --from-cluster \(use --auth-file or --pull-secrets-dir\)$/);
  t.match(failureReason({ ...base, imageRepoSecret: 'pull' }, noCreds, { description: 'imageRepoSecret ns/pull', release: async () => {} }, true), / \(used imageRepoSecret ns\/pull\)$/);
  t.equal(failureReason(base, new TaskTimeoutError(60), undefined, false), 'timed out after 60s checking image reg.example/org/kmod:6.1.0-27-amd64');
  t.equal(failureReason(base, new ModuleCheckFailure('imageRepoSecret ns/x not found'), undefined, true), 'imageRepoSecret ns/x not found');
  t.equal(failureReason(base, new OperationError('registry reg.example: ping /v2/: ECONNREFUSED'), undefined, false),
    'image reg.example/org/kmod:6.1.0-27-amd64: registry reg.example: ping /v2/: ECONNREFUSED');
});
