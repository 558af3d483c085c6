// A multi-node training gang (issue 20), and the 70B example as the planner lays it out, on the
// local control plane: kube-apiserver, the Job controller, the scheduler, kwok H100 nodes with 8
// GPUs each and the real Kueue. Kueue admits the 2×8 gang as one Workload or not at all, holds it
// back whole when the quota is short, and on a preemption takes every rank away and brings every
// rank back together. A gang admitted on quota whose second rank cannot be scheduled is evicted by
// Kueue's waitForPodsReady (shortened to seconds here) with its running rank, so the GPUs come
// back, and starts whole once it fits. The gang's objects also pass the server-side dry-run and
// Pod Security admission of the restricted namespace.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { loadKubeConfig } from '../../../packages/runner/src/cluster/kube.ts';
import { clusterStatus } from '../../../packages/runner/src/cluster/inspect.ts';
import { GANG } from '../../../packages/runner/test/scenarios/cluster-scenarios.ts';
import { startCluster, urgentJob, type AuditEvent, type LocalCluster } from '../support/cluster.ts';
import { tools } from '../support/tools.ts';
import { gangPipeline, stageObjects, type GangPipeline } from './gang-support.ts';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { repoRoot } from '../support/python.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const KUEUE = 'kueue.x-k8s.io/v1beta2';
const GANG_GPUS = GANG.nodes * GANG.gpusPerNode;
/**
 * infra/cluster's waitForPodsReady, in seconds: long enough that a gang whose ranks can all run
 * is Ready well within it on a loaded machine (about 1 s unloaded), and a re-queue delay long
 * enough to see the evicted gang hold no quota before Kueue admits it again.
 */
const PODS_READY = { timeout: '10s', recoveryTimeout: '10s', backoffBaseSeconds: 5, backoffMaxSeconds: 10 };
let cluster: LocalCluster;
const timings: string[] = [];

const readYaml = (file: string): Json[] =>
  parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Json)
    .filter((d) => d && typeof d === 'object');

before(async () => {
  // p5.48xlarge-sized nodes: the compiled ranks ask for 32 CPUs and 70 GiB each.
  cluster = await startCluster({ gpuNodes: [{ type: GANG.gpuType, count: GANG.nodes, gpus: GANG.gpusPerNode, cpu: '192', memory: '2Ti' }], cpuNodes: 1, podRunMs: 500, podsReady: PODS_READY });
  timings.push(`control plane ${cluster.startSeconds.toFixed(1)}s`);
});

after(async () => {
  process.stdout.write(`# gang timings: ${timings.join(', ')}\n`);
  await cluster?.stop();
});

