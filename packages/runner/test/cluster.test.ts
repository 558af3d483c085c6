import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { runOnCluster, type ClusterRunOptions } from '../src/cluster/run.ts';
import { cancelRun, clusterStatus, formatStatus, streamStageLogs } from '../src/cluster/inspect.ts';
import { makePipeline, type FixtureOptions } from './fixtures/pipeline.ts';
import { startFakeKube, type FakeKubeApi } from './doubles/fake-kube-api.ts';
import { recorder, SEED_TRAIN_LOG, waitFor, type Recorder } from './helpers.ts';

const FAST = { pollIntervalMs: 10 } as const;

async function withKube(fn: (kube: FakeKubeApi) => Promise<void>): Promise<void> {
  const kube = await startFakeKube();
  try {
    await fn(kube);
  } finally {
    await kube.stop();
  }
}

async function run(kube: FakeKubeApi, fixture: FixtureOptions = {}, options: Partial<ClusterRunOptions> = {}) {
  const rec = recorder();
  const result = await runOnCluster(makePipeline(fixture), { kubeConfig: kube.kubeConfig(), reporter: rec, ...FAST, ...options });
  return { rec, result };
}

const createdJobs = (kube: FakeKubeApi) => kube.created.filter((c) => c.startsWith('Job/'));
const stageJobs = (kube: FakeKubeApi) => createdJobs(kube).filter((c) => !c.includes('marker-check'));
const deletedStageJobs = (kube: FakeKubeApi) => kube.deletedJobs.filter((c) => !c.includes('marker-check'));

test('full run: stages applied in graph order, sft queued then trained, serve becomes available', async () => {
  await withKube(async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, admitAfterMs: 40, unschedulableForMs: 40 });
    const { rec, result } = await run(kube);

    assert.equal(result.outcome, 'succeeded', rec.output());
    assert.deepEqual(
      result.stages.map((s) => [s.stage, s.status]),
      ['fetch-model', 'convert', 'sft', 'merge', 'quantize', 'evaluate', 'serve'].map((s) => [s, 'done']),
    );
    // Every write is a server-side apply by field manager tunepipe, taking over conflicts.
    const patches = kube.requests.filter((r) => r.method === 'PATCH');
    assert.ok(patches.length >= 15);
    for (const p of patches) {
      assert.equal(p.contentType, 'application/apply-patch+yaml');
      assert.match(p.query, /fieldManager=tunepipe/);
      assert.match(p.query, /force=true/);
    }
    // ConfigMaps go before their Job; a stage's Job only after the Jobs it reads from.
    const order = kube.created;
    const pipeline = makePipeline();
    for (const stage of pipeline.stages.filter((s) => s.workload.kind === 'Job')) {
      const job = order.indexOf(`Job/${stage.resourceName}`);
      assert.ok(order.indexOf(`ConfigMap/${stage.resourceName}`) < job, `${stage.name}: ConfigMap before Job`);
      for (const dep of stage.dependsOn) {
        const depStage = pipeline.stages.find((s) => s.name === dep)!;
        assert.ok(order.indexOf(`Job/${depStage.resourceName}`) < job, `${dep} before ${stage.name}`);
      }
    }
    const at = (name: string) => result.stages.find((s) => s.stage === name)!;
    assert.ok(at('merge').startedAt! >= at('sft').finishedAt!, 'merge starts after sft is done');
    // Independent stages overlap: fetch-model with convert, quantize with evaluate.
    assert.ok(at('convert').startedAt! < at('fetch-model').finishedAt!);
    assert.ok(at('evaluate').startedAt! < at('quantize').finishedAt!);

    // Queued: first Kueue suspension, then no GPU node; then running with the seed's numbers.
    assert.deepEqual(rec.statuses('sft'), ['waiting', 'starting', 'queued', 'running', 'done']);
    const out = rec.output();
    assert.match(out, /sft +⏸ queued +waiting for Kueue to admit it \(queue gpu\)/);
    assert.match(out, /sft +⏸ queued +no node can take the pod yet: 0\/3 nodes are available: 3 Insufficient nvidia\.com\/gpu/);
    assert.match(out, /sft +▶ running +\d+% +5\/300 · loss 1\.4229 · lr 5\.00e-05 · epoch 0\.17 · 1828 tok\/s · ETA 25:00/);
    assert.match(out, /sft +✓ done .*train_loss 0\.7140 · train_runtime 25:30/);
    const sft = at('sft');
    assert.equal(sft.progress?.training?.current, 300);
    assert.equal(sft.progress?.numbers.tokensPerSecond, 1840.12);
    assert.equal(sft.progress?.metrics['train']?.['train_loss'], 0.714);
    assert.equal(at('serve').endpoint, 'http://llama3-fintech-serve.tunepipe.svc:8000/v1');
    assert.match(out, /✓ llama3-fintech finished in .*: 7 run, 0 cached/);
  });
});

