import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANNOTATIONS, CheckError, LABELS, type CompiledPipeline, type KubeObject } from '@tunepipe/core';
import {
  checkCompiled,
  dependencyEdges,
  planDeployment,
  REPLACE_UNREADY_ANNOTATION,
  WAIT_FOR_ANNOTATION,
  JOB_FINISHED,
  workloadTimeoutSeconds,
  type DeploymentPlan,
} from '../src/index.ts';
import { editObject, graphEdges, seedPipeline, stageNamed } from './fixtures.ts';

/** Edges between stage workloads, written as `stage -> upstream stage`. */
function workloadEdges(compiled: CompiledPipeline, plan: DeploymentPlan): string[] {
  const stageOf = new Map(compiled.stages.map((s) => [`${s.workload.kind}/${s.workload.name}`, s.name]));
  return plan.edges
    .filter((e) => stageOf.has(e.from) && stageOf.has(e.to))
    .map((e) => `${stageOf.get(e.from)} -> ${stageOf.get(e.to)}`)
    .sort();
}

function codes(compiled: CompiledPipeline, options = {}): string[] {
  return checkCompiled(compiled, options).map((i) => i.code);
}

test('workload dependsOn edges are exactly the pipeline graph', () => {
  const compiled = seedPipeline();
  const plan = planDeployment(compiled);
  assert.deepEqual(workloadEdges(compiled, plan), graphEdges(compiled));
  assert.deepEqual(graphEdges(compiled), [
    'evaluate -> convert',
    'evaluate -> quantize',
    'merge -> fetch-model',
    'merge -> sft',
    'quantize -> convert',
    'quantize -> merge',
    'serve -> evaluate',
    'serve -> quantize',
    'sft -> convert',
    'sft -> fetch-model',
  ]);
  // The edges handed to each resource are the plan's edges, nothing more.
  const handed = plan.resources.flatMap((r) => r.dependsOn.map((to) => `${r.key} -> ${to}`)).sort();
  assert.deepEqual(handed, plan.edges.map((e) => `${e.from} -> ${e.to}`).sort());
  assert.deepEqual(plan.edges, dependencyEdges(compiled));
});

test('a Job waits for its ConfigMap; the serve Service waits for its Deployment', () => {
  const compiled = seedPipeline();
  const plan = planDeployment(compiled);
  const edges = new Set(plan.edges.map((e) => `${e.from} -> ${e.to}`));
  for (const stage of compiled.stages.filter((s) => s.workload.kind === 'Job')) {
    assert.ok(edges.has(`Job/${stage.resourceName} -> ConfigMap/${stage.resourceName}`), stage.name);
  }
  assert.ok(edges.has('Service/llama3-fintech-serve -> Deployment/llama3-fintech-serve'));
  // ConfigMaps and the Service wait for nothing upstream: only workloads follow the graph.
  for (const r of plan.resources.filter((r) => r.kind === 'ConfigMap')) assert.deepEqual(r.dependsOn, [], r.key);
  assert.deepEqual(plan.resources.find((r) => r.kind === 'Service')?.dependsOn, ['Deployment/llama3-fintech-serve']);
});

test('every edge points to an object registered earlier, so Pulumi gets real resources', () => {
  const plan = planDeployment(seedPipeline());
  const index = new Map(plan.resources.map((r, i) => [r.key, i]));
  for (const e of plan.edges) {
    assert.ok(index.has(e.to) && index.get(e.to)! < index.get(e.from)!, `${e.from} -> ${e.to}`);
  }
});

test('objects shared by the pipeline come before the workloads listed after them', () => {
  const compiled = seedPipeline();
  const shared: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'llama3-fintech-data-fintech-0badc0de', namespace: 'tunepipe' },
    immutable: true,
    data: { 'rows.jsonl': '{}' },
  };
  const withShared: CompiledPipeline = { ...compiled, objects: [shared, ...compiled.objects] };
  const plan = planDeployment(withShared);
  const workloads = withShared.stages.map((s) => `${s.workload.kind}/${s.workload.name}`);
  for (const w of workloads) assert.ok(plan.edges.some((e) => e.from === w && e.to === 'ConfigMap/llama3-fintech-data-fintech-0badc0de'), w);
  assert.equal(plan.resources[0]?.stage, undefined);
});

