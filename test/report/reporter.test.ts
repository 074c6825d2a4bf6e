import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../src/log.js';
import { kubeClients, loadKubeConfig } from '../../src/report/kube.js';
import { createKubeReporter, forgetNodeUids, type KubeReporterOptions } from '../../src/report/kube-reporter.js';
import { createReporter } from '../../src/report/create.js';
import type { GlobalOptions } from '../../src/context.js';
import { FakeApiServer, forbiddenMessage } from '../helpers/fake-apiserver.js';

const run = promisify(execFile);
const TOKEN = 'sa-token-7c1e-do-not-log';
const NODE = 'worker-1';
const MODULE = { namespace: 'kmm-ops', name: 'kmm_ci_a' };

async function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = await createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { log, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

async function setup(t: Test, opts: { tls?: boolean } = {}) {
  forgetNodeUids();
  const api = await FakeApiServer.start({ token: TOKEN, ...(opts.tls ? { tls: true } : {}) });
  t.teardown(() => api.close());
  const node = api.seed({ resource: 'nodes' }, { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } }, spec: {}, status: {} });
  const dir = await mkdtemp(join(tmpdir(), 'report-'));
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  const clients = kubeClients(loadKubeConfig({ env: { KUBECONFIG: kubeconfig } })!);
  const cap = await capture();
  const reporter = (o: Partial<KubeReporterOptions> = {}) =>
    createKubeReporter({ clients, nodeName: NODE, module: MODULE, log: cap.log, budgetMs: 3000, requestTimeoutMs: 1000, backoffMs: 50, ...o });
  return { api, node, kubeconfig, reporter, ...cap };
}

t.test('ModuleLoaded, ModuleUnloaded and ModuleLoadFailed become Events on the Node with the fields of §8', async (t) => {
  const { api, node, reporter, text } = await setup(t);
  const r = reporter();
  await r.report({ reason: 'ModuleLoaded', type: 'Normal', message: 'Module kmm-ops/kmm_ci_a loaded into the kernel' });
  await r.report({ reason: 'ModuleUnloaded', type: 'Normal', message: 'Module kmm-ops/kmm_ci_a unloaded from the kernel' });
  await r.report({ reason: 'ModuleLoadFailed', type: 'Warning', message: 'modprobe kmm_ci_a failed: Invalid argument' });
  const events = api.objects('events');
  t.equal(events.length, 3);
  t.equal(api.objects('events', { namespace: 'default' }).length, 3, 'all in namespace default');
  const byReason = Object.fromEntries(events.map((e) => [e.reason, e]));
  for (const e of events) {
    t.same(e.involvedObject, { apiVersion: 'v1', kind: 'Node', name: NODE, uid: node.metadata.uid }, 'on the Node, with its uid');
    t.same(e.source, { component: 'kmm-worker', host: NODE });
    t.equal(e.reportingComponent, 'kmm-worker');
    t.equal(e.reportingInstance, NODE);
    t.same(e.metadata.annotations, { module: 'kmm-ops/kmm_ci_a' });
    t.equal(e.count, 1);
    t.ok(e.firstTimestamp && e.lastTimestamp);
  }
  t.match(byReason.ModuleLoaded, { type: 'Normal', message: 'Module kmm-ops/kmm_ci_a loaded into the kernel' });
  t.match(byReason.ModuleUnloaded, { type: 'Normal', message: 'Module kmm-ops/kmm_ci_a unloaded from the kernel' });
  t.match(byReason.ModuleLoadFailed, { type: 'Warning', message: 'modprobe kmm_ci_a failed: Invalid argument' });
  t.equal(api.requests.filter((q) => q.path === `/api/v1/nodes/${NODE}`).length, 1, "the Node's uid is fetched once");
  t.notMatch(text(), TOKEN, 'the token never reaches a log line');
});

