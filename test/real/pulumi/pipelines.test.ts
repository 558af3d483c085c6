// `pulumi up` of infra/pipelines for both example pipelines with the real engine and Kubernetes
// provider, against the local control plane (Kueue admits the GPU Jobs, kwok runs their pods).
// The tests run in order and share one cluster and one pipelines stack: each edit builds on the
// revision before it, as commits to a repository would.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { automation } from '@pulumi/pulumi';
import { synthPipeline } from '@tunepipe/workspace';
import type { CompiledPipeline } from '@tunepipe/core';
import { pipelinesProgram } from '../../../infra/pipelines/src/program.ts';
import { compileFromRepo } from '../../../infra/pipelines/src/repo.ts';
import { startCluster } from '../support/cluster.ts';
import { type Backend, type Recorded, applyEdits, changed, configMap, expectProgramFailure, inlineStack, localBackend, recorder, repoCopy, repoRoot } from './engine.ts';
import { NAMESPACE, clusterStack, inlineKubeconfig, prepareStorage } from './platform.ts';

const PIPELINES = ['llama3-fintech', 'qwen-support'] as const;
const STACK = 'local';
const PLACEMENT = { namespace: NAMESPACE, artifactsClaim: 'tunepipe-artifacts', queueName: 'tunepipe' };
/** Pod run time kwok simulates for every stage. */
const POD_RUN_MS = 1000;
/**
 * Each step takes well under a minute here; the planner's own waits are 20+ minutes, so a step
 * that hangs (a rollout that cannot be scheduled, a wait that never ends) fails at this bound.
 */
const STEP_TIMEOUT_MS = 150_000;

let cluster: Awaited<ReturnType<typeof startCluster>>;
let backend: Backend;
/** The repository revision the pipelines stack was last deployed from. */
let deployedRoot: string;

const LR_EDIT = { 'pipelines/llama3-fintech/pipeline.ts': (t: string) => t.replace('learning_rate: 5e-5', 'learning_rate: 1e-4') };
const SERVE_EDIT = {
  'pipelines/llama3-fintech/pipeline.ts': (t: string) => t.replace('maxModelLen: 4096', 'maxModelLen: 2048'),
  'pipelines/qwen-support/pipeline.ts': (t: string) => t.replace('maxModelLen: 8192', 'maxModelLen: 4096'),
};

before(async () => {
  cluster = await startCluster({
    // Both serve Deployments stay up (1 and 2 L4s) and roll with maxSurge 1 (the old model serves
    // until the new one is ready), so a rollout needs their GPUs twice; the Qwen SFT takes 2 A100s.
    gpuNodes: [
      { type: 'l4', count: 2, gpus: 4 },
      { type: 't4', count: 1, gpus: 1 },
      { type: 'a100-80gb', count: 1, gpus: 2 },
    ],
    cpuNodes: 1,
    podRunMs: POD_RUN_MS,
  });
  backend = await localBackend();
  await prepareStorage(cluster);
  const platform = await clusterStack(backend, STACK, inlineKubeconfig(cluster).text);
  await platform.up();
});

after(async () => {
  await cluster?.stop();
  backend?.dispose();
});

/** The pipelines stack deploying both examples from the repository copy at `root`. */
async function pipelinesStack(root: string): Promise<automation.Stack> {
  const stack = await inlineStack(backend, 'tunepipe-pipelines', STACK, () => pipelinesProgram(compileFromRepo(root)));
  await stack.setAllConfig(configMap('tunepipe', { pipelines: [...PIPELINES], clusterStack: `organization/tunepipe-cluster/${STACK}` }));
  return stack;
}

