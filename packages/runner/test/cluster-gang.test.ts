// A multi-node training gang (an Indexed Job, parallelism > 1) as the runner reports it: Kueue's
// admission of the whole gang (and its reason when it holds the gang back), N of N ranks
// created and running, progress from rank 0's log alone, and a Kueue eviction told as the whole
// gang being replaced, never as a failure. The run-level scenarios (admitted whole, short of
// quota, preempted) are shared with the real control plane in scenarios/cluster-scenarios.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { RUNNER_RULES } from '../../../infra/cluster/src/platform-objects.ts';
import { classifyJob, type KueueWorkload } from '../src/cluster/classify.ts';
import { clusterStatus, formatStatus, streamStageLogs } from '../src/cluster/inspect.ts';
import { formatStageLine } from '../src/progress/format.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { SEED_TRAIN_LOG } from './helpers.ts';
import { startRun, withKube } from './faults-support.ts';
import { GANG, OTHER_RANK_TOTAL, withGang } from './scenarios/cluster-scenarios.ts';

const QUEUE = 'kueue.x-k8s.io/queue-name';
const INDEX = 'batch.kubernetes.io/job-completion-index';

function gangJob(overrides: { suspend?: boolean } = {}): V1Job {
  return {
    metadata: { name: 'p-sft-1', uid: 'job-uid', labels: { [QUEUE]: 'tunepipe', 'tunepipe.dev/stage': 'sft' } },
    spec: {
      completionMode: 'Indexed',
      completions: 2,
      parallelism: 2,
      suspend: overrides.suspend ?? false,
      template: { spec: { containers: [{ name: 'train', resources: { limits: { 'nvidia.com/gpu': '8' } } }] } },
    },
    status: {},
  } as V1Job;
}

function pod(name: string, index: number, phase: 'Pending' | 'Running' | 'Succeeded', createdAt: string): V1Pod {
  return {
    metadata: { name, labels: { [INDEX]: String(index), 'job-name': 'p-sft-1' }, annotations: { [INDEX]: String(index) }, creationTimestamp: createdAt as never },
    spec: { containers: [{ name: 'train' }] },
    status: {
      phase,
      ...(phase === 'Running' ? { containerStatuses: [{ name: 'train', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } }] } : {}),
    },
  } as V1Pod;
}

const pendingQuota: KueueWorkload = {
  status: {
    conditions: [
      {
        type: 'QuotaReserved',
        status: 'False',
        reason: 'Pending',
        message: "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor tunepipe-gpu-h100-80gb, previously considered podsets requests (0) + current podset request (16) > maximum capacity (8)",
      },
    ],
  },
};

test('a gang Kueue holds back for quota is queued with Kueue\'s reason, as a gang, not as pending pods', () => {
  const snap = classifyJob(gangJob({ suspend: true }), [], pendingQuota);
  assert.equal(snap.status, 'queued');
  assert.equal(snap.detail, `gang of 2 pods × 8 GPU waiting for quota: ${pendingQuota.status!.conditions![0]!.message}`);
  assert.deepEqual(snap.gang, { size: 2, admitted: false, created: 0, running: 0, finished: 0, evictions: 0 });
  // Without the Workload (no Kueue API, or a Role without it): still a gang waiting for admission.
  assert.equal(classifyJob(gangJob({ suspend: true }), []).detail, 'gang of 2 pods × 8 GPU waiting for Kueue to admit it (queue tunepipe)');
});

test('a gang evicted by Kueue is queued as evicted and re-queued whole', () => {
  const evicted: KueueWorkload = {
    status: {
      conditions: [
        ...pendingQuota.status!.conditions!,
        { type: 'Evicted', status: 'True', reason: 'Preempted', message: 'Preempted to accommodate a workload (UID: x) due to prioritization in the ClusterQueue' },
        { type: 'Admitted', status: 'False', reason: 'NoReservation' },
      ],
    },
  };
  const snap = classifyJob(gangJob({ suspend: true }), [], evicted);
  assert.equal(snap.status, 'queued');
  assert.match(snap.detail!, /^gang of 2 pods × 8 GPU evicted by Kueue \(Preempted\); re-queued whole, every rank restarts together once admitted again/);
});

