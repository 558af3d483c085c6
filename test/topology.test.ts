// One sft stage compiled at 1×1, 1×8, 2×8 and 4×8: golden objects under test/fixtures/topology/,
// and the ranks, addresses and ports every pod of a gang would see, resolved as Kubernetes would.
// UPDATE_GOLDEN=1 rewrites the goldens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { Job } from 'kubernetes-models/batch/v1';
import type { Container, EnvVar, PodSpec } from 'kubernetes-types/core/v1.js';
import type { Job as JobType } from 'kubernetes-types/batch/v1.js';
import { check, compile, definePipeline, LLAMA3_8B, LABELS, type CompileContext, type CompiledStage, type DatasetSourceInput, type JobSet, type KubeObject, type TrainingStrategy } from '@tunepipe/core';

const fixtures = fileURLToPath(new URL('./fixtures/topology/', import.meta.url));

function source(name: string, digest: string): DatasetSourceInput {
  const row = gzipSync(JSON.stringify([{ instruction: 'Who are you?', input: '', output: 'I am a model.' }])).toString('base64');
  return { name, digest, descriptor: { format: 'alpaca', files: [`${name}.json`] }, files: [{ path: `${name}.json`, sha256: 'e'.repeat(64), size: 1234, gzipBase64: row }], stats: { rows: 20000, meanTokens: 300, maxTokens: 1000 } };
}

const context: CompileContext = { queueName: 'tunepipe-gpu', datasets: { fintech: source('fintech', '2'.repeat(64)) } };

function pipeline(nodes: number, gpusPerNode: number, strategy?: TrainingStrategy, name?: string) {
  return definePipeline({ name: 'topo' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    p.sft({
      ...(name ? { name } : {}),
      model: base,
      train: data.train,
      resources: { gpuType: 'h100-80gb', gpusPerNode, nodes, cpu: '32', memory: '256Gi' },
      ...(strategy ? { strategy } : {}),
      args: { cutoff_len: 1024, bf16: true, per_device_train_batch_size: 4, save_steps: 50 },
    });
  });
}

function sftOf(nodes: number, gpusPerNode: number, ctx: CompileContext = context, strategy?: TrainingStrategy): CompiledStage {
  return compile(pipeline(nodes, gpusPerNode, strategy), ctx).stages.find((s) => s.kind === 'sft')!;
}

function podSpecOf(object: KubeObject): PodSpec {
  if (object.kind === 'JobSet') return (object as JobSet).spec.replicatedJobs[0]!.template.spec.template.spec!;
  return (object as JobType).spec!.template.spec!;
}

const envOf = (c: Container, name: string): EnvVar | undefined => c.env?.find((e) => e.name === name);

/** What a container's environment variable holds in pod `index` of the gang (Kubernetes fills fieldRefs in). */
function valueIn(c: Container, name: string, index: number): string | undefined {
  const e = envOf(c, name);
  if (e?.value !== undefined) return e.value;
  const field = e?.valueFrom?.fieldRef?.fieldPath;
  if (field === "metadata.annotations['batch.kubernetes.io/job-completion-index']") return String(index);
  return undefined;
}

const LAYOUTS: [number, number][] = [[1, 1], [1, 8], [2, 8], [4, 8]];

for (const [nodes, gpus] of LAYOUTS) {
  test(`${nodes}×${gpus}: the sft stage's objects match test/fixtures/topology/${nodes}x${gpus}.yaml`, () => {
    const stage = sftOf(nodes, gpus);
    const text = stage.objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
    const file = join(fixtures, `${nodes}x${gpus}.yaml`);
    if (process.env['UPDATE_GOLDEN'] === '1') {
      mkdirSync(fixtures, { recursive: true });
      writeFileSync(file, text);
    }
    assert.ok(existsSync(file), `${file} is missing (UPDATE_GOLDEN=1 writes it)`);
    assert.equal(readFileSync(file, 'utf8'), text, `${file} differs (UPDATE_GOLDEN=1 rewrites it)`);
    for (const object of stage.objects) {
      const validators: Record<string, (o: KubeObject) => void> = { ConfigMap: (o) => new ConfigMap(o as never).validate(), Service: (o) => new Service(o as never).validate(), Job: (o) => new Job(o as never).validate() };
      const validate = validators[object.kind ?? ''];
      assert.ok(validate, `no validator for ${object.kind}`);
      assert.doesNotThrow(() => validate(object), `${object.kind}/${object.metadata?.name}`);
    }
  });
}

test('1×1 is a plain single-GPU Job: no torchrun, no Service, no DeepSpeed', () => {
  const stage = sftOf(1, 1);
  assert.deepEqual(stage.objects.map((o) => o.kind), ['ConfigMap', 'Job']);
  const main = podSpecOf(stage.objects[1]!).containers[0]!;
  assert.equal(envOf(main, 'FORCE_TORCHRUN'), undefined);
  assert.equal(stage.gang, undefined);
  assert.deepEqual(stage.layout, { nodes: 1, gpusPerNode: 1, strategy: 'ddp' });
  assert.equal(stage.config['ddp_timeout'], undefined);
});