t.test('an identical repeat updates count and lastTimestamp on the same object', async (t) => {
  const { api, reporter } = await setup(t);
  const t1 = new Date('2026-11-21T05:00:00Z');
  const t2 = new Date('2026-11-21T05:07:00Z');
  const ev = { reason: 'ModuleLoaded', type: 'Normal', message: 'Module kmm-ops/kmm_ci_a loaded into the kernel' } as const;
  await reporter({ now: () => t1 }).report(ev);
  forgetNodeUids(); // a second process
  await reporter({ now: () => t2 }).report(ev);
  const events = api.objects('events');
  t.equal(events.length, 1, 'one object');
  t.equal(events[0]!.count, 2);
  t.equal(Date.parse(events[0]!.firstTimestamp), t1.getTime());
  t.equal(Date.parse(events[0]!.lastTimestamp), t2.getTime());
  const patches = api.requests.filter((q) => q.method === 'PATCH');
  t.same(patches.map((p) => p.contentType), ['application/merge-patch+json', 'application/json-patch+json'], 'read via no-op merge patch, then a tested JSON patch');
  await reporter({ now: () => t2 }).report({ ...ev, message: 'something else' });
  t.equal(api.objects('events').length, 2, 'a different message is a different event');
});

t.test('kubectl describe node and kubectl get events show what the agent reported', async (t) => {
  const { api, kubeconfig, reporter } = await setup(t, { tls: true });
  const r = reporter();
  await r.report({ reason: 'ModuleLoaded', type: 'Normal', message: 'Module kmm-ops/kmm_ci_a loaded into the kernel' });
  await r.report({ reason: 'ModuleLoaded', type: 'Normal', message: 'Module kmm-ops/kmm_ci_a loaded into the kernel' });
  await r.report({ reason: 'ModuleUnloadFailed', type: 'Warning', message: 'module kmm_ci_a is in use by: kmm_ci_b' });
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const describe = await run('kubectl', ['describe', 'node', NODE], { env });
  const eventsSection = describe.stdout.slice(describe.stdout.indexOf('Events:'));
  t.match(eventsSection, /Normal\s+ModuleLoaded\s+\S+ \(x2 over \S+\)\s+kmm-worker\s+Module kmm-ops\/kmm_ci_a loaded into the kernel/);
  t.match(eventsSection, /Warning\s+ModuleUnloadFailed\s+\S+\s+kmm-worker\s+module kmm_ci_a is in use by: kmm_ci_b/);
  const list = await run('kubectl', ['get', 'events', '--field-selector', `involvedObject.name=${NODE}`], { env });
  t.match(list.stdout, /LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE/);
  t.match(list.stdout, new RegExp(`Normal\\s+ModuleLoaded\\s+node/${NODE}\\s+Module kmm-ops/kmm_ci_a loaded into the kernel`));
  t.match(list.stdout, new RegExp(`Warning\\s+ModuleUnloadFailed\\s+node/${NODE}`));
  t.equal(list.stdout.trim().split('\n').length, 3, 'header + two events (the repeat is one object)');
  const other = await run('kubectl', ['get', 'events', '--field-selector', 'involvedObject.name=someone-else'], { env });
  t.notMatch(other.stdout, /ModuleLoaded/);
  t.ok(api.requests.some((q) => q.path === '/api/v1/events' && /involvedObject\.uid=/.test(q.query.get('fieldSelector') ?? '')), 'kubectl searched by uid');
});