test('a log stream the API server closes early is picked up again where it stopped', async () => {
  const kube = await startFakeKube({ dropFollowAfterMs: 15, linesPerTick: 1 });
  try {
    kube.script('sft', { log: SEED_TRAIN_LOG, admitAfterMs: 100 });
    const running = run(kube, { without: ['serve'] });
    await waitFor(() => kube.list('Job').some((j) => j['metadata'].name.includes('-sft-')), 5000, 'sft Job');
    let followed = '';
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        followed += chunk.toString();
        cb();
      },
    });
    const following = streamStageLogs('llama3-fintech', 'sft', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe', follow: true, out: sink, pollIntervalMs: 10 });
    const { rec, result } = await running;
    await following;
    assert.equal(result.outcome, 'succeeded');
    // Every line once: nothing lost while the stream was cut, no overlap printed twice.
    const count = (lines: readonly string[], line: string) => lines.filter((l) => l === line).length;
    const printedLines = followed.split('\n');
    for (const line of SEED_TRAIN_LOG.filter((l) => l.trim())) {
      assert.equal(count(printedLines, line), count(SEED_TRAIN_LOG, line), `logs -f printed once: ${line.slice(0, 60)}`);
    }
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.progress?.training?.current, 300);
    assert.equal(sft.progress?.metrics['train']?.['train_runtime'], '0:25:30.13');
    const follows = kube.requests.filter((r) => r.path.endsWith('/log') && r.query.includes('follow=true') && r.path.includes('-sft-'));
    assert.ok(follows.filter((r) => r.query.includes('sinceTime=')).length >= 2, 'cut streams are picked up from the last line received');
    assert.match(rec.output(), /sft +▶ running +\d+% +90\/300/);
  } finally {
    await kube.stop();
  }
});

test('cache hit: an unchanged pipeline re-runs nothing and creates no Jobs', async () => {
  await withKube(async (kube) => {
    await run(kube);
    const before = [...kube.created];
    const applies = kube.requests.filter((r) => r.method === 'PATCH').length;
    const { rec, result } = await run(kube);
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(result.stages.map((s) => s.status), Array(7).fill('cached'));
    assert.deepEqual(kube.created, before, 'no object created');
    assert.equal(kube.requests.filter((r) => r.method === 'PATCH').length, applies, 'nothing applied');
    assert.match(rec.output(), /sft +✓ cached +Job llama3-fintech-sft-[0-9a-f]{8} already complete/);
    assert.match(rec.output(), /0 run, 7 cached/);
  });
});

test('cache hit after the Jobs were cleaned up: one marker-check pod instead of the GPU pods', async () => {
  await withKube(async (kube) => {
    await run(kube, { without: ['serve'] });
    for (const job of kube.list('Job')) {
      const res = await fetch(`${kube.url}/apis/batch/v1/namespaces/tunepipe/jobs/${job['metadata'].name}?propagationPolicy=Background`, { method: 'DELETE' });
      assert.equal(res.status, 200);
    }
    const jobsBefore = stageJobs(kube).length;
    const { rec, result } = await run(kube, { without: ['serve'] });
    assert.deepEqual(result.stages.map((s) => s.status), Array(6).fill('cached'), rec.output());
    assert.equal(stageJobs(kube).length, jobsBefore, 'no stage Job re-created');
    assert.equal(createdJobs(kube).filter((j) => j.includes('marker-check')).length, 2, 'one check per run without Jobs');
    assert.match(rec.output(), /artifact complete on the volume/);
    assert.equal(kube.list('Job').length, 0, 'the check Job is removed');
  });
});

