import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { ConfigMap, Service } from 'kubernetes-types/core/v1.js';
import { compile, DEFAULT_IMAGES, definePipeline, LLAMA3_8B, LLAMAFACTORY_ARGS, renderManifests, type CompiledPipeline, type CompiledStage } from '../src/index.ts';
import { context, fakeSource, seedPipeline } from './fixtures.ts';

const seed = compile(seedPipeline(), context);

function stage(compiled: CompiledPipeline, name: string): CompiledStage {
  const found = compiled.stages.find((s) => s.name === name);
  assert.ok(found, `no stage ${name}`);
  return found;
}

function jobOf(s: CompiledStage): Job {
  return s.objects.find((o) => o.kind === 'Job') as Job;
}

function hashes(compiled: CompiledPipeline): Record<string, string> {
  return Object.fromEntries(compiled.stages.map((s) => [s.name, s.hash]));
}

function changedStages(a: CompiledPipeline, b: CompiledPipeline): string[] {
  const before = hashes(a);
  return b.stages.filter((s) => before[s.name] !== s.hash).map((s) => s.name);
}

test('compile is deterministic', () => {
  const again = compile(seedPipeline(), context);
  assert.deepEqual(again, seed);
  assert.deepEqual(renderManifests(again), renderManifests(seed));
});

test('stages come out in topological order with their graph edges', () => {
  assert.deepEqual(seed.stages.map((s) => s.name), ['fetch-model', 'convert', 'sft', 'merge', 'quantize', 'evaluate', 'serve']);
  const position = new Map(seed.stages.map((s, i) => [s.name, i]));
  for (const s of seed.stages) for (const d of s.dependsOn) assert.ok(position.get(d)! < position.get(s.name)!, `${d} before ${s.name}`);
  assert.deepEqual(stage(seed, 'sft').dependsOn, ['fetch-model', 'convert']);
  assert.deepEqual(stage(seed, 'merge').dependsOn, ['fetch-model', 'sft']);
  assert.deepEqual(stage(seed, 'quantize').dependsOn, ['merge', 'convert']);
  assert.deepEqual(stage(seed, 'serve').dependsOn, ['quantize', 'evaluate']);
});

test('changing one stage changes only it and its descendants', () => {
  const lr = compile(seedPipeline({ sft: { learning_rate: 1e-4 } }), context);
  assert.deepEqual(changedStages(seed, lr), ['sft', 'merge', 'quantize', 'evaluate', 'serve']);

  const serveOnly = compile(seedPipeline({ maxModelLen: 4096 }), context);
  assert.deepEqual(changedStages(seed, serveOnly), ['serve']);

  const mergeOnly = compile(seedPipeline({ merge: { export_size: 5 } }), context);
  assert.deepEqual(changedStages(seed, mergeOnly), ['merge', 'quantize', 'serve']);

  const oneRow = compile(seedPipeline(), { datasets: { ...context.datasets, fintech: fakeSource('fintech', '3'.repeat(64)) } });
  assert.deepEqual(changedStages(seed, oneRow), ['convert', 'sft', 'merge', 'quantize', 'evaluate', 'serve']);
});

test('names are content addressed and valid DNS labels', () => {
  for (const s of seed.stages) {
    if (s.kind === 'serve') assert.equal(s.resourceName, 'seed-serve');
    else assert.equal(s.resourceName, `seed-${s.name}-${s.hash.slice(0, 8)}`);
    assert.ok(s.resourceName.length <= 63);
    for (const o of s.objects) assert.match(o.metadata!.name!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    if (s.artifactPath) assert.equal(s.artifactPath, `/artifacts/seed/${s.name}/${s.hash}`);
  }
});

test('every generated LLaMA-Factory key exists in its argument table with the right type', () => {
  for (const s of seed.stages) {
    const cm = s.objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === s.resourceName) as ConfigMap | undefined;
    const yamlKey = Object.keys(cm?.data ?? {}).find((k) => k.endsWith('.yaml'));
    if (!yamlKey) continue;
    const config = parse(cm!.data![yamlKey]!) as Record<string, unknown>;
    assert.deepEqual(config, s.config, 'the ConfigMap holds exactly the hashed config');
    const exportCommand = s.kind === 'merge' || s.kind === 'quantize';
    for (const [key, value] of Object.entries(config)) {
      const arg = LLAMAFACTORY_ARGS[key];
      assert.ok(arg, `${s.name}: ${key} is not a LLaMA-Factory argument`);
      if (exportCommand) assert.ok(arg.export, `${s.name}: ${key} is a training key in an export config`);
      const ok = { bool: typeof value === 'boolean', int: Number.isInteger(value), float: typeof value === 'number', str: typeof value === 'string', dict: typeof value === 'object', any: true }[arg.type];
      assert.ok(ok, `${s.name}: ${key}=${JSON.stringify(value)} is not ${arg.type}`);
      if (arg.choices) assert.ok(arg.choices.includes(value), `${s.name}: ${key}=${String(value)} not in choices`);
    }
  }
});