async function timed<T>(name: string, body: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await body();
  } finally {
    timings.push(`${name} ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
}

/** A namespace as infra/cluster makes it, with `quota` H100 GPUs, and the gang compiled for it. */
async function gangIn(name: string, quota: number): Promise<{ namespace: string; gang: GangPipeline; kubeconfig: string }> {
  const ns = await cluster.createTunepipeNamespace(name, { gpuQuota: { [GANG.gpuType]: quota }, gpuTypes: [GANG.gpuType] });
  const gang = await gangPipeline(ns.namespace, ns.queue);
  return { namespace: ns.namespace, gang, kubeconfig: ns.kubeconfig };
}

const stageLabel = (gang: GangPipeline) => `tunepipe.dev/stage=${gang.stage.name}`;
const gangPods = async (namespace: string, gang: GangPipeline) =>
  (await cluster.api.list('v1', 'Pod', namespace, `job-name=${gang.job['metadata'].name}`)).filter((p: Json) => !p['metadata'].deletionTimestamp);
const workloadOf = async (namespace: string, job: Json): Promise<Json | undefined> =>
  (await cluster.api.list(KUEUE, 'Workload', namespace, `kueue.x-k8s.io/job-uid=${job['metadata'].uid}`))[0];
const hasCondition = (o: Json | undefined, type: string, status = 'True') => (o?.['status']?.conditions ?? []).some((c: Json) => c['type'] === type && c['status'] === status);
const conditionOf = (o: Json | undefined, type: string): Json | undefined => (o?.['status']?.conditions ?? []).find((c: Json) => c['type'] === type);

/**
 * The audit log's pod creations by the Job controller in a namespace, in order (a Job's pods have
 * generated names, which a create's audit event does not carry).
 */
const podCreates = (namespace: string): AuditEvent[] =>
  cluster
    .auditEvents()
    .filter((e) => e.verb === 'create' && e.stage === 'ResponseComplete' && e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.objectRef.namespace === namespace)
    .filter((e) => e.responseStatus?.code === 201 && /job-controller/.test(e.userAgent ?? ''));

/** Creation times (ms) of pods created within 1 s of each other: one gang, made at once. */
function assertCreatedTogether(creates: readonly AuditEvent[], what: string): void {
  assert.equal(creates.length, GANG.nodes, `${what}: ${creates.map((e) => e.objectRef?.name).join(', ')}`);
  const times = creates.map((e) => Date.parse(e.stageTimestamp));
  assert.ok(Math.max(...times) - Math.min(...times) < 1000, `${what}: ranks created ${Math.max(...times) - Math.min(...times)} ms apart`);
}

async function applyGang(namespace: string, gang: GangPipeline): Promise<Json> {
  for (const object of stageObjects(gang.stage, namespace)) await cluster.api.apply(object, { fieldManager: 'tunepipe', force: true });
  return (await cluster.api.get('batch/v1', 'Job', gang.job['metadata'].name, namespace))!;
}

test('a 2×8 gang is admitted at once: one Workload with one pod set of 2, both ranks created together after admission', async () => {
  await timed('admitted whole', async () => {
    const { namespace, gang } = await gangIn('gang-admit', GANG_GPUS);
    process.stdout.write(`# gang from ${gang.source}\n`);
    await cluster.setPodOutcomes({ [`${namespace}/${gang.stage.name}`]: { outcome: 'hold' } });
    const job = await applyGang(namespace, gang);
    assert.equal(job['spec'].completionMode, 'Indexed');
    assert.equal(job['spec'].parallelism, GANG.nodes);
    const pods = await cluster.waitFor('both ranks running', async () => {
      const live = await gangPods(namespace, gang);
      return live.length === GANG.nodes && live.every((p: Json) => p['status']?.phase === 'Running') ? live : undefined;
    }, { timeoutMs: 60_000 });

    const workloads = await cluster.api.list(KUEUE, 'Workload', namespace);
    assert.equal(workloads.length, 1, 'the whole gang is one Workload');
    const workload = workloads[0];
    assert.deepEqual(workload['spec'].podSets.map((p: Json) => [p['name'], p['count']]), [['main', GANG.nodes]]);
    assert.ok(hasCondition(workload, 'Admitted'), JSON.stringify(workload['status']));
    const gpus = workload['status'].admission.podSetAssignments[0].resourceUsage['nvidia.com/gpu'];
    assert.equal(String(gpus), String(GANG_GPUS), 'quota reserved for every rank at once');

    const creates = podCreates(namespace);
    assertCreatedTogether(creates, 'first gang');
    // Admission (second resolution) came before the first rank was created.
    const admittedAt = Date.parse(conditionOf(workload, 'Admitted')!['lastTransitionTime']);
    assert.ok(Math.floor(Date.parse(creates[0]!.stageTimestamp) / 1000) * 1000 >= admittedAt, 'a rank created before Kueue admitted the gang');

    // Each rank: its index, stable hostname under the Service, the rendezvous on rank 0, 8 GPUs, a node of its own.
    const service = job['spec'].template.spec.subdomain;
    assert.ok(await cluster.api.get('v1', 'Service', service, namespace), `headless Service ${service}`);
    const byIndex = new Map(pods.map((p: Json) => [p['metadata'].labels['batch.kubernetes.io/job-completion-index'], p]));
    assert.deepEqual([...byIndex.keys()].sort(), ['0', '1']);
    for (const [index, pod] of byIndex) {
      assert.equal(pod['spec'].hostname, `${job['metadata'].name}-${index}`);
      assert.equal(pod['spec'].subdomain, service);
      const main = pod['spec'].containers.find((c: Json) => c['resources']?.limits?.['nvidia.com/gpu']);
      assert.equal(main['resources'].limits['nvidia.com/gpu'], String(GANG.gpusPerNode));
      const env = new Map(main['env'].map((e: Json) => [e['name'], e]));
      assert.equal((env.get('MASTER_ADDR') as Json)['value'], `${job['metadata'].name}-0.${service}.${namespace}.svc`);
      assert.match((env.get('MASTER_PORT') as Json)['value'], /^\d+$/);
      assert.match((env.get('NODE_RANK') as Json)['valueFrom'].fieldRef.fieldPath, /job-completion-index/);
    }
    assert.notEqual(byIndex.get('0')!['spec'].nodeName, byIndex.get('1')!['spec'].nodeName, 'one node per rank');

    await cluster.setPodOutcomes({});
    await cluster.waitFor('the gang Job complete', async () => hasCondition(await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace), 'Complete'), { timeoutMs: 60_000 });
    const done = await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace);
    assert.equal(done['status'].succeeded, GANG.nodes);
  });
});