test('changing one stage re-runs it and its descendants only', async () => {
  await withKube(async (kube) => {
    await run(kube);
    const before = stageJobs(kube).length;
    const { result } = await run(kube, { sft: { learning_rate: 1e-4 } });
    const status = Object.fromEntries(result.stages.map((s) => [s.stage, s.status]));
    assert.deepEqual(status, {
      'fetch-model': 'cached',
      convert: 'cached',
      sft: 'done',
      merge: 'done',
      quantize: 'done',
      evaluate: 'done',
      serve: 'done',
    });
    const changed = makePipeline({ sft: { learning_rate: 1e-4 } });
    assert.deepEqual(
      stageJobs(kube).slice(before),
      ['sft', 'merge', 'quantize', 'evaluate'].map((s) => `Job/${changed.stages.find((x) => x.name === s)!.resourceName}`).sort(sortByOrder(stageJobs(kube))),
    );
    const deployment = kube.get('Deployment', 'tunepipe', 'llama3-fintech-serve')!;
    assert.equal(deployment['metadata'].generation, 2, 'serve rolled out the new model');
  });
});

function sortByOrder(order: string[]) {
  return (a: string, b: string) => order.indexOf(a) - order.indexOf(b);
}

test('--force sft deletes and re-creates sft and its descendants with TUNEPIPE_FORCE=1', async () => {
  await withKube(async (kube) => {
    await run(kube);
    const { rec, result } = await run(kube, {}, { force: ['sft'] });
    const status = Object.fromEntries(result.stages.map((s) => [s.stage, s.status]));
    assert.equal(status['fetch-model'], 'cached');
    assert.equal(status['convert'], 'cached');
    for (const s of ['sft', 'merge', 'quantize', 'evaluate', 'serve']) assert.equal(status[s], 'done', s);
    const pipeline = makePipeline();
    const name = (s: string) => pipeline.stages.find((x) => x.name === s)!.resourceName;
    assert.deepEqual(deletedStageJobs(kube), ['sft', 'merge', 'quantize', 'evaluate'].map(name));
    const deletes = kube.requests.filter((r) => r.method === 'DELETE');
    assert.ok(deletes.every((d) => d.query.includes('propagationPolicy=Background')));
    const sftJob = kube.get('Job', 'tunepipe', name('sft'))!;
    assert.deepEqual(sftJob['spec'].template.spec.containers[0].env.at(-1), { name: 'TUNEPIPE_FORCE', value: '1' });
    const evaluateJob = kube.get('Job', 'tunepipe', name('evaluate'))!;
    assert.ok(evaluateJob['spec'].template.spec.initContainers[0].env.some((e: { name: string }) => e.name === 'TUNEPIPE_FORCE'));
    // The forced pod really ran (the double's wrapper would have skipped it on the marker otherwise).
    const sftPod = kube.pods().filter((p) => p['metadata'].labels['job-name'] === name('sft')).at(-1)!;
    assert.doesNotMatch(kube.podLog(sftPod['metadata'].name).join('\n'), /already complete/);
    assert.match(rec.notes.join('\n'), /deleting Job llama3-fintech-sft-[0-9a-f]{8} to re-run it \(--force\)/);
  });
});

test('preemption: the pod is lost, Kubernetes retries, training resumes from checkpoint-100', async () => {
  await withKube(async (kube) => {
    const saveLine = SEED_TRAIN_LOG.findIndex((l) => l.includes('checkpoint-100'));
    kube.script('sft', { log: SEED_TRAIN_LOG, preemptAfterLine: saveLine + 4 });
    const { rec, result } = await run(kube, { without: ['serve'] });
    assert.equal(result.outcome, 'succeeded', rec.output());
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.preemptions, 1);
    assert.equal(sft.attempts, 2);
    assert.ok(rec.statuses('sft').includes('retrying'), rec.statuses('sft').join(','));
    assert.match(rec.output(), /sft +↻ retrying .*pod llama3-fintech-sft-\S+ lost \(PreemptionByKueue\); Kubernetes starts a new one/);
    assert.match(rec.notes.join('\n'), /was lost \(PreemptionByKueue\); Kubernetes retries it and training resumes from the last checkpoint/);
    assert.match(sft.progress?.resumedFrom ?? '', /checkpoint-100$/);
    assert.equal(sft.progress?.training?.current, 300);
    const job = kube.get('Job', 'tunepipe', makePipeline().stages.find((s) => s.name === 'sft')!.resourceName)!;
    assert.equal(job['status'].failed ?? 0, 0, 'preemption did not use up a retry');
  });
});

