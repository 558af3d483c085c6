// `tunepipe run --target cluster` against a real kube-apiserver (with etcd, the Job controller,
// the scheduler, Kueue and kwok's fake GPU nodes), as the runner's own ServiceAccount: the real
// authorizer, Pod Security admission and server-side apply decide, not a double.
//
// Pods are kwok's: nothing runs and no file is ever written to the artifacts volume. So the only
// cache a run can hit here is a complete Job of the same hash; the marker check (for Jobs deleted
// after they finished) finds no marker and the stages run again (see faults.test.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { startCluster, type AuditEvent, type LocalCluster, type TunepipeNamespace } from '../support/cluster.ts';
import { cli, repoRoot } from './cli.ts';

let cluster: LocalCluster;

before(async () => {
  cluster = await startCluster({
    // Enough GPUs that a serving Deployment keeping one does not block later Jobs.
    gpuNodes: [
      { type: 'l4', count: 2, gpus: 4 },
      { type: 't4', count: 1, gpus: 4 },
      { type: 'a100-80gb', count: 1, gpus: 4 },
    ],
    cpuNodes: 2,
    podRunMs: 500,
  });
});

after(async () => {
  await cluster?.stop();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PIPELINES = ['llama3-fintech', 'qwen-support'] as const;
const namespaces = new Map<string, TunepipeNamespace>();

const jobCreates = (events: readonly AuditEvent[], namespace: string) =>
  events.filter(
    (e) =>
      e.objectRef?.resource === 'jobs' &&
      !e.objectRef.subresource &&
      e.objectRef.namespace === namespace &&
      e.stage === 'ResponseComplete' &&
      (e.verb === 'create' || e.verb === 'patch') &&
      e.responseStatus?.code === 201,
  );

for (const name of PIPELINES) {
  test(`${name}: every object applied by server-side apply and admitted, stages in graph order, a second run creates no Job`, async () => {
    const ns = await cluster.createTunepipeNamespace(`run-${name}`);
    namespaces.set(name, ns);
    const args = ['run', name, '--target', 'cluster', '--namespace', ns.namespace, '--queue', ns.queue];
    const first = await cli(args, ns.kubeconfig);
    assert.equal(first.status, 0, first.output);
    assert.match(first.output, new RegExp(`${name} finished in .*: \\d+ run, 0 cached`));

    const { compiled } = await synthPipeline(repoRoot, name, { namespace: ns.namespace, queueName: ns.queue });
    // Every emitted object exists on the server, last written by field manager `tunepipe` through
    // server-side apply (operation Apply), as the runner's ServiceAccount.
    for (const object of compiled.objects as unknown as Json[]) {
      const live = await cluster.api.get(object['apiVersion'], object['kind'], object['metadata'].name, ns.namespace);
      assert.ok(live, `${object['kind']}/${object['metadata'].name} exists`);
      const managers = (live.metadata.managedFields ?? []) as Json[];
      assert.ok(
        managers.some((m) => m['manager'] === 'tunepipe' && m['operation'] === 'Apply'),
        `${object['kind']}/${object['metadata'].name} applied by tunepipe (managers: ${managers.map((m) => `${m['manager']}/${m['operation']}`).join(', ')})`,
      );
    }
    // Every Job completed; GPU Jobs went through Kueue (a Workload admitted for each).
    // `tunepipe run` does not wait for serve's post-deploy check Job (it reports serve done once the
    // Deployment is ready), so that one Job may still be running here: give it time to finish.
    const complete = (j: Json) => j['status']?.conditions?.some((c: Json) => c['type'] === 'Complete' && c['status'] === 'True') === true;
    let jobs = await cluster.api.list('batch/v1', 'Job', ns.namespace);
    for (let waited = 0; waited < 120_000 && !jobs.every((j) => complete(j as unknown as Json)); waited += 2_000) {
      await new Promise((r) => setTimeout(r, 2_000));
      jobs = await cluster.api.list('batch/v1', 'Job', ns.namespace);
    }
    const stageJobs = jobs.filter((j) => j.metadata.labels?.['tunepipe.dev/stage']);
    // One per Job stage, plus the serve stage's post-deploy check Job.
    assert.equal(stageJobs.length, (compiled.objects as unknown as Json[]).filter((o) => o['kind'] === 'Job').length);
    for (const job of stageJobs) {
      assert.ok(job.status?.conditions?.some((c: Json) => c['type'] === 'Complete' && c['status'] === 'True'), `${job.metadata.name} complete`);
    }
    const workloads = await cluster.api.list('kueue.x-k8s.io/v1beta2', 'Workload', ns.namespace);
    const queued = stageJobs.filter((j) => j.metadata.labels?.['kueue.x-k8s.io/queue-name'] === ns.queue);
    assert.ok(queued.length > 0, 'GPU Jobs carry the LocalQueue label');
    for (const job of queued) {
      const wl = workloads.find((w) => w.metadata.ownerReferences?.some((o: Json) => o['name'] === job.metadata.name));
      assert.ok(wl?.status?.conditions?.some((c: Json) => c['type'] === 'Admitted' && c['status'] === 'True'), `Workload of ${job.metadata.name} admitted by Kueue`);
    }

    // Graph order, from the audit log's microsecond timestamps: a stage's Job is created only
    // after every Job it depends on has completed.
    const creates = jobCreates(cluster.auditEvents(), ns.namespace);
    const createdAt = new Map(creates.map((e) => [e.objectRef!.name!, Date.parse(e.stageTimestamp)]));
    for (const stage of compiled.stages.filter((s) => s.workload.kind === 'Job')) {
      const created = createdAt.get(stage.workload.name);
      assert.ok(created, `Job ${stage.workload.name} created`);
      for (const dep of stage.dependsOn) {
        const upstream = compiled.stages.find((s) => s.name === dep)!;
        if (upstream.workload.kind !== 'Job') continue;
        const job = stageJobs.find((j) => j.metadata.name === upstream.workload.name)!;
        const completed = Date.parse(job.status.completionTime);
        // completionTime has second precision: compare against the end of that second.
        assert.ok(createdAt.get(upstream.workload.name)! < created!, `${dep} created before ${stage.name}`);
        assert.ok(completed <= created! + 999, `${dep} completed (${job.status.completionTime}) before ${stage.name} was created (${new Date(created!).toISOString()})`);
      }
    }

    // A second run: everything cached by its complete Job, no Job created.
    const before = creates.length;
    const second = await cli(args, ns.kubeconfig);
    assert.equal(second.status, 0, second.output);
    assert.match(second.output, /0 run, \d+ cached/);
    assert.equal(jobCreates(cluster.auditEvents(), ns.namespace).length, before, 'no Job created by the second run');
  });
}

test('every secretKeyRef of both pipelines names a key of a Secret the cluster stack created', async () => {
  let checked = 0;
  for (const name of PIPELINES) {
    const ns = namespaces.get(name);
    assert.ok(ns, `${name} ran first`);
    const { compiled } = await synthPipeline(repoRoot, name, { namespace: ns.namespace, queueName: ns.queue });
    const refs = JSON.stringify(compiled.objects).match(/"secretKeyRef":\{[^}]*\}/g) ?? [];
    checked += refs.length;
    for (const ref of refs) {
      const { name: secret, key, optional } = JSON.parse(ref.slice('"secretKeyRef":'.length)) as { name: string; key: string; optional?: boolean };
      const live = await cluster.api.get('v1', 'Secret', secret, ns.namespace);
      if (optional && !live) continue;
      assert.ok(live, `${name}: Secret ${secret} exists in the namespace infra/cluster makes`);
      assert.ok(Object.hasOwn(live.data ?? {}, key), `${name}: Secret ${secret} has key ${key}`);
    }
  }
  assert.ok(checked > 0, 'the pipelines reference Secrets');
});

test('every pod created (helper Jobs included) passed Pod Security restricted admission', async () => {
  const events = cluster.auditEvents();
  const podCreates = events.filter((e) => e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.verb === 'create' && e.stage === 'ResponseComplete');
  const ours = podCreates.filter((e) => [...namespaces.values()].some((ns) => ns.namespace === e.objectRef?.namespace));
  assert.ok(ours.length >= 10, `pods were created (${ours.length})`);
  const rejected = ours.filter((e) => e.responseStatus?.code !== 201);
  assert.deepEqual(
    rejected.map((e) => `${e.objectRef?.name ?? '(generated)'}: ${e.responseStatus?.code} ${e.responseStatus?.message ?? ''}`),
    [],
    'no pod rejected by admission',
  );
  for (const e of ours) {
    assert.equal(e.annotations?.['pod-security.kubernetes.io/enforce-policy'], 'restricted:latest', `${e.objectRef?.name}: admitted under restricted`);
    assert.equal(e.annotations?.['pod-security.kubernetes.io/audit-violations'], undefined, `${e.objectRef?.name}: no restricted violation`);
  }
  // And the list, for the record (shown with --test-reporter=spec).
  const pods = (await Promise.all([...namespaces.values()].map((ns) => cluster.api.list('v1', 'Pod', ns.namespace)))).flat();
  const byOwner = new Map<string, number>();
  for (const pod of pods) {
    const owner = pod.metadata.ownerReferences?.[0];
    const key = owner ? `${owner.kind}/${owner.name}` : 'none';
    byOwner.set(key, (byOwner.get(key) ?? 0) + 1);
  }
  process.stdout.write(`# pods admitted under restricted: ${ours.length} (by owner: ${[...byOwner].map(([k, n]) => `${k}×${n}`).join(', ')})\n`);
});
