import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { classifyDeployment, classifyJob } from '../src/cluster/classify.ts';
import { descendantsOf, selectStages } from '../src/graph.ts';
import { formatStageLine, formatSummary, gateHeadline, gateHeadlineInLog, wantsColour } from '../src/progress/format.ts';
import { parseLog } from '../src/progress/parse.ts';
import { createConsoleReporter } from '../src/progress/reporter.ts';
import { installHint, versionFromImage } from '../src/local/preflight.ts';
import { planLocalStage } from '../src/local/plan.ts';
import { objectsToApply } from '../src/cluster/run.ts';
import { loadKubeConfig } from '../src/cluster/kube.ts';
import { overlapSkipper } from '../src/cluster/inspect.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StageState } from '../src/types.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { SEED_TRAIN_LOG } from './helpers.ts';

const job = (spec: Partial<V1Job['spec']> = {}, conditions: { type: string; status: string; reason?: string; message?: string }[] = [], labels: Record<string, string> = {}): V1Job =>
  ({ metadata: { name: 'j', labels }, spec: { template: {}, backoffLimit: 2, ...spec }, status: { conditions } }) as V1Job;
let n = 0;
const pod = (status: Record<string, unknown>, extra: Record<string, unknown> = {}): V1Pod =>
  ({ metadata: { name: `p${++n}`, creationTimestamp: new Date(1_000_000 + n * 1000) }, spec: { containers: [{ name: 'main' }] }, status, ...extra }) as V1Pod;
const running = () => pod({ phase: 'Running', containerStatuses: [{ name: 'main', state: { running: {} } }] });
const preempted = () =>
  pod({
    phase: 'Failed',
    conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler' }],
    containerStatuses: [{ name: 'main', state: { terminated: { exitCode: 137, reason: 'Error' } } }],
  });

test('classifyJob', () => {
  assert.deepEqual(
    [classifyJob(job({ suspend: true }, [], { 'kueue.x-k8s.io/queue-name': 'gpu' }), [])].map((s) => [s.status, s.detail]),
    [['queued', 'waiting for Kueue to admit it (queue gpu)']],
  );
  const pending = pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.' }] });
  const q = classifyJob(job(), [pending]);
  assert.equal(q.status, 'queued');
  assert.equal(q.detail, 'no node can take the pod yet: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.');
  assert.equal(q.logReadable, false);

  const pulling = pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }], containerStatuses: [{ name: 'main', state: { waiting: { reason: 'ContainerCreating' } } }] });
  assert.deepEqual([classifyJob(job(), [pulling]).status, classifyJob(job(), [pulling]).detail], ['starting', 'ContainerCreating']);

  const r = classifyJob(job(), [running()]);
  assert.deepEqual([r.status, r.currentContainer, r.logReadable], ['running', 'main', true]);

  const lost = classifyJob(job(), [preempted()]);
  assert.equal(lost.status, 'retrying');
  assert.match(lost.detail ?? '', /lost \(PreemptionByScheduler\); Kubernetes starts a new one/);
  const resumed = classifyJob(job(), [preempted(), running()]);
  assert.deepEqual([resumed.status, resumed.preemptions, resumed.attempts], ['running', 1, 2]);
  assert.match(resumed.detail ?? '', /resumed after pod lost 1×/);

  const crashed = pod({ phase: 'Failed', containerStatuses: [{ name: 'main', state: { terminated: { exitCode: 1, reason: 'Error' } } }] });
  assert.match(classifyJob(job(), [crashed]).detail ?? '', /attempt failed: Error \(exit code 1\); retry 1 of 2/);

  const failed = classifyJob(job({}, [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }]), [crashed]);
  assert.equal(failed.status, 'failed');
  assert.deepEqual(failed.failure, { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit; Error (exit code 1)', pod: crashed.metadata!.name });

  assert.equal(classifyJob(job({}, [{ type: 'Complete', status: 'True' }]), []).status, 'done');

  // A gated evaluation trains in an init container: the pod is Pending but the work runs.
  const init = pod(
    { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }], initContainerStatuses: [{ name: 'main', state: { running: {} } }], containerStatuses: [{ name: 'gate', state: { waiting: { reason: 'PodInitializing' } } }] },
    { spec: { initContainers: [{ name: 'main' }], containers: [{ name: 'gate' }] } },
  );
  const gated = classifyJob(job(), [init]);
  assert.deepEqual([gated.status, gated.currentContainer, gated.logReadable], ['running', 'main', true]);
});