test("pipelines/llama3-70b-lora exactly as compiled (the planner's 1 × 8, zero3) is admitted whole: one Workload, one pod with 8 GPUs", async () => {
  await timed('70B example as compiled', async () => {
    const ns = await cluster.createTunepipeNamespace('gang-example', { gpuQuota: { [GANG.gpuType]: GANG.gpusPerNode }, gpuTypes: [GANG.gpuType] });
    const { compiled } = await synthPipeline(repoRoot, 'llama3-70b-lora', { namespace: ns.namespace, queueName: ns.queue });
    const sft = compiled.stages.find((st) => st.kind === 'sft')!;
    assert.deepEqual(sft.layout, { nodes: 1, gpusPerNode: 8, strategy: 'zero3' }, "the planner's layout for the example");
    await cluster.setPodOutcomes({ [`${ns.namespace}/${sft.name}`]: { outcome: 'hold' } });
    for (const object of stageObjects(sft, ns.namespace)) await cluster.api.apply(object, { fieldManager: 'tunepipe', force: true });
    const pods = await cluster.waitFor('the 8-GPU rank running', async () => {
      const live = (await cluster.api.list('v1', 'Pod', ns.namespace, `job-name=${sft.resourceName}`)).filter((p: Json) => p['status']?.phase === 'Running');
      return live.length === 1 ? live : undefined;
    }, { timeoutMs: 60_000 });
    const workloads = await cluster.api.list(KUEUE, 'Workload', ns.namespace);
    assert.equal(workloads.length, 1);
    assert.deepEqual(workloads[0]['spec'].podSets.map((p: Json) => p['count']), [1]);
    assert.equal(String(workloads[0]['status'].admission.podSetAssignments[0].resourceUsage['nvidia.com/gpu']), '8');
    const main = pods[0]['spec'].containers.find((c: Json) => c['name'] === 'main');
    const env = new Map(main['env'].map((e: Json) => [e['name'], e['value']]));
    assert.deepEqual([env.get('FORCE_TORCHRUN'), env.get('NNODES'), env.get('NPROC_PER_NODE'), env.get('MASTER_ADDR')], ['1', '1', '8', '127.0.0.1']);
    await cluster.setPodOutcomes({});
    await cluster.waitFor('the example sft Job complete', async () => hasCondition(await cluster.api.get('batch/v1', 'Job', sft.resourceName, ns.namespace), 'Complete'), { timeoutMs: 60_000 });
  });
});

test('a gang short of quota (8 < 16 GPUs) is held back whole: Workload not admitted, Job suspended, no rank created; status says why', async () => {
  await timed('held back whole', async () => {
    const { namespace, gang, kubeconfig } = await gangIn('gang-short', GANG.gpusPerNode);
    const job = await applyGang(namespace, gang);
    const workload = await cluster.waitFor('the Workload refused quota', async () => {
      const w = await workloadOf(namespace, job);
      return hasCondition(w, 'QuotaReserved', 'False') ? w : undefined;
    }, { timeoutMs: 30_000 });
    assert.match(conditionOf(workload, 'QuotaReserved')!['message'], /insufficient quota for nvidia\.com\/gpu/);
    // Held back for a while, never half-started.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace);
      assert.equal(now['spec'].suspend, true);
      assert.ok(!hasCondition(await workloadOf(namespace, job), 'Admitted'));
      assert.deepEqual(await cluster.api.list('v1', 'Pod', namespace, stageLabel(gang)), []);
    }
    assert.deepEqual(podCreates(namespace), [], 'no rank was ever created');

    // What `tunepipe status` shows, with the runner's own token (its Role reads Workloads).
    const states = await clusterStatus(gang.pipeline, { kubeConfig: await loadKubeConfig({ kubeconfig }), namespace });
    const state = states.find((s) => s.stage === gang.stage.name)!;
    assert.equal(state.status, 'queued');
    assert.match(state.detail ?? '', /gang of 2 pods .*waiting for quota: .*insufficient quota/);
    assert.equal(state.gang?.admitted, false);
    await cluster.api.delete('batch/v1', 'Job', job['metadata'].name, namespace, { propagationPolicy: 'Background' });
  });
});