test('the progress pod of a gang is rank 0, even when another rank is newer; the gang runs only with every rank running', () => {
  const rank0 = pod('p-sft-1-0-aaaaa', 0, 'Running', '2025-05-01T00:00:01Z');
  const rank1 = pod('p-sft-1-1-bbbbb', 1, 'Pending', '2025-05-01T00:00:02Z');
  const starting = classifyJob(gangJob(), [rank1, rank0]);
  assert.equal(starting.currentPod, 'p-sft-1-0-aaaaa');
  assert.equal(starting.status, 'starting');
  assert.equal(starting.detail, 'gang of 2 pods × 8 GPU admitted; 2/2 pods created, 1/2 running');
  const running = classifyJob(gangJob(), [rank0, pod('p-sft-1-1-bbbbb', 1, 'Running', '2025-05-01T00:00:02Z')]);
  assert.equal(running.status, 'running');
  assert.equal(running.currentPod, 'p-sft-1-0-aaaaa');
  assert.deepEqual(running.gang, { size: 2, admitted: true, created: 2, running: 2, finished: 0, evictions: 0, rank0Pod: 'p-sft-1-0-aaaaa' });
  const line = formatStageLine(
    { stage: 'sft', kind: 'sft', hash: 'h', status: 'running', attempts: 2, preemptions: 0, expectedSeconds: 60, gang: running.gang!, progress: { training: { current: 5, total: 300, elapsedSeconds: 26 }, numbers: {}, metrics: {} } },
    { nameWidth: 8, bar: false, now: 0 },
  );
  assert.match(line, /5\/300 .*gang 2\/2 running/);
});

test('status and logs of a running gang read rank 0 alone: its bar, never another rank\'s', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 14, rankLog: [` 50%|█████     | 500/${OTHER_RANK_TOTAL} [00:10<00:10, 50.00it/s]`] });
    const pipeline = withGang(makePipeline({ without: ['serve'] }), 'tunepipe');
    const { rec, done } = startRun(pipeline, kube, { pollIntervalMs: 10 });
    const options = { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe' };
    let sft;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
      sft = (await clusterStatus(pipeline, options)).find((s) => s.stage === 'sft');
      if (sft?.status === 'running' && sft.progress?.training) break;
    }
    assert.equal(sft?.status, 'running', rec.output());
    assert.equal(sft?.gang?.running, GANG.nodes);
    assert.equal(sft?.progress?.training?.total, 300, 'rank 0\'s bar');
    assert.match(sft!.gang!.rank0Pod!, /-0-/);
    assert.match(formatStatus(pipeline.pipeline, 'tunepipe', [sft!]), /sft .*running .*gang 2\/2 running/);
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c: Buffer) => (printed += c.toString()));
    await streamStageLogs(pipeline.pipeline, 'sft', { ...options, out });
    assert.match(printed, /Total optimization steps = 300/);
    assert.ok(!printed.includes(`/${OTHER_RANK_TOTAL}`), 'another rank\'s log was printed');
    kube.release('sft');
    const result = await done;
    assert.equal(result.outcome, 'succeeded', rec.output());
    const final = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(final.progress?.training?.total, 300);
    assert.ok(!rec.output().includes(`/${OTHER_RANK_TOTAL}`), 'another rank\'s bar was shown');
  });
});

test('without read access to Workloads (an older Role), a preempted gang is still told as one eviction, not a failure', async () => {
  const rules = RUNNER_RULES.filter((r) => !r.resources.includes('workloads'));
  await withKube({ rbac: rules }, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, rankLog: ['rank 1: working'], evictGangAfterLine: 8, readmitAfterMs: 60 });
    const pipeline = withGang(makePipeline({ without: ['serve'] }), 'tunepipe');
    const { rec, done } = startRun(pipeline, kube, { pollIntervalMs: 10 });
    const result = await done;
    assert.equal(result.outcome, 'succeeded', rec.output());
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.gang?.evictions, 1, rec.notes.join('\n'));
    assert.equal(sft.preemptions, 1);
    assert.deepEqual(rec.notes.filter((n) => /Kueue evicted the gang/.test(n)).length, 1, rec.notes.join('\n'));
    assert.ok(rec.notes.some((n) => /Kueue evicted the gang \(the Job was suspended again\)/.test(n)), rec.notes.join('\n'));
    assert.ok(!rec.statuses('sft').includes('failed'));
    // The refused Workload watch cost detail only: no 403 ever reached anything but Workloads.
    assert.deepEqual(kube.responses.filter((r) => r.status === 403 && !r.path.includes('/workloads')), []);
  });
});

test('a JobSet stage is refused before anything is applied, with the setting that runs it', async () => {
  await withKube({}, async (kube) => {
    const pipeline = makePipeline({ without: ['serve'] });
    const stages = pipeline.stages.map((s) => (s.name === 'sft' ? { ...s, workload: { kind: 'JobSet' as const, name: s.workload.name } } : s));
    const { done } = startRun({ ...pipeline, stages }, kube, { pollIntervalMs: 10 });
    await assert.rejects(done, (error: Error) => {
      assert.match(error.message, /stage sft is a JobSet .*follows Indexed Jobs only/);
      assert.match(error.message, /multiNode to "indexed-job"/);
      return true;
    });
    assert.deepEqual(kube.created, [], 'nothing applied');
  });
});