test('classifyDeployment', () => {
  const d = (status: Record<string, unknown>, generation = 1) => ({ metadata: { generation }, spec: { replicas: 1 }, status }) as never;
  assert.equal(classifyDeployment(d({ observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1, conditions: [{ type: 'Available', status: 'True' }] }), []).status, 'done');
  assert.equal(classifyDeployment(d({ observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1, conditions: [{ type: 'Available', status: 'True' }] }, 2), []).status, 'starting', 'old generation is not done');
  const stuck = classifyDeployment(d({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }] }), []);
  assert.deepEqual([stuck.status, stuck.failure?.reason], ['failed', 'ProgressDeadlineExceeded']);
});

test('selectStages: --force takes descendants; --only limits; bad names listed together', () => {
  const p = makePipeline();
  assert.deepEqual([...descendantsOf(p, ['merge'])].sort(), ['evaluate', 'merge', 'quantize', 'serve']);
  const sel = selectStages(p, { force: ['sft'] });
  assert.equal(sel.selected.size, 7);
  assert.deepEqual([...sel.forced].sort(), ['evaluate', 'merge', 'quantize', 'serve', 'sft']);
  const only = selectStages(p, { only: ['merge'], force: ['sft'] });
  assert.deepEqual([...only.selected], ['merge']);
  assert.deepEqual([...only.forced], ['merge']);
  assert.throws(() => selectStages(p, { only: ['x'], force: ['y'] }), /--only "x".*\n.*--force "y"/s);
});

test('objectsToApply: namespace from the run, force env only on forced Jobs, nothing mutated', () => {
  const p = makePipeline();
  const sft = p.stages.find((s) => s.name === 'sft')!;
  const before = JSON.stringify(sft.objects);
  const objects = objectsToApply(sft, 'team-a', { forced: true });
  assert.ok(objects.every((o) => o.metadata?.namespace === 'team-a'));
  const env = (objects[1] as { spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } } }).spec.template.spec.containers[0]!.env;
  assert.deepEqual(env.filter((e) => e.name === 'TUNEPIPE_FORCE'), [{ name: 'TUNEPIPE_FORCE', value: '1' }]);
  assert.equal(JSON.stringify(sft.objects), before);
  const plain = objectsToApply(sft, 'tunepipe');
  assert.ok(!JSON.stringify(plain).includes('TUNEPIPE_FORCE'));
});

const state = (over: Partial<StageState>): StageState => ({
  stage: 'sft',
  kind: 'sft',
  hash: 'h',
  status: 'running',
  attempts: 1,
  preemptions: 0,
  expectedSeconds: 1800,
  ...over,
});

test('formatStageLine: one readable line per status', () => {
  const opts = { nameWidth: 8, bar: true, now: 1_000_000 };
  const upTo = SEED_TRAIN_LOG.findIndex((l) => l.includes(' 90/300 '));
  const progress = parseLog(`${SEED_TRAIN_LOG.slice(0, upTo + 2).join('\n')}\n`);
  assert.equal(
    formatStageLine(state({ progress }), opts),
    'sft       ▶ running  ██████░░░░░░░░░░░░░░  30%  90/300 · loss 0.8703 · lr 3.99e-05 · epoch 2.93 · 1848 tok/s · ETA 17:33',
  );
  assert.equal(
    formatStageLine(state({ progress }), { ...opts, bar: false }),
    'sft       ▶ running   30%  90/300 · loss 0.8703 · lr 3.99e-05 · epoch 2.93 · 1848 tok/s · ETA 17:33',
  );
  assert.equal(formatStageLine(state({ status: 'queued', detail: 'waiting for Kueue to admit it (queue gpu)' }), opts), 'sft       ⏸ queued   waiting for Kueue to admit it (queue gpu)');
  assert.equal(formatStageLine(state({ status: 'running', startedAt: 1_000_000 - 75_000 }), opts), 'sft       ▶ running  1m15s elapsed · ~30m00s expected');
  assert.equal(formatStageLine(state({ status: 'cached', detail: 'Job x already complete' }), opts), 'sft       ✓ cached   Job x already complete');
  assert.equal(formatStageLine(state({ status: 'failed', failure: { reason: 'BackoffLimitExceeded', message: 'limit\nmore', logTail: [] } }), opts), 'sft       ✗ failed   BackoffLimitExceeded: limit');
  const done = parseLog(`${SEED_TRAIN_LOG.join('\n')}\n`);
  assert.equal(
    formatStageLine(state({ status: 'done', progress: done, startedAt: 0, finishedAt: 1_530_000 }), opts),
    'sft       ✓ done     in 25m30s · train_loss 0.7140 · train_runtime 25:30 · eval_loss 1.0199',
  );
});