test('SFT keeps its checkpoints and resumes; export stages get no training keys', () => {
  const sft = stage(seed, 'sft').config;
  assert.equal(sft['overwrite_output_dir'], false);
  assert.equal(sft['output_dir'], stage(seed, 'sft').artifactPath);
  assert.equal(sft['report_to'], 'none');
  assert.equal(sft['model_name_or_path'], stage(seed, 'fetch-model').artifactPath);
  assert.equal(sft['dataset'], 'identity,fintech');
  const merge = stage(seed, 'merge').config;
  assert.equal(merge['model_name_or_path'], stage(seed, 'fetch-model').artifactPath, 'merge reads the base model');
  assert.equal(merge['adapter_name_or_path'], stage(seed, 'sft').artifactPath);
  assert.equal(merge['template'], 'llama3');
  assert.equal(merge['export_size'], 4);
  assert.equal(merge['export_device'], 'cpu');
  assert.equal(stage(seed, 'merge').expectedOutputs[0]?.startsWith('5 shards'), true, 'Llama-3-8B bf16 at export_size 4 is 5 shards');
  const quantize = stage(seed, 'quantize').config;
  assert.equal(quantize['model_name_or_path'], stage(seed, 'merge').artifactPath);
  assert.equal(quantize['export_quantization_dataset'], `${stage(seed, 'convert').artifactPath}/calibration.jsonl`);
  assert.equal(quantize['adapter_name_or_path'], undefined);
});

test('Jobs are production grade: pinned image, retries that ignore preemption, no TTL, locked down', () => {
  for (const s of seed.stages.filter((x) => x.workload.kind === 'Job')) {
    const job = jobOf(s);
    const pod = job.spec!.template.spec!;
    const main = pod.containers[0]!;
    assert.match(main.image!, /:[\w.-]+$/, 'image has a tag');
    assert.doesNotMatch(main.image!, /:latest$/);
    assert.equal(job.spec!.ttlSecondsAfterFinished, undefined);
    assert.ok(job.spec!.backoffLimit! >= 1);
    assert.ok(job.spec!.activeDeadlineSeconds! > s.expectedSeconds);
    assert.deepEqual(job.spec!.podFailurePolicy!.rules[0], { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] });
    assert.equal(pod.restartPolicy, 'Never');
    assert.equal(pod.securityContext!.runAsNonRoot, true);
    assert.equal(pod.securityContext!.seccompProfile!.type, 'RuntimeDefault');
    assert.equal(main.securityContext!.allowPrivilegeEscalation, false);
    assert.deepEqual(main.securityContext!.capabilities!.drop, ['ALL']);
    assert.ok(main.resources!.requests!['cpu'] && main.resources!.requests!['memory']);
    const gpu = main.resources!.limits!['nvidia.com/gpu'];
    if (s.gpus > 0) {
      assert.equal(gpu, String(s.gpus));
      assert.deepEqual(pod.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    } else {
      assert.equal(gpu, undefined, `${s.name} is a CPU stage`);
      assert.equal(pod.tolerations, undefined);
    }
    for (const env of main.env ?? []) assert.ok(env.value === undefined || !/token|key|secret/i.test(env.name), `${env.name} must come from a Secret`);
  }
  assert.equal(stage(seed, 'fetch-model').gpus, 0);
  assert.equal(stage(seed, 'convert').gpus, 0);
  assert.equal(stage(seed, 'sft').gpus, 1);
});