async function up(root: string, label: string): Promise<{ rec: Recorded; result: automation.UpResult }> {
  const stack = await pipelinesStack(root);
  const { onEvent, onOutput, recorded } = recorder();
  const started = Date.now();
  const result = await stack.up({ onEvent, onOutput });
  process.stderr.write(`[pulumi] infra/pipelines ${label}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  deployedRoot = root;
  return { rec: recorded, result };
}

async function compiledAt(root: string): Promise<CompiledPipeline[]> {
  return Promise.all(PIPELINES.map(async (name) => (await synthPipeline(root, name, PLACEMENT)).compiled));
}

/** `Kind/name` → `<pipeline>/<stage>` for every object of the compiled pipelines. */
function stageOf(compiled: readonly CompiledPipeline[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const p of compiled) for (const s of p.stages) for (const o of s.objects) map.set(`${o.kind}/${o.metadata?.name}`, `${p.pipeline}/${s.name}`);
  return map;
}

/** The stages whose objects an operation touched, by operation. */
function touchedStages(rec: Recorded, ...revisions: CompiledPipeline[][]): Set<string> {
  const owner = new Map([...revisions.flatMap((r) => [...stageOf(r)])]);
  const stages = new Set<string>();
  for (const keys of Object.values(changed(rec))) {
    for (const key of keys) {
      const stage = owner.get(key);
      assert.ok(stage, `pulumi touched ${key}, which belongs to no stage`);
      stages.add(stage);
    }
  }
  return stages;
}

/** `tunepipe diff` (the real CLI, against HEAD) in a git repository: the stages it says will run, as `<pipeline>/<stage>`. */
function tunepipeDiff(gitRoot: string): Set<string> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'packages/cli/src/main.ts'), 'diff', '--base', 'HEAD', '--format', 'markdown'], { cwd: gitRoot, encoding: 'utf8' });
  assert.equal(r.status, 0, `tunepipe diff failed:\n${r.stdout}${r.stderr}`);
  const runs = new Set<string>();
  let pipeline = '';
  for (const line of r.stdout.split('\n')) {
    const heading = /^### ([a-z0-9-]+)/.exec(line);
    if (heading) pipeline = heading[1]!;
    const row = /^\| `([^`]+)` \| (?:\*\*)?([^|*]+?)(?:\*\*)? \|/.exec(line);
    if (row && row[2] !== 'cached') runs.add(`${pipeline}/${row[1]}`);
  }
  return runs;
}

/** A repository copy committed at `from`'s content, then edited in its working tree (what `tunepipe diff` compares). */
function editedRepo(name: string, base: Record<string, (t: string) => string>, edits: Record<string, (t: string) => string>): string {
  const dir = repoCopy(name, base, backend.dir);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q');
  git('add', '-A', '.', ':!node_modules');
  git('commit', '-q', '-m', 'base');
  applyEdits(dir, edits);
  return dir;
}

interface LiveJob {
  metadata: { name: string; creationTimestamp: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  status?: { completionTime?: string; conditions?: { type: string; status: string; reason?: string }[] };
}

const isComplete = (job: LiveJob) => job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ?? false;

test('pulumi up deploys both pipelines in graph order and waits for every Job, within the planner timeouts', { timeout: STEP_TIMEOUT_MS }, async () => {
  const base = repoCopy('base', {}, backend.dir);
  const { rec, result } = await up(base, 'first pulumi up (both pipelines)');
  assert.equal(result.summary.result, 'succeeded');
  const compiled = await compiledAt(base);
  const outputs = result.outputs['pipelines']!.value as Record<string, { stages: Record<string, { workload: string; dependsOn: string[]; timeoutSeconds: number; kind: string }> }>;

  const started = new Map(rec.steps.map((s) => [`${s.type.split(':').at(-1)}/${s.name}`, s.seq]));
  const finished = new Map(rec.steps.map((s) => [`${s.type.split(':').at(-1)}/${s.name}`, rec.finished.get(s.urn)]));
  for (const pipeline of compiled) {
    const stages = outputs[pipeline.pipeline]!.stages;
    assert.deepEqual(Object.keys(stages).sort(), pipeline.stages.map((s) => s.name).sort());
    for (const [name, stage] of Object.entries(stages)) {
      // Graph order: a workload's create starts only after each upstream workload's create finished.
      for (const upstream of stage.dependsOn) {
        const u = stages[upstream]!.workload;
        assert.ok((started.get(stage.workload) ?? 0) > (finished.get(u) ?? Infinity), `${pipeline.pipeline}: ${name} (${stage.workload}) started before ${upstream} (${u}) was done`);
      }
      if (!stage.workload.startsWith('Job/')) continue;
      // Awaited until done: Pulumi recorded the Job only once Kubernetes said Complete, within its timeout.
      const job = (await cluster.api.get('batch/v1', 'Job', stage.workload.slice(4), NAMESPACE)) as LiveJob;
      assert.ok(isComplete(job), `${stage.workload} is not complete`);
      assert.equal(job.metadata.annotations?.['pulumi.com/timeoutSeconds'], String(stage.timeoutSeconds));
      const ranSeconds = (Date.parse(job.status!.completionTime!) - Date.parse(job.metadata.creationTimestamp)) / 1000;
      assert.ok(ranSeconds < stage.timeoutSeconds, `${stage.workload} ran ${ranSeconds} s, beyond its ${stage.timeoutSeconds} s timeout`);
    }
  }
  // GPU Jobs went through Kueue for real: a Workload per GPU Job, admitted and finished.
  const gpuJobs = compiled.flatMap((p) => p.stages.filter((s) => s.gpus > 0 && s.workload.kind === 'Job').map((s) => s.workload.name));
  const workloads = (await cluster.api.list('kueue.x-k8s.io/v1beta2', 'Workload', NAMESPACE)) as { metadata: { ownerReferences?: { name: string }[] }; status?: { conditions?: { type: string; status: string }[] } }[];
  for (const job of gpuJobs) {
    const w = workloads.find((x) => x.metadata.ownerReferences?.some((o) => o.name === job));
    assert.ok(w, `no Kueue Workload for GPU Job ${job}`);
    assert.ok(w.status?.conditions?.some((c) => c.type === 'Admitted' && c.status === 'True'), `Workload of ${job} was never admitted`);
  }
  // The endpoints roll out last and are available.
  for (const name of PIPELINES) {
    const deployment = await cluster.api.get('apps/v1', 'Deployment', `${name}-serve`, NAMESPACE);
    assert.ok(deployment.status.availableReplicas >= 1, `${name}-serve is not available`);
  }
});

test('a second pulumi up shows no changes', { timeout: STEP_TIMEOUT_MS }, async () => {
  const { rec, result } = await up(deployedRoot, 'second pulumi up (no changes)');
  assert.deepEqual(changed(rec), {});
  assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ['same']);
});

test('a learning-rate edit re-runs exactly the stages `tunepipe diff` lists; the old Jobs go', { timeout: STEP_TIMEOUT_MS }, async () => {
  const before = await compiledAt(deployedRoot);
  const root = editedRepo('lr', {}, LR_EDIT);
  const expected = tunepipeDiff(root);
  assert.deepEqual([...expected].sort(), ['llama3-fintech/eval-adapter', 'llama3-fintech/merge', 'llama3-fintech/quantize', 'llama3-fintech/serve', 'llama3-fintech/sft']);
  const { rec } = await up(root, 'learning-rate edit');
  const afterEdit = await compiledAt(root);
  assert.deepEqual([...touchedStages(rec, before, afterEdit)].sort(), [...expected].sort());

  const ops = changed(rec);
  // Content-addressed names: a changed stage is a new Job (create) and the old one's delete; the
  // engine never replaces a Job in place, and the endpoint (stable name) is updated.
  assert.equal(ops['replace'], undefined, `replaced: ${ops['replace']?.join(', ')}`);
  const createdJobs = (ops['create'] ?? []).filter((k) => k.startsWith('Job/'));
  const deletedJobs = (ops['delete'] ?? []).filter((k) => k.startsWith('Job/'));
  assert.equal(createdJobs.length, 5, `created Jobs: ${createdJobs.join(', ')}`);
  assert.equal(deletedJobs.length, 5, `deleted Jobs: ${deletedJobs.join(', ')}`);
  // The endpoint keeps its stable names and is updated in place (its labels carry the stage hash).
  assert.deepEqual(ops['update'], ['Deployment/llama3-fintech-serve', 'Service/llama3-fintech-serve']);
  for (const key of deletedJobs) assert.equal(await cluster.api.get('batch/v1', 'Job', key.slice(4), NAMESPACE), undefined, `${key} is still there`);
  for (const key of createdJobs) assert.ok(isComplete((await cluster.api.get('batch/v1', 'Job', key.slice(4), NAMESPACE)) as LiveJob), `${key} did not complete`);
});

test('a serve-only edit rolls the Deployments and touches no batch stage', { timeout: STEP_TIMEOUT_MS }, async () => {
  const before = await compiledAt(deployedRoot);
  const replicaSetsBefore = await replicaSetsOf();
  const root = editedRepo('serve', LR_EDIT, SERVE_EDIT);
  assert.deepEqual([...tunepipeDiff(root)].sort(), ['llama3-fintech/serve', 'qwen-support/serve']);
  const { rec } = await up(root, 'serve-only edit');
  const afterEdit = await compiledAt(root);
  assert.deepEqual([...touchedStages(rec, before, afterEdit)].sort(), ['llama3-fintech/serve', 'qwen-support/serve']);
  const ops = changed(rec);
  assert.deepEqual(ops['update'], ['Deployment/llama3-fintech-serve', 'Deployment/qwen-support-serve', 'Service/llama3-fintech-serve', 'Service/qwen-support-serve']);
  // The only Job touched is llama3-fintech's post-rollout check, which belongs to its serve stage.
  const jobs = Object.values(ops).flat().filter((k) => k.startsWith('Job/'));
  assert.ok(jobs.every((k) => k.startsWith('Job/llama3-fintech-serve-verify-')), `Jobs touched: ${jobs.join(', ')}`);
  // Rolled: each Deployment got a new ReplicaSet whose pods run the new --max-model-len.
  const replicaSetsAfter = await replicaSetsOf();
  for (const [name, value] of [['llama3-fintech-serve', '2048'], ['qwen-support-serve', '4096']] as const) {
    assert.equal(replicaSetsAfter[name]!.length, replicaSetsBefore[name]!.length + 1, `${name} did not roll`);
    const deployment = await cluster.api.get('apps/v1', 'Deployment', name, NAMESPACE);
    assert.ok(JSON.stringify(deployment.spec.template.spec.containers).includes(value), `${name} does not serve with max model length ${value}`);
    assert.equal(deployment.status.updatedReplicas, deployment.spec.replicas);
  }
});

test('a failing Job fails pulumi up with the stage\'s reason, and the next pulumi up re-runs it', { timeout: 2 * STEP_TIMEOUT_MS }, async () => {
  const reason = 'gate failed: bleu4 12.3 < 20';
  await cluster.setPodOutcomes({ [`${NAMESPACE}/eval-adapter`]: { outcome: 'fail', exitCode: 3, reason: 'Error', message: reason } });
  try {
    // The deployed revision with another learning rate: eval-adapter (and everything after) re-runs.
    const llama = (t: string) => SERVE_EDIT['pipelines/llama3-fintech/pipeline.ts'](t.replace('learning_rate: 5e-5', 'learning_rate: 2e-4'));
    const root = repoCopy('failing', { ...SERVE_EDIT, 'pipelines/llama3-fintech/pipeline.ts': llama }, backend.dir);
    const serveHash = (await compiledAt(root))[0]!.stages.find((s) => s.name === 'serve')!.hash.slice(0, 8);
    const started = Date.now();
    const failing = recorder();
    const { error } = await expectProgramFailure(async () => (await pipelinesStack(root)).up({ onEvent: failing.onEvent }));
    const failedRun = failing.recorded;
    const seconds = (Date.now() - started) / 1000;
    const message = String(error.message);
    assert.match(message, /llama3-fintech-eval-adapter-[0-9a-f]{8}/, 'the error names the stage\'s Job');
    assert.match(message, /stage eval-adapter failed — Job llama3-fintech-eval-adapter-[0-9a-f]{8}: PodFailurePolicy: Container gate for pod \S+ failed with exit code 3/, `the stage's reason is missing from:\n${message.slice(-3000)}`);
    assert.match(message, /Exit code 3 is a failed evaluation gate/);
    assert.doesNotMatch(message, /timed out/i, 'a failed Job must not be reported as a timeout');
    assert.ok(seconds < 120, `pulumi up took ${seconds} s to report a Job that failed at once`);
    // Nothing after the failed stage was started, and nothing was deleted: the endpoint still
    // serves the previous model.
    const serve = await cluster.api.get('apps/v1', 'Deployment', 'llama3-fintech-serve', NAMESPACE);
    assert.ok(serve, 'the serving Deployment was deleted after a failed stage');
    assert.notEqual(serve.metadata.labels['tunepipe.dev/stage-hash'], serveHash);
    assert.ok(await cluster.api.get('v1', 'Service', 'llama3-fintech-serve', NAMESPACE), 'the serving Service was deleted after a failed stage');
    assert.equal(changed(failedRun).delete, undefined, 'a failed update must not delete anything');

    await cluster.setPodOutcomes({});
    const retry = await up(root, 'after the failure is fixed');
    assert.equal(retry.result.summary.result, 'succeeded');
    // The failed Job (same name: same inputs) is replaced and runs again (pulumi.com/replaceUnready).
    const evalAdapter = (await compiledAt(root))[0]!.stages.find((s) => s.name === 'eval-adapter')!.workload.name;
    assert.ok(changed(retry.rec).replace?.includes(`Job/${evalAdapter}`), `replaced: ${changed(retry.rec).replace?.join(', ')}`);
    assert.ok(isComplete((await cluster.api.get('batch/v1', 'Job', evalAdapter, NAMESPACE)) as LiveJob));
  } finally {
    await cluster.setPodOutcomes({});
  }
});

test('pulumi destroy leaves nothing of the pipelines behind', { timeout: STEP_TIMEOUT_MS }, async () => {
  const stack = await pipelinesStack(deployedRoot);
  await stack.destroy();
  const leftovers = async () => {
    const out: string[] = [];
    for (const [apiVersion, kind] of [['batch/v1', 'Job'], ['v1', 'Pod'], ['v1', 'ConfigMap'], ['apps/v1', 'Deployment'], ['apps/v1', 'ReplicaSet'], ['v1', 'Service'], ['kueue.x-k8s.io/v1beta2', 'Workload']] as const) {
      for (const o of await cluster.api.list(apiVersion, kind, NAMESPACE, 'app.kubernetes.io/name=tunepipe')) out.push(`${kind}/${o.metadata.name}`);
    }
    return out;
  };
  const deadline = Date.now() + 60_000;
  let left = await leftovers();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    left = await leftovers();
  }
  assert.deepEqual(left, []);
  // The platform (cluster stack) is untouched.
  assert.ok(await cluster.api.get('v1', 'Secret', 'tunepipe-vllm-api-key', NAMESPACE));
});

async function replicaSetsOf(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const rs of await cluster.api.list('apps/v1', 'ReplicaSet', NAMESPACE)) {
    const owner = rs.metadata.ownerReferences?.find((o: { kind: string }) => o.kind === 'Deployment')?.name;
    if (owner) (out[owner] ??= []).push(rs.metadata.name);
  }
  return out;
}
