import t from 'tap';
import { absoluteHostPath } from '../../src/config/host-path.js';
import { UsageError } from '../../src/errors.js';

t.test('host path flags: absolute, trailing slashes dropped, the root kept, empty = not given', async (t) => {
  t.equal(absoluteHostPath('--firmware-path', '/var/lib/firmware/'), '/var/lib/firmware');
  t.equal(absoluteHostPath('--firmware-path', '/var/lib/firmware//'), '/var/lib/firmware');
  t.equal(absoluteHostPath('--firmware-path', '/'), '/');
  t.equal(absoluteHostPath('--firmware-path', '//'), '/');
  t.equal(absoluteHostPath('--firmware-path', ''), undefined);
  t.equal(absoluteHostPath('--firmware-path', undefined), undefined);
  t.throws(() => absoluteHostPath('--set-firmware-mount-path', 'lib/firmware'),
    new UsageError("--set-firmware-mount-path must be an absolute host path, got 'lib/firmware'"));
});