test('a 25-minute SFT gets a wait well over 25 minutes; annotation and customTimeouts agree', () => {
  const compiled = seedPipeline({ sftSeconds: 25 * 60 });
  const plan = planDeployment(compiled);
  const sft = stageNamed(compiled, 'sft');
  const job = plan.resources.find((r) => r.key === `Job/${sft.resourceName}`)!;
  assert.ok(job.timeoutSeconds! > 25 * 60, `${job.timeoutSeconds}`);
  // Default policy: twice the expected time plus 15 minutes for admission, scale-up and image pull.
  assert.equal(job.timeoutSeconds, 2 * 25 * 60 + 900);
  assert.equal(job.object.metadata?.annotations?.[ANNOTATIONS.pulumiTimeout], String(job.timeoutSeconds));
  for (const r of plan.resources) {
    if (r.workload) {
      const stage = compiled.stages.find((s) => s.name === r.stage)!;
      assert.ok(r.timeoutSeconds! > stage.expectedSeconds, r.key);
      assert.ok(r.timeoutSeconds! > 600, `${r.key}: must beat the provider's 10-minute default`);
    } else {
      assert.equal(r.timeoutSeconds, undefined, r.key);
      assert.equal(r.object.metadata?.annotations?.[ANNOTATIONS.pulumiTimeout], undefined, r.key);
    }
  }
});

test('the wait outlasts the Kubernetes deadline so DeadlineExceeded, not a Pulumi timeout, ends a slow stage', () => {
  const compiled = seedPipeline();
  const sft = stageNamed(compiled, 'sft');
  const slow = editObject(compiled, `Job/${sft.resourceName}`, (job) => {
    (job as { spec: { activeDeadlineSeconds: number } }).spec.activeDeadlineSeconds = 6 * 3600;
    return job;
  });
  const job = slow.objects.find((o) => o.kind === 'Job' && o.metadata?.name === sft.resourceName)!;
  assert.equal(workloadTimeoutSeconds(sft, job, { factor: 2, startupAllowanceSeconds: 900 }), 6 * 3600 + 900);
  assert.equal(workloadTimeoutSeconds(sft, job, { factor: 1, startupAllowanceSeconds: 0 }), 6 * 3600);
  const quick = stageNamed(compiled, 'convert');
  const quickJob = compiled.objects.find((o) => o.kind === 'Job' && o.metadata?.name === quick.resourceName)!;
  assert.equal(workloadTimeoutSeconds(quick, quickJob, { factor: 3, startupAllowanceSeconds: 60 }), 3 * 60 + 60);
});

test('a timeout the compiler already set is never shortened', () => {
  const compiled = seedPipeline();
  const sft = stageNamed(compiled, 'sft');
  const annotated = editObject(compiled, `Job/${sft.resourceName}`, (job) => {
    job.metadata!.annotations = { ...job.metadata!.annotations, [ANNOTATIONS.pulumiTimeout]: '99999' };
    return job;
  });
  const job = planDeployment(annotated).resources.find((r) => r.key === `Job/${sft.resourceName}`)!;
  assert.equal(job.timeoutSeconds, 99999);
  assert.equal(job.object.metadata?.annotations?.[ANNOTATIONS.pulumiTimeout], '99999');
});

test('Kueue queue label only on GPU Jobs, and only when a queue is configured', () => {
  const compiled = seedPipeline();
  const gpuJobs = compiled.stages.filter((s) => s.gpus > 0 && s.workload.kind === 'Job').map((s) => `Job/${s.resourceName}`);
  assert.deepEqual(compiled.stages.filter((s) => s.gpus > 0).map((s) => s.name), ['sft', 'quantize', 'evaluate', 'serve']);

  const queued = planDeployment(compiled, { queueName: 'tunepipe-gpu' });
  const labelled = queued.resources.filter((r) => r.object.metadata?.labels?.[LABELS.kueueQueue] !== undefined);
  assert.deepEqual(labelled.map((r) => r.key), gpuJobs);
  for (const r of labelled) {
    assert.equal(r.object.metadata?.labels?.[LABELS.kueueQueue], 'tunepipe-gpu');
    assert.deepEqual(r.ignoreChanges, ['spec.suspend']);
  }

  const unqueued = planDeployment(compiled);
  assert.equal(unqueued.resources.filter((r) => r.object.metadata?.labels?.[LABELS.kueueQueue] !== undefined).length, 0);
  assert.ok(unqueued.resources.every((r) => r.ignoreChanges.length === 0));
});