test('a preempted gang loses every rank at once and gets every rank back together when the quota frees', async () => {
  await timed('preempted whole', async () => {
    const { namespace, gang } = await gangIn('gang-preempt', GANG_GPUS);
    const key = `${namespace}/${gang.stage.name}`;
    await cluster.setPodOutcomes({ [key]: { outcome: 'hold' } });
    const job = await applyGang(namespace, gang);
    const first = await cluster.waitFor('both ranks running', async () => {
      const live = await gangPods(namespace, gang);
      return live.length === GANG.nodes && live.every((p: Json) => p['status']?.phase === 'Running') ? live : undefined;
    }, { timeoutMs: 60_000 });
    const firstNames = new Set(first.map((p: Json) => p['metadata'].name));

    // A workload of a higher priority wants half the gang's GPUs in the same ClusterQueue.
    const urgentAt = Date.now();
    await cluster.api.apply(urgentJob(namespace, 'urgent', { gpuType: GANG.gpuType, gpus: GANG.gpusPerNode }));
    const evicted = await cluster.waitFor('the gang evicted', async () => {
      const w = await workloadOf(namespace, job);
      return hasCondition(w, 'Evicted') ? w : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(conditionOf(evicted, 'Evicted')!['reason'], 'Preempted');
    await cluster.waitFor('every rank of the first gang gone, the Job suspended', async () => {
      const j = await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace);
      const left = (await cluster.api.list('v1', 'Pod', namespace, `job-name=${job['metadata'].name}`)).filter((p: Json) => firstNames.has(p['metadata'].name));
      return j['spec'].suspend === true && left.length === 0;
    }, { timeoutMs: 30_000 });

    // The urgent Job runs and ends; Kueue admits the gang again, whole.
    const second = await cluster.waitFor('both ranks back', async () => {
      const live = (await gangPods(namespace, gang)).filter((p: Json) => !firstNames.has(p['metadata'].name));
      return live.length === GANG.nodes && live.every((p: Json) => p['status']?.phase === 'Running') ? live : undefined;
    }, { timeoutMs: 60_000 });
    const urgent = await cluster.api.get('batch/v1', 'Job', 'urgent', namespace);
    assert.ok(hasCondition(urgent, 'Complete'), 'the gang came back only after the urgent workload ended');
    assert.deepEqual(second.map((p: Json) => p['metadata'].labels['batch.kubernetes.io/job-completion-index']).sort(), ['0', '1']);
    // In order: the first gang, the urgent Job's pod, the second gang.
    const creates = podCreates(namespace);
    const before = creates.filter((e) => Date.parse(e.stageTimestamp) < urgentAt);
    const later = creates.filter((e) => Date.parse(e.stageTimestamp) >= urgentAt);
    assertCreatedTogether(before, 'first gang');
    assert.equal(later.length, 1 + GANG.nodes, later.map((e) => e.stageTimestamp).join(', '));
    assertCreatedTogether(later.slice(1), 'second gang');
    const readmitted = await workloadOf(namespace, job);
    assert.ok(hasCondition(readmitted, 'Admitted'));

    await cluster.setPodOutcomes({});
    await cluster.waitFor('the gang Job complete', async () => hasCondition(await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace), 'Complete'), { timeoutMs: 60_000 });
    const done = await cluster.api.get('batch/v1', 'Job', job['metadata'].name, namespace);
    assert.equal(done['status'].failed ?? 0, 0, 'the preemption is no failure of the Job');
    assert.equal(done['status'].succeeded, GANG.nodes);
  });
});

