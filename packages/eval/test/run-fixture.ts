// A hand-made CompiledPipeline of the seed pipeline (following packages/core/src/compiled.ts) and an
// artifacts folder laid out as the stages leave it: /artifacts/<pipeline>/<stage>/<hash>/… with
// completion markers. Model weights are sparse files: real sizes, no disk use.
import { createHash } from 'node:crypto';
import { cp, mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planStage, type CompiledPipeline, type CompiledStage, type KubeObject, type StageKind } from '@tunepipe/core';
import type { StageRunRecord } from '../src/index.ts';

export const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const PIPELINE = 'llama3-fintech';
export const NAMESPACE = 'tunepipe';

const hashOf = (name: string) => createHash('sha256').update(`${PIPELINE}/${name}`).digest('hex');

function stage(name: string, kind: StageKind, dependsOn: string[], extra: Partial<CompiledStage> = {}): CompiledStage {
  const hash = hashOf(name);
  const batch = kind !== 'serve';
  const artifactPath = `/artifacts/${PIPELINE}/${name}/${hash}`;
  return {
    name,
    kind,
    hash,
    resourceName: batch ? `${PIPELINE}-${name}-${hash.slice(0, 8)}` : `${PIPELINE}-${name}`,
    dependsOn,
    image: 'example/image:1',
    gpus: kind === 'sft' || kind === 'quantize' || kind === 'evaluate' || kind === 'serve' ? 1 : 0,
    ...(kind === 'sft' || kind === 'quantize' || kind === 'evaluate' || kind === 'serve' ? { gpuType: 'a100-80gb' } : {}),
    ...(batch ? { artifactPath, completionMarker: `${artifactPath}/.tunepipe-complete` } : {}),
    expectedSeconds: { sft: 1800, merge: 600, quantize: 2400, evaluate: 300, serve: 600 }[kind as string] ?? 120,
    expectedOutputs: [],
    config: {},
    inputs: {},
    objects: [],
    // The report never reads the planner's estimate; a small real one keeps the type honest.
    estimate: planStage({ kind: 'convert', name, rows: 100 }),
    workload: { kind: batch ? 'Job' : 'Deployment', name: batch ? `${PIPELINE}-${name}-${hash.slice(0, 8)}` : `${PIPELINE}-${name}` },
    // The report never runs a stage: no steps or files.
    run: batch ? { mode: 'rename', steps: [], files: [], scratch: [] } : { steps: [], files: [], scratch: [], port: 8000 },
    ...extra,
  };
}

const service: KubeObject = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: `${PIPELINE}-serve`, namespace: NAMESPACE },
  spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP' }] },
};

export const compiled: CompiledPipeline = {
  pipeline: PIPELINE,
  namespace: NAMESPACE,
  artifactsClaim: 'tunepipe-artifacts',
  runtimeImage: 'ghcr.io/tunepipe/runtime:0.1.0',
  stages: [
    stage('fetch-model', 'fetch-model', []),
    stage('convert', 'convert', []),
    stage('sft', 'sft', ['fetch-model', 'convert']),
    stage('merge', 'merge', ['fetch-model', 'sft']),
    stage('quantize', 'quantize', ['merge', 'convert']),
    stage('evaluate-base', 'evaluate', ['fetch-model', 'convert']),
    stage('evaluate', 'evaluate', ['fetch-model', 'sft', 'convert', 'evaluate-base']),
    stage('evaluate-merged', 'evaluate', ['merge', 'convert']),
    stage('evaluate-gptq', 'evaluate', ['quantize', 'convert']),
    stage('serve', 'serve', ['quantize', 'evaluate'], {
      config: {
        model: `/artifacts/${PIPELINE}/quantize/${hashOf('quantize')}`,
        args: ['--port', '8000', '--served-model-name', PIPELINE, '--max-model-len', '4096'],
      },
      objects: [service],
    }),
  ],
  objects: [service],
};

export const byName = (name: string) => compiled.stages.find((s) => s.name === name)!;
/** Where a stage's folder is inside a local artifacts root. */
export const localDir = (root: string, name: string) => join(root, PIPELINE, name, hashOf(name));