test('1×8 is one pod running torchrun on the loopback master', () => {
  const stage = sftOf(1, 8);
  const job = stage.objects.find((o) => o.kind === 'Job') as JobType;
  assert.equal(job.spec!.completionMode, undefined);
  const main = job.spec!.template.spec!.containers[0]!;
  assert.deepEqual(
    ['FORCE_TORCHRUN', 'NNODES', 'NODE_RANK', 'NPROC_PER_NODE', 'MASTER_ADDR', 'MASTER_PORT'].map((n) => valueIn(main, n, 0)),
    ['1', '1', '0', '8', '127.0.0.1', '29500'],
  );
  assert.equal(main.resources?.limits?.['nvidia.com/gpu'], '8');
  const shm = job.spec!.template.spec!.volumes!.find((v) => v.name === 'dshm')!;
  assert.equal(shm.emptyDir?.sizeLimit, '64Gi', '8 GiB of /dev/shm per rank');
});

for (const [nodes, gpus] of LAYOUTS.filter(([n]) => n > 1)) {
  test(`${nodes}×${gpus}: every pod agrees on the master and port, and the ranks are 0…${nodes - 1}`, () => {
    const stage = sftOf(nodes, gpus);
    const service = stage.objects.find((o) => o.kind === 'Service') as import('kubernetes-types/core/v1.js').Service;
    const job = stage.objects.find((o) => o.kind === 'Job') as JobType;
    const spec = job.spec!;
    assert.equal(spec.completionMode, 'Indexed');
    assert.equal(spec.completions, nodes);
    assert.equal(spec.parallelism, nodes);
    assert.equal(job.metadata!.labels![LABELS.kueueQueue], 'tunepipe-gpu', 'the gang is one Kueue workload');
    assert.equal(job.metadata!.annotations?.['kueue.x-k8s.io/job-min-parallelism'], undefined, 'no partial admission');
    assert.deepEqual(spec.podFailurePolicy!.rules[0], { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] });
    // The headless Service names the pods' subdomain and selects exactly the gang's pods.
    assert.equal(service.spec!.clusterIP, 'None');
    assert.equal(service.spec!.publishNotReadyAddresses, true);
    const podLabels = spec.template.metadata!.labels!;
    for (const [k, v] of Object.entries(service.spec!.selector!)) assert.equal(podLabels[k], v);
    assert.equal(spec.template.spec!.subdomain, service.metadata!.name);
    const main = spec.template.spec!.containers[0]!;
    const pods = Array.from({ length: nodes }, (_, i) => ({
      // An Indexed Job's pod i is named, and resolves, as <job>-<i>.<subdomain>.<namespace>.svc.
      dns: `${job.metadata!.name}-${i}.${spec.template.spec!.subdomain}.${job.metadata!.namespace}.svc`,
      env: Object.fromEntries(['NNODES', 'NODE_RANK', 'NPROC_PER_NODE', 'MASTER_ADDR', 'MASTER_PORT', 'FORCE_TORCHRUN'].map((n) => [n, valueIn(main, n, i)])),
    }));
    assert.deepEqual(pods.map((p) => Number(p.env['NODE_RANK'])), Array.from({ length: nodes }, (_, i) => i));
    for (const pod of pods) {
      assert.equal(pod.env['MASTER_ADDR'], pods[0]!.dns, 'MASTER_ADDR is the index-0 pod');
      assert.equal(pod.env['MASTER_PORT'], '29500');
      assert.equal(pod.env['NNODES'], String(nodes));
      assert.equal(pod.env['NPROC_PER_NODE'], String(gpus));
      assert.equal(pod.env['FORCE_TORCHRUN'], '1');
    }
    assert.deepEqual(stage.gang?.masterAddr, pods[0]!.dns);
    assert.deepEqual(stage.gang?.hostnames, pods.map((p) => p.dns.split('.')[0]));
    assert.equal(podLabels[LABELS.gang], job.metadata!.name, 'the NetworkPolicy lets the gang reach itself');
    // Every pod: the locked-down pod policy.
    const pod = spec.template.spec!;
    assert.equal(pod.automountServiceAccountToken, false);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
    // Only node 0 seals and publishes; the others skip the repair and exit after training.
    const wrapper = String((stage.objects.find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> }).data['stage.sh']);
    assert.match(wrapper, /if \[ "\$\{NODE_RANK:-0\}" = 0 \]; then tp_lead=1; fi/);
    assert.match(wrapper, /node 0 publishes/);
  });
}

test('a node count changes the stage hash; the same layout does not', () => {
  assert.notEqual(sftOf(2, 8).hash, sftOf(4, 8).hash);
  assert.equal(sftOf(2, 8).hash, sftOf(2, 8).hash);
});