test('formatSummary: detach says how to look, follow, reattach and stop', () => {
  const text = formatSummary({
    pipeline: 'llama3-fintech',
    target: 'cluster',
    outcome: 'detached',
    where: 'ml',
    startedAt: 0,
    finishedAt: 65_000,
    stages: [state({ status: 'running' })],
  });
  assert.match(text, /^Detached after 1m05s; the Jobs keep running in namespace ml\./);
  assert.match(text, /tunepipe status llama3-fintech --namespace ml/);
  assert.match(text, /tunepipe logs llama3-fintech sft -f --namespace ml/);
  assert.match(text, /tunepipe run llama3-fintech --target cluster --namespace ml +reattach/);
  assert.match(text, /tunepipe cancel llama3-fintech --namespace ml/);
});

test('TTY reporter redraws the stage lines in place (cli-progress), coloured unless NO_COLOR', async () => {
  const draw = async (colour: boolean) => {
    let text = '';
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer, _e, cb) {
          text += chunk.toString();
          cb();
        },
      }),
      { isTTY: true, columns: 160, cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true },
    );
    const reporter = createConsoleReporter({ stream: stream as never, tty: true, colour });
    const stages = [state({ status: 'waiting' }), state({ stage: 'merge', kind: 'merge', status: 'waiting' })];
    reporter.start({ pipeline: 'p', target: 'cluster', where: 'ns', stages });
    reporter.update(state({ status: 'queued', detail: 'waiting for Kueue to admit it (queue gpu)' }));
    await new Promise((r) => setTimeout(r, 200));
    reporter.finish({ pipeline: 'p', target: 'cluster', outcome: 'succeeded', where: 'ns', startedAt: 0, finishedAt: 1000, stages });
    return text;
  };
  const plain = await draw(false);
  assert.match(plain, /sft +⏸ queued +waiting for Kueue/);
  assert.match(plain, /merge +· waiting/);
  assert.match(plain, /\u001b\[\?25l/, 'cursor hidden while redrawing');
  assert.doesNotMatch(plain, /\u001b\[33m/);
  assert.match(await draw(true), /sft +\u001b\[33m⏸ queued +\u001b\[39m waiting for Kueue/, 'queued in yellow');
});

test('colour: a terminal without NO_COLOR; never a pipe; FORCE_COLOR wins', () => {
  assert.equal(wantsColour({ isTTY: true }, {}), true);
  assert.equal(wantsColour({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(wantsColour({ isTTY: true }, { TERM: 'dumb' }), false);
  assert.equal(wantsColour({ isTTY: false }, {}), false);
  assert.equal(wantsColour({ isTTY: false }, { FORCE_COLOR: '1' }), true);
  assert.equal(wantsColour({ isTTY: true }, { NO_COLOR: '1', FORCE_COLOR: '1' }), false, 'NO_COLOR is the user saying no');
});

test('a failed gate is headlined by its verdict', () => {
  const rule = (metric: 'predict_bleu-4' | 'predict_rouge-l', comparison: 'min' | 'minOverBaseline', value: number) => ({ metric, comparison, value });
  assert.equal(
    gateHeadline({ passed: false, verdicts: [{ rule: rule('predict_bleu-4', 'min', 20), passed: false, actual: 18.2, required: 20, message: '' }] }),
    'gate failed: bleu4 18.2 < min 20',
  );
  assert.equal(
    gateHeadline({
      passed: false,
      verdicts: [
        { rule: rule('predict_bleu-4', 'min', 20), passed: true, actual: 21, required: 20, message: '' },
        { rule: rule('predict_rouge-l', 'minOverBaseline', 5), passed: false, actual: 30, baseline: 27.5, required: 32.5, message: '' },
        { rule: rule('predict_bleu-4', 'min', 20), passed: false, message: '' },
      ],
    }),
    'gate failed: rougeL 30 < baseline 27.5 + 5; bleu4 missing from the results',
  );
  assert.equal(gateHeadlineInLog(['FAIL  predict_bleu-4 = 18.20 < 20.00 (required)', 'gate failed: bleu4 18.2 < min 20']), 'gate failed: bleu4 18.2 < min 20');
  assert.equal(gateHeadlineInLog(['Traceback', 'exit 1']), undefined);
});

test('install hints pin the version of the image the cluster would run', () => {
  assert.equal(versionFromImage('hiyouga/llamafactory:0.9.4'), '0.9.4');
  assert.equal(versionFromImage('vllm/vllm-openai:v0.11.0'), '0.11.0');
  assert.equal(versionFromImage('ghcr.io/tunepipe/llamafactory-gptq:0.9.4-0.1.0'), '0.9.4');
  assert.equal(versionFromImage('registry:5000/img@sha256:abc'), undefined);
  assert.equal(installHint('vllm', []), 'pip install "vllm"');
  const serve = makePipeline().stages.find((s) => s.kind === 'serve')!;
  const plan = planLocalStage({ ...serve, image: 'vllm/vllm-openai:v0.11.0' }, { artifactsDir: '/tmp/a', env: {} });
  assert.equal(installHint('vllm', [plan]), 'pip install "vllm==0.11.0"');
});

test('loadKubeConfig: an explicit file, a context, and clear errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-kc-'));
  try {
    const file = join(dir, 'config');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: a, cluster: {server: "https://a.example:6443"}}, {name: b, cluster: {server: "https://b.example:6443"}}]',
        'users: [{name: u, user: {token: t}}]',
        'contexts: [{name: ctx-a, context: {cluster: a, user: u}}, {name: ctx-b, context: {cluster: b, user: u, namespace: ml}}]',
        'current-context: ctx-a',
      ].join('\n'),
    );
    assert.equal((await loadKubeConfig({ kubeconfig: file })).getCurrentCluster()?.server, 'https://a.example:6443');
    assert.equal((await loadKubeConfig({ kubeconfig: file, context: 'ctx-b' })).getCurrentCluster()?.server, 'https://b.example:6443');
    await assert.rejects(loadKubeConfig({ kubeconfig: file, context: 'prod' }), /no context "prod" in the kubeconfig; contexts are ctx-a, ctx-b/);
    const saved = { KUBECONFIG: process.env['KUBECONFIG'], HOME: process.env['HOME'], KUBERNETES_SERVICE_HOST: process.env['KUBERNETES_SERVICE_HOST'] };
    try {
      process.env['KUBECONFIG'] = join(dir, 'missing');
      process.env['HOME'] = dir;
      delete process.env['KUBERNETES_SERVICE_HOST'];
      await assert.rejects(loadKubeConfig(), /no Kubernetes cluster configured: set KUBECONFIG or create ~\/\.kube\/config .*or run with --target local/);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('overlapSkipper drops the replayed overlap of a resumed log stream, and only that', async () => {
  const collect = () => {
    let text = '';
    return { emit: (t: string) => (text += t), text: () => text };
  };
  const a = collect();
  const s = overlapSkipper(['l1', 'l2', 'l3'], a.emit);
  s.push('l2\nl3\nl4\n');
  s.push('l5\n');
  s.end();
  assert.equal(a.text(), 'l4\nl5\n');

  const b = collect();
  const fresh = overlapSkipper(['l1', 'l2'], b.emit);
  fresh.push('x1\nx2\nx3\n');
  assert.equal(b.text(), 'x1\nx2\nx3\n', 'no overlap: everything passes');

  const c = collect();
  const slow = overlapSkipper(['l1', 'l2', 'l3', 'l4'], c.emit, 20);
  slow.push('l4\nl5\n');
  assert.equal(c.text(), '', 'held while it could still be overlap');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.text(), 'l5\n', 'a slow stream is released after holdMs');
  slow.push('l6\n');
  assert.equal(c.text(), 'l5\nl6\n');
});