export const runs: StageRunRecord[] = [
  { stage: 'fetch-model', status: 'cached' },
  { stage: 'convert', status: 'cached' },
  { stage: 'sft', status: 'done', startedAt: '2025-04-30T14:55:20Z', finishedAt: '2025-04-30T15:21:02Z' },
  { stage: 'merge', status: 'done', durationSeconds: 412 },
  { stage: 'quantize', status: 'done', durationSeconds: 1890 },
  { stage: 'evaluate-base', status: 'done', durationSeconds: 61 },
  { stage: 'evaluate', status: 'done', durationSeconds: 58 },
  { stage: 'evaluate-merged', status: 'done', durationSeconds: 49 },
  { stage: 'evaluate-gptq', status: 'done', durationSeconds: 40 },
  { stage: 'serve', status: 'done', durationSeconds: 184 },
];

async function sparse(dir: string, files: Record<string, number>): Promise<void> {
  for (const [name, size] of Object.entries(files)) {
    const path = join(dir, name);
    await writeFile(path, '');
    await truncate(path, size);
  }
}

async function complete(root: string, name: string, fileCount: number): Promise<void> {
  const dir = localDir(root, name);
  await writeFile(join(dir, 'SHA256SUMS'), '');
  await writeFile(join(dir, '.tunepipe-complete'), `${JSON.stringify({ stage: name, hash: hashOf(name), files: fileCount })}\n`);
}

/** Lays out a finished run under `root` (all batch stages complete). */
export async function writeArtifacts(root: string): Promise<void> {
  for (const s of compiled.stages.filter((x) => x.kind !== 'serve')) await mkdir(localDir(root, s.name), { recursive: true });

  const base = localDir(root, 'fetch-model');
  await writeFile(join(base, 'config.json'), '{"architectures": ["LlamaForCausalLM"]}\n');
  // Meta-Llama-3-8B-Instruct's four bf16 shards (16.06 GB).
  await sparse(base, {
    'model-00001-of-00004.safetensors': 4_976_698_672,
    'model-00002-of-00004.safetensors': 4_999_802_720,
    'model-00003-of-00004.safetensors': 4_915_916_176,
    'model-00004-of-00004.safetensors': 1_168_138_808,
  });
  await complete(root, 'fetch-model', 5);

  await cp(join(fixtures, 'testset'), localDir(root, 'convert'), { recursive: true });
  await complete(root, 'convert', 3);

  const sft = localDir(root, 'sft');
  await cp(join(fixtures, 'sft'), sft, { recursive: true });
  await writeFile(join(sft, 'adapter_config.json'), '{"r": 8, "lora_alpha": 16}\n');
  // LoRA rank 8 on all linear layers: 20,971,520 float32 parameters.
  await sparse(sft, { 'adapter_model.safetensors': 83_945_296 });
  await complete(root, 'sft', 5);

  const merge = localDir(root, 'merge');
  await writeFile(join(merge, 'config.json'), '{"architectures": ["LlamaForCausalLM"]}\n');
  await writeFile(join(merge, 'model.safetensors.index.json'), '{"metadata": {"total_size": 16060522496}}\n');
  // export_size 4 (GB): five shards, not four.
  await sparse(merge, {
    'model-00001-of-00005.safetensors': 3_926_112_368,
    'model-00002-of-00005.safetensors': 3_926_112_392,
    'model-00003-of-00005.safetensors': 3_926_112_392,
    'model-00004-of-00005.safetensors': 3_207_934_112,
    'model-00005-of-00005.safetensors': 1_074_251_232,
  });
  await complete(root, 'merge', 7);

  const quantize = localDir(root, 'quantize');
  await writeFile(join(quantize, 'config.json'), '{"quantization_config": {"quant_method": "gptq", "bits": 4}}\n');
  await sparse(quantize, { 'model-00001-of-00002.safetensors': 4_982_541_240, 'model-00002-of-00002.safetensors': 752_119_200 });
  await complete(root, 'quantize', 3);

  for (const [name, fixture] of [
    ['evaluate-base', 'evaluate-base'],
    ['evaluate', 'evaluate-adapter'],
    ['evaluate-merged', 'evaluate-merged'],
    ['evaluate-gptq', 'evaluate-gptq'],
  ] as const) {
    await cp(join(fixtures, fixture), localDir(root, name), { recursive: true });
    await complete(root, name, 2);
  }
}