test('a queue label the compiler set must match the deployment queue', () => {
  const compiledWithQueue = seedPipeline({ queueName: 'tunepipe-gpu' });
  assert.deepEqual(codes(compiledWithQueue, { queueName: 'tunepipe-gpu' }), []);
  assert.deepEqual([...new Set(codes(compiledWithQueue, {}))], ['pulumi.queue-label']);
  assert.deepEqual([...new Set(codes(compiledWithQueue, { queueName: 'other' }))], ['pulumi.queue-label']);
  // Same label on a CPU Job: CPU stages must not wait behind GPU quota.
  const convert = stageNamed(compiledWithQueue, 'convert');
  const cpuQueued = editObject(compiledWithQueue, `Job/${convert.resourceName}`, (job) => {
    job.metadata!.labels = { ...job.metadata!.labels, [LABELS.kueueQueue]: 'tunepipe-gpu' };
    return job;
  });
  const issues = checkCompiled(cpuQueued, { queueName: 'tunepipe-gpu' });
  assert.equal(issues.length, 1);
  assert.match(issues[0]!.path, new RegExp(`Job/${convert.resourceName}`));
});

test('registered objects are the compiled objects plus only Pulumi metadata; the input is not mutated', () => {
  const compiled = seedPipeline();
  const plan = planDeployment(compiled, { queueName: 'q' });
  assert.deepEqual(compiled, seedPipeline(), 'planning must not mutate the compiled pipeline');
  assert.deepEqual(plan.resources.map((r) => r.key), compiled.objects.map((o) => `${o.kind}/${o.metadata?.name}`));
  plan.resources.forEach((r, i) => {
    const stripped = structuredClone(r.object);
    const annotations = stripped.metadata?.annotations;
    if (annotations) {
      delete annotations[ANNOTATIONS.pulumiTimeout];
      delete annotations[REPLACE_UNREADY_ANNOTATION];
      delete annotations[WAIT_FOR_ANNOTATION];
    }
    delete stripped.metadata?.labels?.[LABELS.kueueQueue];
    assert.deepEqual(stripped, compiled.objects[i], r.key);
    assert.equal(r.name, compiled.objects[i]?.metadata?.name);
    assert.equal(r.namespace, 'tunepipe');
  });
  // Jobs are replaced when a previous run failed; the serve Deployment rolls instead.
  for (const r of plan.resources) {
    assert.equal(r.object.metadata?.annotations?.[REPLACE_UNREADY_ANNOTATION], r.kind === 'Job' ? 'true' : undefined, r.key);
    // The wait ends on Complete or Failed, so a FailJob failure is reported at once (not as a timeout).
    assert.equal(r.object.metadata?.annotations?.[WAIT_FOR_ANNOTATION], r.kind === 'Job' ? JOB_FINISHED : undefined, r.key);
  }
});

test('an unchanged pipeline compiled twice plans identical names; a changed SFT renames only what depends on it', () => {
  const names = (c: CompiledPipeline) => planDeployment(c).resources.map((r) => r.key);
  assert.deepEqual(names(seedPipeline()), names(seedPipeline()));
  const before = new Set(names(seedPipeline()));
  const changed = names(seedPipeline({ learningRate: 2e-4 })).filter((k) => !before.has(k));
  assert.deepEqual(
    changed.map((k) => k.replace(/-[0-9a-f]{8}$/, '')),
    ['sft', 'merge', 'quantize', 'evaluate'].flatMap((s) => [`ConfigMap/llama3-fintech-${s}`, `Job/llama3-fintech-${s}`]),
  );
  // serve keeps its stable name and rolls through its pod template instead.
});