test('a gang admitted on quota but with one rank unschedulable is evicted after the PodsReady timeout, its running rank too, and starts whole once both fit', async () => {
  await timed('pods-ready timeout', async () => {
    const { namespace, gang } = await gangIn('gang-ready', GANG_GPUS);
    const key = `${namespace}/${gang.stage.name}`;
    // One of the two 8-GPU nodes cordoned: the quota covers 16 GPUs, the nodes take one rank.
    const cordoned = `gpu-${GANG.gpuType}-1`;
    const cordon = (unschedulable: boolean) =>
      cluster.api.request('PATCH', `/api/v1/nodes/${cordoned}`, { body: { spec: { unschedulable } }, contentType: 'application/merge-patch+json' });
    await cordon(true);
    await cluster.setPodOutcomes({ [key]: { outcome: 'hold' } });
    const job = await applyGang(namespace, gang);
    const name = job['metadata'].name;

    const half = await cluster.waitFor('the gang admitted, one rank running, the other unschedulable', async () => {
      const live = await gangPods(namespace, gang);
      const running = live.filter((p: Json) => p['status']?.phase === 'Running');
      const stuck = live.filter((p: Json) => (conditionOf(p, 'PodScheduled')?.['reason'] ?? '') === 'Unschedulable');
      return live.length === GANG.nodes && running.length === 1 && stuck.length === 1 ? { running: running[0] as Json, stuck: stuck[0] as Json } : undefined;
    }, { timeoutMs: 30_000 });
    const admitted = await workloadOf(namespace, job);
    assert.ok(hasCondition(admitted, 'Admitted'), 'Kueue admitted the gang on quota');
    assert.equal(String(admitted!['status'].admission.podSetAssignments[0].resourceUsage['nvidia.com/gpu']), String(GANG_GPUS));
    const firstNames = new Set([half.running['metadata'].name, half.stuck['metadata'].name]);

    // Kueue evicts the Workload when the timeout passes, counted from admission.
    const evicted = await cluster.waitFor('the gang evicted for not being ready', async () => {
      const w = await workloadOf(namespace, job);
      return conditionOf(w, 'Evicted')?.['status'] === 'True' ? w : undefined;
    }, { timeoutMs: 60_000 });
    const evictedCondition = conditionOf(evicted, 'Evicted')!;
    assert.equal(evictedCondition['reason'], 'PodsReadyTimeout', JSON.stringify(evictedCondition));
    const heldSeconds = (Date.parse(evictedCondition['lastTransitionTime']) - Date.parse(conditionOf(admitted, 'Admitted')!['lastTransitionTime'])) / 1000;
    timings.push(`admitted→evicted ${heldSeconds.toFixed(0)}s`);
    assert.ok(heldSeconds >= 10 && heldSeconds < 30, `evicted ${heldSeconds} s after admission (timeout 10 s)`);
    process.stdout.write(`# Kueue: Evicted ${evictedCondition['reason']}: ${evictedCondition['message']}\n`);

    // The running rank goes too, the Job is suspended, and only then is the quota given back:
    // Kueue waits for the Job to have no active pod. The re-queue waits out its backoff (5 s).
    const released = await cluster.waitFor('every rank gone, the Job suspended, the quota released', async () => {
      const w = await workloadOf(namespace, job);
      const j = await cluster.api.get('batch/v1', 'Job', name, namespace);
      const left = (await cluster.api.list('v1', 'Pod', namespace, `job-name=${name}`)).filter((p: Json) => firstNames.has(p['metadata'].name));
      return j['spec'].suspend === true && left.length === 0 && hasCondition(w, 'QuotaReserved', 'False') && !w?.['status']?.admission ? w : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const requeued = conditionOf(released, 'Requeued');
    assert.deepEqual([requeued?.['status'], requeued?.['reason']], ['False', 'PodsReadyTimeout'], 'waiting out the re-queue backoff');
    assert.equal(released!['status'].requeueState?.count, 1);
    assert.ok(Date.parse(released!['status'].requeueState.requeueAt) > Date.parse(evictedCondition['lastTransitionTime']), 'a backoff before the next admission');
    assert.deepEqual(
      released!['status'].schedulingStats?.evictions?.map((e: Json) => [e['reason'], e['underlyingCause'], e['count']]),
      [['PodsReadyTimeout', 'WaitForStart', 1]],
    );
    // The node the running rank held has its 8 GPUs free again: an urgent Job of 8 GPUs would fit.
    const onNode = (await cluster.api.list('v1', 'Pod')).filter((p: Json) => p['spec'].nodeName === half.running['spec'].nodeName && !['Succeeded', 'Failed'].includes(p['status']?.phase));
    assert.deepEqual(onNode.map((p: Json) => p['metadata'].name), [], 'a pod still holds the freed node');

    await cordon(false);
    const second = await cluster.waitFor('both ranks running, admitted again', async () => {
      const live = (await gangPods(namespace, gang)).filter((p: Json) => !firstNames.has(p['metadata'].name));
      return live.length === GANG.nodes && live.every((p: Json) => p['status']?.phase === 'Running') ? live : undefined;
    }, { timeoutMs: 90_000 });
    assert.deepEqual(second.map((p: Json) => p['metadata'].labels['batch.kubernetes.io/job-completion-index']).sort(), ['0', '1']);
    assert.notEqual(second[0]['spec'].nodeName, second[1]['spec'].nodeName, 'one node per rank');
    const ready = await cluster.waitFor('the Workload PodsReady', async () => {
      const w = await workloadOf(namespace, job);
      return hasCondition(w, 'PodsReady') && hasCondition(w, 'Admitted') ? w : undefined;
    }, { timeoutMs: 30_000 });
    assert.ok(!hasCondition(ready, 'Evicted'));

    // Every admission created both ranks at once: never one rank alone, on any try.
    const creates = podCreates(namespace);
    assert.ok(creates.length >= 2 * GANG.nodes && creates.length % GANG.nodes === 0, `${creates.length} rank creations`);
    for (let i = 0; i < creates.length; i += GANG.nodes) assertCreatedTogether(creates.slice(i, i + GANG.nodes), `admission ${i / GANG.nodes + 1}`);
    timings.push(`gang admissions ${creates.length / GANG.nodes}`);

    await cluster.setPodOutcomes({});
    await cluster.waitFor('the gang Job complete', async () => hasCondition(await cluster.api.get('batch/v1', 'Job', name, namespace), 'Complete'), { timeoutMs: 60_000 });
    const done = await cluster.api.get('batch/v1', 'Job', name, namespace);
    assert.equal(done['status'].succeeded, GANG.nodes);
    assert.equal(done['status'].failed ?? 0, 0, 'the eviction is no failure of the Job');
  });
});

test('the gang stage objects pass a server-side dry-run in the restricted namespace, with no Pod Security warning', async () => {
  await timed('dry-run', async () => {
    const { namespace, gang } = await gangIn('gang-dry', GANG_GPUS);
    const problems: string[] = [];
    const kinds: string[] = [];
    // Every object of the gang stage and the stages it reads from, as compiled for this namespace.
    for (const object of gang.pipeline.objects) {
      const warnings: string[] = [];
      try {
        await cluster.api.apply(object as never, { dryRun: true, fieldManager: 'tunepipe', force: true, warnings });
        kinds.push(`${object.kind}/${object.metadata?.name}`);
      } catch (error) {
        problems.push(`${object.kind}/${object.metadata?.name}: ${(error as Error).message}`);
      }
      for (const w of warnings) problems.push(`${object.kind}/${object.metadata?.name}: warning ${w}`);
    }
    assert.deepEqual(problems, []);
    assert.ok(kinds.some((k) => k.startsWith('Job/')) && kinds.some((k) => k.startsWith('Service/')), kinds.join(', '));
    process.stdout.write(`# gang dry-run admitted ${kinds.length} objects: ${kinds.map((k) => k.split('/')[0]).join(', ')}\n`);
  });
});

test('the gang compiled as a JobSet (multiNode "jobset") passes a server-side dry-run against the JobSet CRD', async () => {
  await timed('dry-run JobSet', async () => {
    const crds = tools<{ jobSetCrds?: string[] }>('controlplane').jobSetCrds;
    assert.ok(crds, 'the JobSet CRD is not in the tools cache: node scripts/real/install.mjs controlplane');
    for (const crd of crds.flatMap(readYaml)) {
      await cluster.api.apply(crd as never);
      await cluster.waitFor(`CRD ${crd['metadata'].name} established`, async () => hasCondition(await cluster.api.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd['metadata'].name), 'Established'));
    }
    cluster.api.resetDiscovery();
    const ns = await cluster.createTunepipeNamespace('gang-jobset', { gpuQuota: { [GANG.gpuType]: GANG_GPUS }, gpuTypes: [GANG.gpuType] });
    const gang = await gangPipeline(ns.namespace, ns.queue, { multiNode: 'jobset' });
    assert.equal(gang.stage.workload.kind, 'JobSet', gang.source);
    const problems: string[] = [];
    let admittedJobSet: Json | undefined;
    for (const object of gang.stage.objects) {
      const warnings: string[] = [];
      try {
        const stored = await cluster.api.apply<Json>(object as never, { dryRun: true, fieldManager: 'tunepipe', force: true, warnings });
        if (object.kind === 'JobSet') admittedJobSet = stored;
      } catch (error) {
        problems.push(`${object.kind}/${object.metadata?.name}: ${(error as Error).message}`);
      }
      for (const w of warnings) problems.push(`${object.kind}/${object.metadata?.name}: warning ${w}`);
    }
    // The CRD's schema, the API server's validation and Kueue's JobSet webhooks (its manager
    // configuration manages JobSets); JobSet's own webhooks do not run here.
    assert.deepEqual(problems, []);
    assert.equal(admittedJobSet?.['spec']?.suspend, true, "Kueue's webhook holds the queued JobSet suspended until it admits the gang");
  });
});
