// docs/reporting.md: the <ns>/<name> Events carry — flags/env first, then the pod's namespace, then moduleName.
import t from 'tap';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identityString, moduleIdentity } from '../../src/config/identity.js';

t.test('module identity defaults', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sa-'));
  const saFile = join(dir, 'namespace');
  await writeFile(saFile, 'kmm-operator-system\n');
  const missing = join(dir, 'none');
  t.equal(identityString(await moduleIdentity({ moduleNamespace: 'gpu', moduleName: 'amdgpu' }, 'kmm_ci_a', { POD_NAMESPACE: 'x' }, saFile)), 'gpu/amdgpu', 'flags win');
  t.equal(identityString(await moduleIdentity({}, 'kmm_ci_a', { POD_NAMESPACE: 'kmm-ops' }, saFile)), 'kmm-ops/kmm_ci_a', 'POD_NAMESPACE, then moduleName');
  t.equal(identityString(await moduleIdentity({}, 'kmm_ci_a', {}, saFile)), 'kmm-operator-system/kmm_ci_a', 'the service-account namespace file');
  t.equal(identityString(await moduleIdentity({}, 'kmm_ci_a', {}, missing)), 'default/kmm_ci_a', 'default when nothing says');
});