test('the LLaMA-Factory Jobs run llamafactory-cli train|export on their ConfigMap', () => {
  assert.deepEqual(jobOf(stage(seed, 'sft')).spec!.template.spec!.containers[0]!.args, ['llamafactory-cli', 'train', '/config/sft.yaml']);
  assert.deepEqual(jobOf(stage(seed, 'merge')).spec!.template.spec!.containers[0]!.args, ['llamafactory-cli', 'export', '/config/merge.yaml']);
  assert.deepEqual(jobOf(stage(seed, 'quantize')).spec!.template.spec!.containers[0]!.args, ['llamafactory-cli', 'export', '/config/quantize.yaml']);
  assert.deepEqual(jobOf(stage(seed, 'evaluate')).spec!.template.spec!.containers[0]!.args, ['llamafactory-cli', 'train', '/config/evaluate.yaml']);
  assert.equal(stage(seed, 'quantize').image, 'ghcr.io/tunepipe/llamafactory-gptq:0.9.4-0.1.0', 'GPTQ needs its own image');
});

/** The seed's first stages with the sft stage's extra arguments and image as given. */
function qloraPipeline(extraArgs: Record<string, unknown>, image?: string) {
  return definePipeline({ name: 'qlora' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity', 'fintech'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, bf16: true }, extraArgs, ...(image ? { image } : {}) });
    p.merge({ adapter, args: { export_size: 4 } });
    p.evaluate({ model: adapter, data: data.test });
  });
}

test('sft quantizing its base model with bitsandbytes (QLoRA) runs in the qlora image; nothing else moves', () => {
  assert.equal(stage(seed, 'sft').image, DEFAULT_IMAGES.llamafactory);
  const qlora = compile(qloraPipeline({ quantization_bit: 4 }), context);
  assert.equal(stage(qlora, 'sft').image, 'ghcr.io/tunepipe/llamafactory-qlora:0.9.4-0.1.0', 'the stock image has no bitsandbytes');
  assert.equal(jobOf(stage(qlora, 'sft')).spec!.template.spec!.containers[0]!.image, DEFAULT_IMAGES.qlora);
  // Merge and evaluate load the base model in 16-bit: the stock image.
  assert.equal(stage(qlora, 'merge').image, DEFAULT_IMAGES.llamafactory);
  assert.equal(stage(qlora, 'evaluate').image, DEFAULT_IMAGES.llamafactory);
  // The user's own image is their choice, and another quantization method is not bitsandbytes.
  assert.equal(stage(compile(qloraPipeline({ quantization_bit: 4 }, 'registry.example/lf-bnb:1'), context), 'sft').image, 'registry.example/lf-bnb:1');
  assert.equal(stage(compile(qloraPipeline({ quantization_bit: 4, quantization_method: 'hqq' }), context), 'sft').image, DEFAULT_IMAGES.llamafactory);
  assert.equal(stage(compile(qloraPipeline({}), context), 'sft').image, DEFAULT_IMAGES.llamafactory);
  // The image is part of the stage: a workspace's override reaches it.
  assert.equal(stage(compile(qloraPipeline({ quantization_bit: 4 }), { ...context, images: { qlora: 'registry.example/qlora:2' } }), 'sft').image, 'registry.example/qlora:2');
});