test('a failed stage reports the reason and its last log lines; its descendants are blocked', async () => {
  await withKube(async (kube) => {
    const log = [
      '[INFO|2025-04-30 23:30:00] llamafactory.cli:143 >> Exporting model',
      ...Array.from({ length: 25 }, (_, i) => `loading shard ${i + 1}`),
      'Traceback (most recent call last):',
      '  File "/app/src/llamafactory/data/template.py", line 812, in get_template_and_fix_tokenizer',
      'ValueError: Template llama does not exist.',
    ];
    kube.script('merge', { log, failExitCode: 1 });
    const { rec, result } = await run(kube);
    assert.equal(result.outcome, 'failed');
    const merge = result.stages.find((s) => s.stage === 'merge')!;
    assert.equal(merge.status, 'failed');
    assert.equal(merge.failure?.reason, 'BackoffLimitExceeded');
    assert.match(merge.failure?.message ?? '', /backoff limit; Error \(exit code 1\); ValueError: Template llama does not exist\.$/);
    assert.equal(merge.failure?.logTail.length, 20);
    assert.equal(merge.failure?.logTail.at(-1), 'ValueError: Template llama does not exist.');
    assert.equal(merge.attempts, 3, 'backoffLimit 2 = three attempts');
    for (const s of ['quantize', 'evaluate', 'serve']) {
      assert.equal(result.stages.find((x) => x.stage === s)!.status, 'blocked', s);
    }
    const out = rec.output();
    assert.match(out, /✗ merge failed: BackoffLimitExceeded — Job has reached the specified backoff limit/);
    assert.match(out, /last 20 log lines of pod llama3-fintech-merge-\S+ \(container main\):\n(  │ .*\n){19}  │ ValueError: Template llama does not exist\./);
    assert.match(out, /quantize +⊘ blocked +merge failed/);

    // status shows the failure with its log; logs prints the failed pod's output.
    const states = await clusterStatus(makePipeline(), { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe' });
    assert.deepEqual(states.map((s) => s.status), ['done', 'done', 'done', 'failed', 'waiting', 'waiting', 'waiting']);
    assert.match(formatStatus('llama3-fintech', 'tunepipe', states), /merge: last 20 log lines of pod \S+:\n(  │ .*\n){19}  │ ValueError: Template llama does not exist\./);
    let printed = '';
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        printed += chunk.toString();
        cb();
      },
    });
    await streamStageLogs('llama3-fintech', 'merge', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe', out: sink });
    assert.match(printed, /^\[INFO.*Exporting model\n(.*\n)*ValueError: Template llama does not exist\.\n$/);
    await assert.rejects(
      streamStageLogs('llama3-fintech', 'serve', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe', out: sink }),
      /no Job or Deployment for stage serve of pipeline llama3-fintech in namespace tunepipe; stages with workloads: /,
    );

    // Fixed: the next run deletes the failed Job and retries it.
    kube.script('merge', {});
    const again = await run(kube);
    assert.equal(again.result.outcome, 'succeeded');
    assert.match(again.rec.notes.join('\n'), /failed in an earlier run \(BackoffLimitExceeded\); deleting it to retry/);
  });
});

/** Runs the pipeline until sft has trained 90 steps, then detaches (the Jobs keep running). */
async function detachWhileTraining(kube: FakeKubeApi, fixture: FixtureOptions) {
  const controller = new AbortController();
  const rec = recorder();
  const running = runOnCluster(makePipeline(fixture), { kubeConfig: kube.kubeConfig(), reporter: rec, signal: controller.signal, ...FAST });
  await waitFor(() => (rec.last('sft')?.progress?.training?.current ?? 0) >= 90, 5000, 'sft progress');
  controller.abort();
  return { rec, result: await running };
}

test('detach leaves the Jobs running; status and logs show them; a re-run reattaches', async () => {
  await withKube(async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const fixture = { without: ['serve'] } as const;
    const { rec, result } = await detachWhileTraining(kube, fixture);
    assert.equal(result.outcome, 'detached');
    assert.equal(result.stages.find((s) => s.stage === 'sft')!.status, 'running');
    const out = rec.output();
    assert.match(out, /Detached after .*; the Jobs keep running in namespace tunepipe\./);
    assert.match(out, /tunepipe logs llama3-fintech sft -f --namespace tunepipe/);
    assert.match(out, /tunepipe run llama3-fintech --target cluster --namespace tunepipe +reattach/);
    const sftName = makePipeline(fixture).stages.find((s) => s.name === 'sft')!.resourceName;
    assert.ok(kube.get('Job', 'tunepipe', sftName), 'the sft Job is still there');
    assert.deepEqual(deletedStageJobs(kube), []);

    // status: by label, without the compiled pipeline.
    const states = await clusterStatus('llama3-fintech', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe' });
    const sft = states.find((s) => s.stage === 'sft')!;
    assert.equal(sft.status, 'running');
    assert.ok((sft.progress?.training?.current ?? 0) >= 90);
    assert.equal(states.find((s) => s.stage === 'convert')!.status, 'done');
    assert.deepEqual(states.map((s) => [s.stage, s.kind]), [['fetch-model', 'fetch-model'], ['convert', 'convert'], ['sft', 'sft']]);
    assert.match(formatStatus('llama3-fintech', 'tunepipe', states), /sft +▶ running +\S+ +\d+% +\d+\/300 · loss/);

    // logs -f follows the running pod until the Job completes.
    let followed = '';
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        followed += chunk.toString();
        cb();
      },
    });
    const following = streamStageLogs('llama3-fintech', 'sft', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe', follow: true, out: sink, pollIntervalMs: 10 });
    await waitFor(() => followed.includes('Total optimization steps = 300'), 5000, 'followed log');

    // Reattach: the running Job is adopted, not re-created; the run goes on to the end.
    const jobsBefore = stageJobs(kube).length;
    const rec2 = recorder();
    const reattached = runOnCluster(makePipeline(fixture), { kubeConfig: kube.kubeConfig(), reporter: rec2, ...FAST });
    await waitFor(() => rec2.notes.some((n) => n.includes('attached to Job')), 5000, 'reattach note');
    kube.release('sft');
    const result2 = await reattached;
    assert.equal(result2.outcome, 'succeeded', rec2.output());
    assert.equal(rec2.last('fetch-model')?.status, 'cached');
    assert.equal(rec2.last('sft')?.status, 'done');
    assert.equal(stageJobs(kube).filter((j) => j.includes('-sft-')).length, 1, 'sft Job created once');
    assert.ok(stageJobs(kube).length > jobsBefore, 'later stages were created');
    await following;
    assert.match(followed, /\*\*\*\*\* train metrics \*\*\*\*\*/);
  });
});