t.test('API down or hanging: report() resolves within its budget and logs a warning', async (t) => {
  forgetNodeUids();
  const { log, lines } = await capture();
  // build a kubeconfig for a port nobody listens on
  const dir = await mkdtemp(join(tmpdir(), 'report-'));
  const api = await FakeApiServer.start();
  const kc = await api.writeKubeconfig(join(dir, 'kc'));
  await api.close();
  const down = kubeClients(loadKubeConfig({ env: { KUBECONFIG: kc } })!);
  const r = createKubeReporter({ clients: down, nodeName: NODE, module: MODULE, log, budgetMs: 1500, requestTimeoutMs: 500, backoffMs: 50 });
  const t0 = Date.now();
  await r.report({ reason: 'ModuleLoaded', type: 'Normal', message: 'm' });
  t.ok(Date.now() - t0 < 4000, `resolved in ${Date.now() - t0} ms`);
  t.ok(lines.some((l) => l.level === 40 && /could not report ModuleLoaded on Node worker-1: create Event .*ECONNREFUSED/.test(String(l.msg))), 'warning names the cause');

  // a server that accepts and never answers
  const { api: hang, reporter } = await setup(t);
  hang.fail({ status: 'stall' });
  forgetNodeUids();
  const t1 = Date.now();
  await reporter({ budgetMs: 1200, requestTimeoutMs: 400 }).report({ reason: 'ModuleLoaded', type: 'Normal', message: 'm' });
  t.ok(Date.now() - t1 < 4000, `hanging API: resolved in ${Date.now() - t1} ms`);
});

t.test('transient 500/503 are retried; the event still lands', async (t) => {
  const { api, reporter } = await setup(t);
  api.fail({ method: 'POST', path: '/api/v1/namespaces/default/events', status: 503, times: 2 });
  await reporter().report({ reason: 'ModuleLoaded', type: 'Normal', message: 'm' });
  t.equal(api.objects('events').length, 1);
  t.equal(api.requests.filter((q) => q.method === 'POST').length, 3);
});

t.test('403 (RBAC missing) → a warning naming the missing permission, no retries', async (t) => {
  const { api, reporter, lines } = await setup(t);
  api.fail({ method: 'POST', path: '/api/v1/namespaces/default/events', status: 403, message: forbiddenMessage('create', 'events', { namespace: 'default' }) });
  await reporter().report({ reason: 'ModuleLoaded', type: 'Normal', message: 'm' });
  t.equal(api.requests.filter((q) => q.method === 'POST').length, 1, 'not retried');
  const warn = lines.find((l) => l.level === 40);
  t.match(String(warn?.msg), /could not report ModuleLoaded on Node worker-1: permission denied: not allowed to "create" events in namespace "default"/);
  t.same(warn?.missingPermission, { verb: 'create', resource: 'events', namespace: 'default' });

  // get nodes forbidden: the event is still written, with the node name as uid (as kubelet does)
  forgetNodeUids();
  api.clearFaults();
  api.fail({ method: 'GET', path: `/api/v1/nodes/${NODE}`, status: 403, message: forbiddenMessage('get', 'nodes', { name: NODE }) });
  await reporter().report({ reason: 'ModuleUnloaded', type: 'Normal', message: 'u' });
  t.ok(lines.some((l) => /not allowed to "get" nodes/.test(String(l.msg))), 'names get nodes');
  const ev = api.objects('events').find((e) => e.reason === 'ModuleUnloaded');
  t.equal(ev?.involvedObject.uid, NODE);
});

t.test('createReporter: --report off, no node name and --dry-run report nothing; otherwise Events', async (t) => {
  const { api, kubeconfig } = await setup(t);
  const { log } = await capture();
  const opts = (o: Partial<GlobalOptions>) => ({ report: 'auto', nodeName: NODE, dryRun: false, ...o }) as GlobalOptions;
  const ev = { reason: 'ModuleLoaded', type: 'Normal', message: 'x' } as const;
  const env = { KUBECONFIG: kubeconfig };
  await (await createReporter({ opts: opts({ report: 'off' }), log }, MODULE, { env })).report(ev);
  await (await createReporter({ opts: opts({ nodeName: undefined }), log }, MODULE, { env })).report(ev);
  await (await createReporter({ opts: opts({ dryRun: true }), log }, MODULE, { env })).report(ev);
  await (await createReporter({ opts: opts({}), log }, MODULE, { env: {} })).report(ev);
  t.equal(api.requests.length, 0, 'nothing sent');
  await (await createReporter({ opts: opts({}), log }, MODULE, { env })).report(ev);
  t.equal(api.objects('events').length, 1);
});