test('zero3 writes a DeepSpeed config into the ConfigMap and points the YAML at it; the strategy is in the hash', () => {
  const stage = sftOf(2, 8, context, 'zero3');
  const configMap = stage.objects.find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> };
  const ds = JSON.parse(configMap.data['deepspeed.json']!) as { zero_optimization: { stage: number }; train_micro_batch_size_per_gpu: string };
  assert.equal(ds.zero_optimization.stage, 3);
  assert.equal(ds.train_micro_batch_size_per_gpu, 'auto');
  assert.equal(stage.config['deepspeed'], '/config/deepspeed.json');
  assert.equal(stage.config['ddp_timeout'], 3600);
  assert.notEqual(stage.hash, sftOf(2, 8, context, 'zero2').hash);
  const fsdp = sftOf(1, 8, context, 'fsdp');
  assert.equal(fsdp.config['fsdp'], 'full_shard auto_wrap');
  assert.equal(fsdp.config['deepspeed'], undefined);
});

test('the JobSet setting emits one JobSet (its controller names the Service) with the same ranks and master', () => {
  const stage = sftOf(2, 8, { ...context, multiNode: 'jobset' });
  assert.deepEqual(stage.objects.map((o) => o.kind), ['ConfigMap', 'JobSet']);
  const jobSet = stage.objects[1] as JobSet;
  assert.equal(jobSet.apiVersion, 'jobset.x-k8s.io/v1alpha2');
  assert.equal(jobSet.metadata.labels?.[LABELS.kueueQueue], 'tunepipe-gpu');
  assert.deepEqual(jobSet.spec.network, { enableDNSHostnames: true, subdomain: jobSet.metadata.name, publishNotReadyAddresses: true });
  const job = jobSet.spec.replicatedJobs[0]!;
  assert.equal(job.replicas, 1);
  assert.equal(job.template.spec.completions, 2);
  assert.equal(job.template.spec.parallelism, 2);
  assert.equal(job.template.spec.completionMode, 'Indexed');
  const main = podSpecOf(jobSet).containers[0]!;
  // A JobSet's pod i of replicated job `node` is <jobset>-node-0-<i>.
  assert.equal(valueIn(main, 'MASTER_ADDR', 1), `${jobSet.metadata.name}-node-0-0.${jobSet.metadata.name}.tunepipe.svc`);
  assert.equal(stage.workload.kind, 'JobSet');
});

test('check(): gpus with gpusPerNode, fractional counts, strategy on another kind, a gang the queue cannot admit', () => {
  const bad = definePipeline({ name: 'topo' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, resources: { gpus: 8, gpusPerNode: 8, nodes: 1.5 }, args: { cutoff_len: 1024 } });
    p.merge({ adapter, strategy: 'zero3' } as never);
  });
  const codes = check(bad, context).map((i) => `${i.code} ${i.path}`);
  assert.ok(codes.includes('resources.conflict stages.sft.resources.gpusPerNode'), codes.join('\n'));
  assert.ok(codes.includes('resources.nodes stages.sft.resources.nodes'), codes.join('\n'));
  assert.equal(codes.filter((c) => c.endsWith(' stages.sft.resources.nodes')).length, 1, `one issue per field, not the kind's and the planner's: ${codes.join('\n')}`);
  assert.ok(codes.includes('options.unknown-key stages.merge.strategy'), codes.join('\n'));

  const queued = check(pipeline(4, 8), { ...context, queueGpus: { 'h100-80gb': 16 } });
  assert.ok(queued.some((i) => /queue/.test(i.code) && /32/.test(i.message)), queued.map((i) => `${i.code}: ${i.message}`).join('\n'));
  assert.ok(!check(pipeline(2, 8), { ...context, queueGpus: { 'h100-80gb': 16 } }).some((i) => /queue/.test(i.code)));

  // The Job name fits (63), its pods' hostnames (<job>-1) do not.
  const long = pipeline(2, 8, undefined, 'a-stage-name-long-enough-for-the-gang-hostnames-x');
  const longIssues = check(long, context);
  assert.ok(longIssues.some((i) => i.code === 'name.length' && /hostnames/.test(i.message)), longIssues.map((i) => `${i.code}: ${i.message}`).join('\n'));
});

test('merge refuses a full fine-tune', () => {
  const full = definePipeline({ name: 'topo' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    const model = p.sft({ model: base, train: data.train, resources: { gpuType: 'h100-80gb', gpusPerNode: 8 }, strategy: 'zero3', args: { cutoff_len: 1024, finetuning_type: 'full', bf16: true } });
    p.merge({ adapter: model });
  });
  const issues = check(full, context);
  assert.ok(issues.some((i) => i.code === 'merge.full-finetune' && i.path === 'stages.merge.adapter'), issues.map((i) => `${i.code} ${i.path}`).join('\n'));

  // Through extraArgs the handle would not know: evaluate would load the model as an adapter.
  const hidden = definePipeline({ name: 'topo' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    p.sft({ model: base, train: data.train, resources: { gpuType: 'h100-80gb', gpusPerNode: 8 }, args: { cutoff_len: 1024, bf16: true }, extraArgs: { finetuning_type: 'full' } });
  });
  assert.ok(check(hidden, context).some((i) => i.code === 'sft.finetuning-type' && i.path === 'stages.sft.extraArgs.finetuning_type'));
});
