// What goes wrong on a shared GPU cluster, on a real control plane, through the real CLI as the
// runner's ServiceAccount: Kueue holding a GPU Job for quota, a failing pod, a preemption, a
// cancel, a runner killed mid-run, an API server restarted mid-run, and Jobs cleaned up after
// they finished. kwok plays the pods; each test says what its stages' pods do.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, type LocalCluster, type PodOutcome } from '../support/cluster.ts';
import { cli, startCli } from './cli.ts';

let cluster: LocalCluster;
const outcomes: Record<string, PodOutcome> = {};

before(async () => {
  cluster = await startCluster({
    // Every finished run leaves its serving Deployment holding a GPU and its CPUs: room for all.
    gpuNodes: [
      { type: 'l4', count: 1, gpus: 16, cpu: '256', memory: '2Ti' },
      { type: 't4', count: 1, gpus: 1 },
      { type: 'a100-80gb', count: 1, gpus: 1 },
    ],
    cpuNodes: 2,
    podRunMs: 500,
  });
});

after(async () => {
  await cluster?.stop();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PIPELINE = 'llama3-fintech';

async function setOutcome(namespace: string, stage: string, outcome: PodOutcome | undefined): Promise<void> {
  const key = `${namespace}/${stage}`;
  if (outcome) outcomes[key] = outcome;
  else delete outcomes[key];
  await cluster.setPodOutcomes(outcomes);
}

const runArgs = (namespace: string, queue: string) => ['run', PIPELINE, '--target', 'cluster', '--namespace', namespace, '--queue', queue];

async function stagePods(namespace: string, stage: string): Promise<Json[]> {
  return cluster.api.list('v1', 'Pod', namespace, `tunepipe.dev/stage=${stage}`);
}

/** The name of a Running, not terminating pod of `stage` (other than `except`), once there is one. */
function runningPod(namespace: string, stage: string, except?: string): Promise<string> {
  return cluster.waitFor(
    `a running ${stage} pod in ${namespace}`,
    async () => (await stagePods(namespace, stage)).find((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp && p.metadata.name !== except)?.metadata.name as string | undefined,
    { timeoutMs: 90_000, intervalMs: 250 },
  );
}

async function stageJob(namespace: string, stage: string): Promise<Json | undefined> {
  return (await cluster.api.list('batch/v1', 'Job', namespace, `tunepipe.dev/stage=${stage}`))[0];
}

test('Kueue holds a GPU Job until quota frees, and the progress line says queued', async () => {
  // One L4 GPU of quota: sft and eval-base both want one as soon as their inputs are done.
  const ns = await cluster.createTunepipeNamespace('quota', { gpuQuota: 1 });
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  await setOutcome(ns.namespace, 'eval-base', { outcome: 'hold' });
  const run = startCli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  try {
    await run.waitForOutput(/(sft|eval-base) +⏸ queued +waiting for Kueue to admit it \(queue tunepipe\)/);
    const [first, second] = await cluster.waitFor('one GPU stage running, the other suspended by Kueue', async () => {
      const states = await Promise.all(
        ['sft', 'eval-base'].map(async (stage) => ({ stage, job: await stageJob(ns.namespace, stage), pods: await stagePods(ns.namespace, stage) })),
      );
      const running = states.find((s) => s.pods.some((p) => p.status?.phase === 'Running'));
      const waiting = states.find((s) => s !== running && s.job?.spec?.suspend === true);
      return running && waiting ? [running.stage, waiting.stage] : undefined;
    });
    const queuedLine = new RegExp(`${second} +⏸ queued +waiting for Kueue to admit it \\(queue tunepipe\\)`);
    assert.match(run.output(), queuedLine);
    // Kueue's own account of why: the Workload has no quota reserved.
    const waitingJob = (await stageJob(ns.namespace, second))!;
    const workloads = await cluster.api.list('kueue.x-k8s.io/v1beta2', 'Workload', ns.namespace);
    const wl = workloads.find((w) => w.metadata.ownerReferences?.some((o: Json) => o['name'] === waitingJob['metadata'].name));
    assert.ok(wl, 'a Workload for the waiting Job');
    assert.ok(!wl.status?.conditions?.some((c: Json) => c['type'] === 'QuotaReserved' && c['status'] === 'True'), 'no quota reserved while the other GPU Job runs');
    // Let the first finish: the second is admitted, runs, and the run completes.
    await setOutcome(ns.namespace, first, undefined);
    await runningPod(ns.namespace, second);
    const firstJob = (await stageJob(ns.namespace, first))!;
    const admitted = (await stageJob(ns.namespace, second))!;
    assert.equal(admitted['spec'].suspend, false, `${second} unsuspended by Kueue`);
    assert.ok(firstJob['status']?.completionTime, `${first} completed before ${second} was admitted`);
    await setOutcome(ns.namespace, second, undefined);
    const result = await run.done;
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, new RegExp(`${second} +▶ running`));
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    await setOutcome(ns.namespace, 'eval-base', undefined);
    run.child.kill('SIGKILL');
  }
});

test('a failing pod is reported with its reason; nothing after it starts', async () => {
  const ns = await cluster.createTunepipeNamespace('fail');
  // The gate's exit code 3 is a FailJob rule: no retries of GPU work for a failed gate.
  await setOutcome(ns.namespace, 'eval-adapter', { outcome: 'fail', exitCode: 3, reason: 'Error', message: 'gate failed: bleu4 12.1 < 20' });
  try {
    const result = await cli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
    assert.equal(result.status, 1, result.output);
    assert.match(result.output, /eval-adapter +✗ failed/);
    assert.match(result.output, /PodFailurePolicy/);
    assert.match(result.output, /exit code 3/);
    assert.match(result.output, /FailJob rule/);
    const job = (await stageJob(ns.namespace, 'eval-adapter'))!;
    assert.ok(job['status'].conditions.some((c: Json) => c['type'] === 'Failed' && c['reason'] === 'PodFailurePolicy'));
    assert.equal((await cluster.api.list('apps/v1', 'Deployment', ns.namespace)).length, 0, 'serve never applied');
  } finally {
    await setOutcome(ns.namespace, 'eval-adapter', undefined);
  }
});

test('a preempted pod (DisruptionTarget eviction) is retried without using up backoffLimit', async () => {
  const ns = await cluster.createTunepipeNamespace('preempt');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  const run = startCli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  try {
    const job = await cluster.waitFor('the sft Job', () => stageJob(ns.namespace, 'sft'), { timeoutMs: 90_000 });
    const backoffLimit: number = job['spec'].backoffLimit;
    // More evictions than the backoffLimit allows failures: only the podFailurePolicy's Ignore
    // rule for DisruptionTarget lets the Job survive them.
    let pod = await runningPod(ns.namespace, 'sft');
    for (let i = 0; i <= backoffLimit; i++) {
      await cluster.evict(ns.namespace, pod);
      pod = await runningPod(ns.namespace, 'sft', pod);
    }
    const during = (await stageJob(ns.namespace, 'sft'))!;
    assert.ok(!during['status'].conditions?.some((c: Json) => c['type'] === 'Failed'), 'the Job did not fail');
    assert.equal(during['status'].failed ?? 0, 0, 'evicted pods do not count as failures');
    // The evicted pod is deleted within moments of stopping: the runner sees it vanish.
    await run.waitForOutput(/sft +pod \S+ was lost \(.*\); Kubernetes retries it and training resumes from the last checkpoint/);
    await setOutcome(ns.namespace, 'sft', undefined);
    const result = await run.done;
    assert.equal(result.status, 0, result.output);
    const done = (await stageJob(ns.namespace, 'sft'))!;
    assert.equal(done['status'].succeeded, 1);
    assert.equal(done['status'].failed ?? 0, 0);
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    run.child.kill('SIGKILL');
  }
});

test('cancel leaves no running pod', async () => {
  const ns = await cluster.createTunepipeNamespace('cancel');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  await setOutcome(ns.namespace, 'eval-base', { outcome: 'hold' });
  const run = startCli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  try {
    await runningPod(ns.namespace, 'sft');
    await runningPod(ns.namespace, 'eval-base');
    const cancel = await cli(['cancel', PIPELINE, '--namespace', ns.namespace], ns.kubeconfig);
    assert.equal(cancel.status, 0, cancel.output);
    await cluster.waitFor('no pod left running or pending', async () => {
      const pods = await cluster.api.list('v1', 'Pod', ns.namespace);
      return pods.every((p) => p.status?.phase !== 'Running' && p.status?.phase !== 'Pending') ? true : undefined;
    }, { timeoutMs: 60_000 });
    const result = await run.done;
    assert.equal(result.status, 1, 'the run reports the cancelled stages as failed');
    assert.match(result.output, /was deleted while the stage ran/);
    const jobs = await cluster.api.list('batch/v1', 'Job', ns.namespace);
    assert.ok(!jobs.some((j) => !j.status?.conditions?.some((c: Json) => c['type'] === 'Complete')), 'only complete Jobs remain');
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    await setOutcome(ns.namespace, 'eval-base', undefined);
    run.child.kill('SIGKILL');
  }
});

test('status after the runner was killed mid-run; the next run attaches to the running Job', async () => {
  const ns = await cluster.createTunepipeNamespace('killed');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  const run = startCli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  try {
    await runningPod(ns.namespace, 'sft');
    run.child.kill('SIGKILL');
    await run.done;
    const status = await cli(['status', PIPELINE, '--namespace', ns.namespace], ns.kubeconfig);
    assert.equal(status.status, 0, status.output);
    assert.match(status.output, /fetch-model +✓ done/);
    assert.match(status.output, /convert +✓ done/);
    assert.match(status.output, /sft +▶ running/);
    assert.match(status.output, /merge +· waiting/);
    await setOutcome(ns.namespace, 'sft', undefined);
    const again = await cli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
    assert.equal(again.status, 0, again.output);
    assert.match(again.output, /fetch-model +✓ cached/);
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    run.child.kill('SIGKILL');
  }
});

test('an API server restarted mid-run (watches and connections broken) does not stop the run', async () => {
  const ns = await cluster.createTunepipeNamespace('restart');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  const run = startCli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  try {
    await runningPod(ns.namespace, 'sft');
    await cluster.restartApiServer({ downMs: 3000 });
    await sleep(1000);
    await setOutcome(ns.namespace, 'sft', undefined);
    const result = await run.done;
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, /sft +✓ done/);
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    run.child.kill('SIGKILL');
  }
});

test('Jobs cleaned up after they finished: the marker check passes admission and, with no files on the fake volume, the stages run again', async () => {
  const ns = await cluster.createTunepipeNamespace('markers');
  const first = await cli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  assert.equal(first.status, 0, first.output);
  for (const job of await cluster.api.list('batch/v1', 'Job', ns.namespace)) {
    await cluster.api.delete('batch/v1', 'Job', job.metadata.name, ns.namespace, { propagationPolicy: 'Foreground' });
  }
  await cluster.waitFor('Jobs gone', async () => ((await cluster.api.list('batch/v1', 'Job', ns.namespace)).length === 0 ? true : undefined));
  const started = Date.now();
  const second = await cli(runArgs(ns.namespace, ns.queue), ns.kubeconfig);
  assert.equal(second.status, 0, second.output);
  assert.match(second.output, /stage Job\(s\) not found; checking the artifacts volume for their completion markers/);
  // kwok's pods write nothing, so no marker is found and every stage runs again: what a real
  // cluster does when the volume was wiped. The check itself must not cost its 180 s timeout.
  // (The serve Deployment was not deleted: it stays cached by its hash.)
  assert.match(second.output, /\d+ run, 1 cached/);
  assert.match(second.output, /serve +✓ cached +Deployment llama3-fintech-serve already serving this hash/);
  assert.doesNotMatch(second.output, /could not check the artifacts volume in time/);
  assert.ok(Date.now() - started < 120_000, 'no wait for the check timeout');
  // Jobs are created by server-side apply (verb patch), pods by the Job controller (create).
  const events = cluster.auditEvents().filter((e) => e.objectRef?.namespace === ns.namespace && e.stage === 'ResponseComplete' && (e.verb === 'create' || e.verb === 'patch'));
  assert.ok(
    events.some((e) => e.objectRef?.resource === 'jobs' && (e.objectRef.name ?? '').includes('-marker-check-') && e.responseStatus?.code === 201),
    'a marker-check Job was created',
  );
  // Pods are created with generateName (no name in the audit record): every pod create of the
  // namespace, the check's included, must have been admitted.
  const podCreates = events.filter((e) => e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.verb === 'create');
  for (const e of podCreates) assert.equal(e.responseStatus?.code, 201, `pod admitted under restricted: ${e.responseStatus?.message ?? ''}`);
});