test('cancel deletes the running Jobs with Background propagation and keeps finished ones', async () => {
  await withKube(async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 12 });
    const controller = new AbortController();
    const rec = recorder();
    const running = runOnCluster(makePipeline({ without: ['serve'] }), { kubeConfig: kube.kubeConfig(), reporter: rec, signal: controller.signal, ...FAST });
    await waitFor(() => rec.last('sft')?.status === 'running', 5000, 'sft running');
    controller.abort();
    await running;
    const cancelled = await cancelRun('llama3-fintech', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe' });
    const sftName = makePipeline().stages.find((s) => s.name === 'sft')!.resourceName;
    assert.deepEqual(cancelled.deletedJobs, [sftName]);
    assert.equal(kube.get('Job', 'tunepipe', sftName), undefined);
    assert.ok(kube.list('Job').length >= 2, 'finished Jobs stay (their stages stay cached)');
    assert.ok(kube.requests.filter((r) => r.method === 'DELETE').every((r) => r.query.includes('propagationPolicy=Background')));
  });
});

test('cancel --scale-serve scales the serve Deployment to zero', async () => {
  await withKube(async (kube) => {
    await run(kube);
    const cancelled = await cancelRun('llama3-fintech', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe', scaleServe: true });
    assert.deepEqual(cancelled, { deletedJobs: [], scaledDeployments: ['llama3-fintech-serve'] });
    assert.equal(kube.get('Deployment', 'tunepipe', 'llama3-fintech-serve')!['spec'].replicas, 0);
  });
});

test('an unreachable API server is one clear error, not a stack trace', async () => {
  const kube = await startFakeKube();
  const kc = kube.kubeConfig();
  await kube.stop();
  await assert.rejects(runOnCluster(makePipeline(), { kubeConfig: kc, reporter: recorder(), ...FAST }), (error: Error) => {
    assert.equal(error.name, 'RunnerError');
    assert.match(error.message, /cannot reach the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    return true;
  });
});

test('objects shared by the pipeline (in objects, in no stage) are applied once before the first stage runs', async () => {
  await withKube(async (kube) => {
    const base = makePipeline({ without: ['serve'] });
    const sharedConfig = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'llama3-fintech-shared', namespace: 'tunepipe' }, data: { a: 'b' } } as const;
    const pipeline = { ...base, objects: [sharedConfig, ...base.objects] };
    const options = { kubeConfig: kube.kubeConfig(), ...FAST };
    await runOnCluster(pipeline, { ...options, reporter: recorder() });
    assert.equal(kube.created[0], 'ConfigMap/llama3-fintech-shared');
    const applies = () => kube.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/llama3-fintech-shared')).length;
    assert.equal(applies(), 1);
    await runOnCluster(pipeline, { ...options, reporter: recorder() });
    assert.equal(applies(), 1, 'an all-cached run writes nothing');
  });
});

