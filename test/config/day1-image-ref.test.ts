import t from 'tap';
import { OperationError, UsageError } from '../../src/errors.js';
import { checkImageRepository, day1ImageReference } from '../../src/config/day1-image-ref.js';
import { day1Settings, type Day1Flags } from '../../src/day1/settings.js';

t.test('repositories: registry (with port) and oci: layouts, never a tag or digest', async (t) => {
  t.equal(checkImageRepository('quay.io/org/kmod'), 'quay.io/org/kmod');
  t.equal(checkImageRepository('127.0.0.1:5000/org/kmod'), '127.0.0.1:5000/org/kmod', 'a port is not a tag');
  t.equal(checkImageRepository('oci:/var/lib/layouts/kmod'), 'oci:/var/lib/layouts/kmod');
  for (const bad of ['quay.io/org/kmod:6.1', 'kmod:latest', 'oci:/layouts/kmod:6.1', `quay.io/org/kmod@sha256:${'0'.repeat(64)}`, '', ' ', 'quay.io/Org/kmod', 'quay.io/org/kmod/']) {
    t.throws(() => checkImageRepository(bad), UsageError, `'${bad}' rejected`);
  }
});

t.test('the tag is the running kernel release; one a tag cannot hold is an operation failure', async (t) => {
  t.equal(day1ImageReference('quay.io/org/kmod', '5.14.0-284.11.1.el9_2.x86_64'), 'quay.io/org/kmod:5.14.0-284.11.1.el9_2.x86_64');
  t.equal(day1ImageReference('127.0.0.1:5000/kmod', '6.1.0-27-amd64'), '127.0.0.1:5000/kmod:6.1.0-27-amd64');
  const err = (() => {
    try {
      day1ImageReference('quay.io/org/kmod', '6.1.58+');
    } catch (e) {
      return e;
    }
  })();
  t.type(err, OperationError);
  t.match((err as Error).message, "'6.1.58+' cannot be an image tag");
});

t.test('settings: empty values mean the defaults; bad values are usage errors', async (t) => {
  const s = day1Settings({ image: 'quay.io/org/kmod', module: 'ice', inTreeModules: [], dirName: '', firmwareDir: ' ', firmwarePath: '', rebootCommand: '' });
  t.same(s, {
    repo: 'quay.io/org/kmod',
    moduleName: 'ice',
    inTreeModules: [],
    dirName: '/opt',
    firmwareDir: undefined,
    hostFirmwarePath: undefined,
    rebootCommand: ['systemctl', 'reboot'],
    insecure: false,
  });
  const full = day1Settings({ image: 'quay.io/org/kmod', module: 'ice', inTreeModules: ['ice', 'irdma'], dirName: '/srv', firmwareDir: '/firmware', firmwarePath: '/lib/firmware/updates', rebootCommand: 'shutdown -r now', insecure: true });
  t.same(full.rebootCommand, ['shutdown', '-r', 'now']);
  t.equal(full.hostFirmwarePath, '/lib/firmware/updates');
  t.equal(full.firmwareDir, '/firmware');
  const bad: Array<[string, Day1Flags]> = [
    ['no module', { image: 'quay.io/org/kmod' }],
    ['firmware dir escaping the image', { image: 'quay.io/org/kmod', module: 'ice', firmwareDir: '/fw/../../etc' }],
    ['relative host firmware path', { image: 'quay.io/org/kmod', module: 'ice', firmwarePath: 'firmware' }],
    ['bad in-tree name', { image: 'quay.io/org/kmod', module: 'ice', inTreeModules: ['-r'] }],
  ];
  for (const [what, flags] of bad) {
    t.throws(() => day1Settings(flags), UsageError, what);
  }
});