test('every structural problem is reported at once, with where it is', () => {
  const compiled = seedPipeline();
  const sft = stageNamed(compiled, 'sft');
  const objects: KubeObject[] = compiled.objects.map((o) => {
    if (o.kind === 'ConfigMap' && o.metadata?.name === sft.resourceName) return { ...o, metadata: { ...o.metadata, namespace: 'default' } };
    if (o.kind === 'Service') return { ...o, apiVersion: 'v2' } as unknown as KubeObject;
    return o;
  });
  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x', namespace: 'tunepipe' } } as unknown as KubeObject;
  const withStatus = { ...objects[0]!, metadata: { ...objects[0]!.metadata, name: 'extra' }, status: {} } as KubeObject;
  // The stage graph and unique names are compile()'s guarantees, not re-checked here.
  const broken: CompiledPipeline = { ...compiled, objects: [...objects, ingress, withStatus] };
  let error: unknown;
  try {
    planDeployment(broken);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof CheckError);
  const found = error.issues.map((i) => `${i.code} ${i.path}`);
  assert.deepEqual(found.sort(), [
    `pulumi.object-api-version objects[${objects.findIndex((o) => o.kind === 'Service')}].apiVersion`,
    `pulumi.object-field objects.ConfigMap/extra`,
    `pulumi.object-kind objects[${objects.length}].kind`,
    `pulumi.object-namespace objects.ConfigMap/${sft.resourceName}.metadata.namespace`,
  ].sort());
});

test('a stage whose objects are not all in compiled.objects is refused, not half-deployed', () => {
  const compiled = seedPipeline();
  const evaluate = stageNamed(compiled, 'evaluate');
  const missing: CompiledPipeline = { ...compiled, objects: compiled.objects.filter((o) => o.metadata?.name !== evaluate.resourceName) };
  assert.deepEqual(
    checkCompiled(missing).map((i) => `${i.code} ${String(i.value)}`),
    [`pulumi.stage-object-missing ConfigMap/${evaluate.resourceName}`, `pulumi.stage-object-missing Job/${evaluate.resourceName}`],
  );
});

test('credentials as literals are refused wherever they appear', () => {
  const compiled = seedPipeline();
  assert.deepEqual(codes(compiled), [], 'the fixture reads every credential from a secretKeyRef');
  const fetch = stageNamed(compiled, 'fetch-model');
  const serveName = 'llama3-fintech-serve';
  let leaky = editObject(compiled, `Job/${fetch.resourceName}`, (job) => {
    const container = (job as { spec: { template: { spec: { containers: { env: unknown[] }[] } } } }).spec.template.spec.containers[0]!;
    container.env.push({ name: 'HF_TOKEN', value: 'hf_abcdefghijklmnopqrstuvwxyzABCDEFGH' });
    return job;
  });
  leaky = editObject(leaky, `Deployment/${serveName}`, (deployment) => {
    const container = (deployment as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!;
    container.args.push('--api-key', 'sk-local');
    return deployment;
  });
  leaky = editObject(leaky, `ConfigMap/${fetch.resourceName}`, (map) => {
    (map as { data: Record<string, string> }).data['config.yaml'] = 'model_name_or_path: x\nhf_hub_token: hf_abcdefghijklmnopqrstuvwxyzABCDEFGH\n';
    return map;
  });
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'hub', namespace: 'tunepipe' }, stringData: { token: 'x' } } as KubeObject;
  leaky = { ...leaky, objects: [secret, ...leaky.objects] };
  const issues = checkCompiled(leaky).filter((i) => i.code === 'pulumi.secret-literal');
  assert.deepEqual(issues.map((i) => i.path).sort(), [
    `objects.ConfigMap/${fetch.resourceName}.data.config.yaml`,
    `objects.Deployment/${serveName}.spec.template.spec.containers[vllm].args[3]`,
    `objects.Job/${fetch.resourceName}.spec.template.spec.containers[main].env[HF_TOKEN]`,
    'objects.Secret/hub.stringData',
  ]);
  for (const issue of issues) assert.ok(!JSON.stringify(issue).includes('hf_abcdefghijklmnopqrstuvwxyz'), 'an issue must not repeat the secret');
});