test('the base model is fetched once, by a CPU Job, with the token from a Secret', () => {
  const compiled = compile(seedPipeline(), { ...context, defaultHubToken: { secretName: 'hub', key: 'hf' } });
  const fetchJobs = compiled.stages.filter((s) => s.kind === 'fetch-model');
  assert.equal(fetchJobs.length, 1);
  const main = jobOf(fetchJobs[0]!).spec!.template.spec!.containers[0]!;
  assert.deepEqual(main.args, ['huggingface-cli', 'download', 'meta-llama/Meta-Llama-3-8B-Instruct', '--revision', '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', '--local-dir', `${fetchJobs[0]!.artifactPath}.partial`]);
  assert.deepEqual(main.env!.find((e) => e.name === 'HF_TOKEN'), { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hub', key: 'hf', optional: true } } });
  for (const s of compiled.stages.filter((x) => x.kind === 'sft' || x.kind === 'evaluate')) {
    assert.ok(jobOf(s).spec!.template.spec!.containers[0]!.env!.some((e) => e.name === 'HF_HUB_OFFLINE' && e.value === '1'));
  }
});

/** Bytes of the memory quantities the compiler writes (`8Gi`, `4096Mi`). */
function quantityBytes(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  assert.ok(m, `unexpected quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 ** 3 : 1024 ** 2);
}

test('every pod re-owns the artifacts volume only when its root is not the group yet', () => {
  for (const s of seed.stages) {
    for (const object of s.objects) {
      if (object.kind !== 'Job' && object.kind !== 'Deployment') continue;
      const pod = (object as Job | Deployment).spec!.template.spec!;
      assert.equal(pod.securityContext!.fsGroup, 1000, object.metadata!.name);
      assert.equal(pod.securityContext!.fsGroupChangePolicy, 'OnRootMismatch', object.metadata!.name);
    }
  }
});

test('a memory-backed /dev/shm is capped below the memory limit it is charged to', () => {
  let checked = 0;
  for (const s of seed.stages) {
    for (const object of s.objects) {
      if (object.kind !== 'Job' && object.kind !== 'Deployment') continue;
      const pod = (object as Job | Deployment).spec!.template.spec!;
      const shm = pod.volumes?.find((v) => v.name === 'dshm');
      if (!shm) continue;
      const container = [...pod.containers, ...(pod.initContainers ?? [])].find((c) => c.volumeMounts?.some((m) => m.name === 'dshm'))!;
      const limit = quantityBytes(container.resources!.limits!['memory']!);
      assert.ok(quantityBytes(shm.emptyDir!.sizeLimit!) <= limit / 2, `${object.metadata!.name}: shm ${shm.emptyDir!.sizeLimit} vs memory ${container.resources!.limits!['memory']}`);
      checked += 1;
    }
  }
  assert.ok(checked >= 4, 'sft, quantize, evaluate and serve mount a shm');
});

test('serve: vllm serve with a positional model, shm, startup probe, a stable Service that is not named vllm', () => {
  const serve = stage(seed, 'serve');
  const deployment = serve.objects.find((o) => o.kind === 'Deployment') as Deployment;
  const service = serve.objects.find((o) => o.kind === 'Service') as Service;
  const pod = deployment.spec!.template.spec!;
  const vllm = pod.containers[0]!;
  assert.deepEqual(vllm.command, ['vllm', 'serve']);
  assert.equal(vllm.args![0], stage(seed, 'quantize').artifactPath);
  assert.ok(!vllm.args!.includes('--quantization'), 'GPTQ is auto-detected');
  assert.equal(pod.volumes!.find((v) => v.name === 'dshm')!.emptyDir!.medium, 'Memory');
  assert.equal(vllm.startupProbe!.httpGet!.path, '/health');
  assert.notEqual(service.metadata!.name, 'vllm');
  assert.equal(service.metadata!.name, 'seed-serve');
  assert.deepEqual(service.spec!.selector, deployment.spec!.selector!.matchLabels);
  assert.match(pod.initContainers![0]!.args![0]!, /\.tunepipe-complete/);

  const newer = compile(seedPipeline({ sft: { learning_rate: 2e-4 } }), context);
  const newerDeployment = stage(newer, 'serve').objects.find((o) => o.kind === 'Deployment') as Deployment;
  assert.equal(newerDeployment.metadata!.name, deployment.metadata!.name, 'clients keep their URL');
  assert.notDeepEqual(newerDeployment.spec!.template, deployment.spec!.template, 'a new model rolls out through the pod template');
});

test('small dataset files travel gzipped in content-named, immutable ConfigMaps', () => {
  const convert = stage(seed, 'convert');
  const maps = convert.objects.filter((o) => o.kind === 'ConfigMap' && o.metadata!.name!.includes('-data-')) as ConfigMap[];
  assert.deepEqual(maps.map((m) => m.metadata!.name), ['seed-data-identity-11111111', 'seed-data-fintech-22222222']);
  for (const m of maps) assert.equal(m.immutable, true);
  const volumes = jobOf(convert).spec!.template.spec!.volumes!;
  assert.deepEqual(volumes.find((v) => v.name === 'data-identity')!.configMap!.items, [{ key: 'f0.gz', path: 'identity.json.gz' }]);
});

test('a Kueue queue label goes on GPU Jobs only', () => {
  const queued = compile(seedPipeline(), { ...context, queueName: 'gpu' });
  for (const s of queued.stages.filter((x) => x.workload.kind === 'Job')) {
    const label = jobOf(s).metadata!.labels!['kueue.x-k8s.io/queue-name'];
    assert.equal(label, s.gpus > 0 ? 'gpu' : undefined, s.name);
  }
});

test('a gated evaluation publishes only after its gate passes, and a failed gate fails the Job at once', () => {
  const gated = compile(
    definePipeline({ name: 'gated' }, (p) => {
      const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
      const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
      const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024 } });
      const baseline = p.evaluate({ name: 'eval-base', model: base, data: data.test });
      p.evaluate({ name: 'eval-adapter', model: adapter, data: data.test, baseline, gate: { bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } } });
    }),
    context,
  );
  const s = stage(gated, 'eval-adapter');
  const pod = jobOf(s).spec!.template.spec!;
  assert.deepEqual(pod.initContainers!.map((c) => c.name), ['wait-for-inputs', 'main']);
  assert.deepEqual(pod.initContainers![1]!.args, ['llamafactory-cli', 'train', '/config/eval-adapter.yaml']);
  assert.ok(pod.initContainers![1]!.env!.some((e) => e.name === 'TUNEPIPE_STEP' && e.value === 'run'));
  const gate = pod.containers[0]!;
  assert.equal(gate.name, 'gate');
  assert.deepEqual(gate.args!.slice(0, 3), ['tunepipe', 'gate', '--rules']);
  const cm = s.objects.find((o) => o.kind === 'ConfigMap') as ConfigMap;
  const rules = JSON.parse(cm.data!['gate.json']!) as { rules: unknown[]; baselineResults: string };
  assert.deepEqual(rules.rules, [
    { metric: 'predict_bleu-4', comparison: 'min', value: 20 },
    { metric: 'predict_rouge-l', comparison: 'minOverBaseline', value: 5 },
  ]);
  assert.equal(rules.baselineResults, `${stage(gated, 'eval-base').artifactPath}/predict_results.json`);
  // Only a failed gate (exit 3) fails at once; any other exit (a publish error) is retried.
  assert.deepEqual(jobOf(s).spec!.podFailurePolicy!.rules[1], { action: 'FailJob', onExitCodes: { containerName: 'gate', operator: 'In', values: [3] } });
  // Besides the gate, only a corrupt input (exit 4 of the wrapper, before the tool runs) fails at once.
  assert.deepEqual(jobOf(s).spec!.podFailurePolicy!.rules.slice(2), [{ action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [4] } }]);
  const main = jobOf(s).spec!.template.spec!.initContainers!.find((c) => c.name === 'main')!;
  assert.deepEqual(main.env!.find((e) => e.name === 'TUNEPIPE_INPUTS')?.value?.split('\n'), s.dependsOn.map((d) => stage(gated, d).artifactPath));
  assert.ok(jobOf(s).spec!.backoffLimit! >= 1, 'a transient failure has a retry left');
  assert.equal(s.inputs['gate'] !== undefined, true, 'the gate is part of the stage identity');
});

test('a batch pod waits for the completion markers of its inputs; a stage without inputs does not', () => {
  const merge = jobOf(stage(seed, 'merge')).spec!.template.spec!;
  const wait = merge.initContainers!.find((c) => c.name === 'wait-for-inputs')!;
  assert.match(wait.args![0]!, new RegExp(`\\[ -f ${stage(seed, 'fetch-model').completionMarker} \\] && \\[ -f ${stage(seed, 'sft').completionMarker} \\]`));
  assert.equal(jobOf(stage(seed, 'fetch-model')).spec!.template.spec!.initContainers, undefined);
});

test('serve with verify adds a post-deploy Job that waits for the new model, then runs tunepipe verify', () => {
  const pipeline = definePipeline({ name: 'v' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024 } });
    p.serve({ model: p.merge({ adapter }), verify: { expectName: '小聚', data: data.test }, apiKey: { secretName: 'k', key: 'api' } });
  });
  const compiled = compile(pipeline, context);
  const serve = stage(compiled, 'serve');
  const job = serve.objects.find((o) => o.kind === 'Job') as Job;
  assert.equal(job.metadata!.name, `v-serve-verify-${serve.hash.slice(0, 8)}`);
  assert.equal(serve.artifactPath, `/artifacts/v/serve/${serve.hash}`);
  const pod = job.spec!.template.spec!;
  assert.deepEqual(pod.initContainers![0]!.args!.slice(0, 4), ['--endpoint', 'http://v-serve.tunepipe.svc:8000', '--model-root', stage(compiled, 'merge').artifactPath]);
  assert.ok(Number(pod.initContainers![0]!.args![5]) < job.spec!.activeDeadlineSeconds!, 'wait-served gives up before the Job deadline');
  const args = pod.containers[0]!.args!;
  assert.deepEqual(args.slice(0, 8), ['tunepipe', 'verify', '--endpoint', 'http://v-serve.tunepipe.svc:8000', '--served-model-name', 'v', '--expect-name', '小聚']);
  assert.deepEqual(args.slice(8, 12), ['--dataset-dir', stage(compiled, 'convert').artifactPath, '--dataset', 'identity.test']);
  assert.deepEqual(pod.containers[0]!.env!.find((e) => e.name === 'VLLM_API_KEY'), { name: 'VLLM_API_KEY', valueFrom: { secretKeyRef: { name: 'k', key: 'api' } } });
});

test('remote dataset files are downloaded by an init container, small ones travel in the ConfigMap', () => {
  const remote = { ...fakeSource('fintech', '4'.repeat(64)), files: [{ path: 'big.jsonl', sha256: 'a'.repeat(64), size: 5e9, url: 's3://bucket/fintech/big.jsonl' }] };
  const compiled = compile(seedPipeline(), { datasets: { ...context.datasets, fintech: remote } });
  const convert = stage(compiled, 'convert');
  const pod = jobOf(convert).spec!.template.spec!;
  const fetch = pod.initContainers!.find((c) => c.name === 'fetch-inputs')!;
  assert.equal(fetch.args![0], `set -e\ntunepipe-fetch-file --url s3://bucket/fintech/big.jsonl --sha256 ${'a'.repeat(64)} --dest /inputs/.remote/fintech/big.jsonl`);
  assert.deepEqual(fetch.envFrom, [{ secretRef: { name: 'tunepipe-dataset-credentials', optional: true } }]);
  assert.ok(pod.containers[0]!.volumeMounts!.some((m) => m.mountPath === '/inputs/.remote'));
  const maps = convert.objects.filter((o) => o.kind === 'ConfigMap' && o.metadata!.name!.includes('-data-'));
  assert.deepEqual(maps.map((m) => m.metadata!.name), ['seed-data-identity-11111111']);
  assert.equal(maps[0]!.metadata!.annotations!['argocd.argoproj.io/sync-options'], 'ServerSideApply=true');
  assert.notEqual(convert.hash, stage(seed, 'convert').hash);
});

test('a calibration-only corpus is shipped to convert but never trained or evaluated on', () => {
  const pipeline = definePipeline({ name: 'cal' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, calibration: { nsamples: 8, maxlen: 256, source: 'handbook' } });
    const adapter = p.sft({ model: base, train: data.train, eval: data.validation, args: { cutoff_len: 1024 } });
    p.quantize({ model: p.merge({ adapter }), calibration: data.calibration, args: { export_quantization_bit: 4, export_quantization_nsamples: 8, export_quantization_maxlen: 256 } });
  });
  const compiled = compile(pipeline, { datasets: { ...context.datasets, handbook: fakeSource('handbook', '5'.repeat(64)) } });
  const convert = stage(compiled, 'convert');
  assert.deepEqual((convert.config['sources'] as Array<{ name: string }>).map((s) => s.name), ['identity', 'handbook']);
  assert.equal(convert.inputs['dataset:handbook'], '5'.repeat(64));
  assert.equal(stage(compiled, 'sft').config['dataset'], 'identity');
  assert.equal(stage(compiled, 'sft').config['eval_dataset'], 'identity.validation');
  assert.ok(convert.objects.some((o) => o.metadata!.name === 'cal-data-handbook-55555555'));
});

test('deadlines cover the longest upstream path, since a GitOps controller creates every Job at once', () => {
  const deadline = (name: string) => jobOf(stage(seed, name)).spec!.activeDeadlineSeconds!;
  const own = (name: string) => stage(seed, name).estimate.deadlineSeconds;
  assert.equal(deadline('fetch-model'), Math.ceil(own('fetch-model')));
  assert.equal(deadline('sft'), Math.ceil(own('sft')) + Math.max(deadline('fetch-model'), deadline('convert')));
  assert.equal(deadline('merge'), Math.ceil(own('merge')) + Math.max(deadline('fetch-model'), deadline('sft')));
  const serve = stage(seed, 'serve').objects.find((o) => o.kind === 'Deployment') as Deployment;
  assert.equal(serve.spec!.progressDeadlineSeconds, Math.ceil(own('serve')) + Math.max(deadline('quantize'), deadline('evaluate')));
});