test('unknown stage names in --only/--force are reported together before anything runs', async () => {
  await withKube(async (kube) => {
    await assert.rejects(run(kube, {}, { only: ['sfx'], force: ['mrege'] }), (error: Error) => {
      assert.match(error.message, /--only "sfx": no such stage in llama3-fintech; stages are fetch-model, convert, sft/);
      assert.match(error.message, /--force "mrege": no such stage/);
      return true;
    });
    assert.equal(kube.requests.length, 0);
  });
});

test('--only a stage whose inputs are not complete is refused with what to do', async () => {
  await withKube(async (kube) => {
    await assert.rejects(run(kube, { without: ['serve'] }, { only: ['merge'], markerCheck: false }), (error: Error) => {
      assert.match(error.message, /merge reads the artifacts of sft, which has not completed for hash [0-9a-f]{8}; run sft too \(add --only sft\) or drop --only/);
      return true;
    });
    assert.equal(kube.created.length, 0);
  });
});

export type { Recorder };

test("status keeps the checkpoint note of a long run: the wrapper's lines are read from the log's start", async () => {
  await withKube(async (kube) => {
    const out = '/artifacts/llama3-fintech/sft/abc';
    const wrapper = [
      'tunepipe: input /artifacts/llama3-fintech/convert/def verified (4 files)',
      `tunepipe: checkpoint-200 was never sealed (its save was not confirmed finished); moved to ${out}.broken/checkpoint-200.1700000000`,
      'tunepipe: training resumes from checkpoint-100',
    ];
    // Far more than the 200 lines status reads from the tail.
    const training = Array.from({ length: 600 }, (_, i) => `[INFO|trainer] step ${i}`);
    const log = [...wrapper, ...training, ...SEED_TRAIN_LOG];
    kube.script('sft', { log, holdAtLine: log.length - 5 });
    await detachWhileTraining(kube, { without: ['serve'] });
    const states = await clusterStatus('llama3-fintech', { kubeConfig: kube.kubeConfig(), namespace: 'tunepipe' });
    const sft = states.find((s) => s.stage === 'sft')!;
    assert.equal(sft.status, 'running');
    assert.deepEqual(sft.progress?.checkpointResume?.resumeFrom, 'checkpoint-100');
    assert.match(formatStatus('llama3-fintech', 'tunepipe', states), /checkpoint: sft: resumed from checkpoint-100: checkpoint-200 was never sealed \(its save was not confirmed finished\); moved to \/artifacts\/llama3-fintech\/sft\/abc\.broken\//);
  });
});
