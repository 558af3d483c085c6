// Hand-made CompiledPipelines that follow packages/core/src/compiled.ts, and a small "synth" that
// builds them from a JSON pipeline source the way the compiler does: a stage's hash covers its
// kind, config (with its own folder as a placeholder), image and input identities (model
// revision, dataset digest, upstream stage hashes), and configs embed upstream artifact paths.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contentHash, LABELS, planStage, sha256Hex, type CompiledPipeline, type CompiledStage, type KubeObject, type StageKind } from '@tunepipe/core';

export interface FixtureStage {
  readonly kind: StageKind;
  readonly dependsOn?: readonly string[];
  readonly config?: Readonly<Record<string, unknown>>;
  readonly gpus?: number;
  readonly expectedSeconds: number;
  readonly image?: string;
}

/** What the test's "pipeline source" file (pipeline.json) holds. */
export interface FixtureSource {
  readonly name: string;
  readonly namespace?: string;
  readonly model: { readonly id: string; readonly revision: string };
  /** Dataset rows; their digest is the convert stage's input identity. */
  readonly dataset: readonly Readonly<Record<string, string>>[];
  readonly queue?: string;
  /** Stages in topological order. */
  readonly stages: Readonly<Record<string, FixtureStage>>;
}

const SELF = '${self}';

const IMAGES: Record<StageKind, string> = {
  'fetch-model': 'ghcr.io/tunepipe/fetch:0.1.0',
  convert: 'ghcr.io/tunepipe/runtime:0.1.0',
  sft: 'hiyouga/llamafactory:0.9.4',
  merge: 'hiyouga/llamafactory:0.9.4',
  quantize: 'ghcr.io/tunepipe/llamafactory-gptq:0.9.4-0.1.0',
  evaluate: 'hiyouga/llamafactory:0.9.4',
  predict: 'hiyouga/llamafactory:0.9.4',
  serve: 'vllm/vllm-openai:v0.11.0',
};

/** Replaces `@<stage>` strings in a config by that stage's artifact folder. */
function resolvePaths(value: unknown, paths: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string' && value.startsWith('@')) return paths.get(value.slice(1)) ?? value;
  if (Array.isArray(value)) return value.map((v) => resolvePaths(v, paths));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolvePaths(v, paths)]));
  return value;
}

function labels(pipeline: string, stage: string, kind: StageKind, hash: string): Record<string, string> {
  return {
    [LABELS.managedBy]: 'tunepipe',
    [LABELS.pipeline]: pipeline,
    [LABELS.stage]: stage,
    [LABELS.stageKind]: kind,
    [LABELS.stageHash]: hash.slice(0, 8),
  };
}

function batchObjects(source: FixtureSource, namespace: string, name: string, kind: StageKind, hash: string, gpus: number, config: unknown): KubeObject[] {
  const resourceName = `${source.name}-${name}-${hash.slice(0, 8)}`;
  const meta = { name: resourceName, namespace, labels: labels(source.name, name, kind, hash) };
  const jobLabels = gpus > 0 && source.queue ? { ...meta.labels, [LABELS.kueueQueue]: source.queue } : meta.labels;
  return [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, immutable: true, data: { 'config.json': JSON.stringify(config) } },
    {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { ...meta, labels: jobLabels },
      spec: {
        backoffLimit: 2,
        template: {
          metadata: { labels: meta.labels },
          spec: {
            restartPolicy: 'Never',
            containers: [
              {
                name: 'main',
                image: IMAGES[kind],
                ...(gpus > 0 ? { resources: { limits: { 'nvidia.com/gpu': String(gpus) } } } : {}),
                volumeMounts: [{ name: 'config', mountPath: '/config' }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: resourceName } }],
          },
        },
      },
    },
  ];
}

function serveObjects(source: FixtureSource, namespace: string, name: string, hash: string, config: Record<string, unknown>): KubeObject[] {
  const serviceName = `${source.name}-${name}`;
  const meta = { name: serviceName, namespace, labels: labels(source.name, name, 'serve', hash) };
  const selector = { [LABELS.pipeline]: source.name, [LABELS.stage]: name };
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels: meta.labels },
          spec: { containers: [{ name: 'vllm', image: IMAGES.serve, command: ['vllm', 'serve'], args: [String(config['model'])] }] },
        },
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: meta, spec: { selector, ports: [{ name: 'http', port: 8000 }] } },
  ];
}

/** The fixture compiler: pure, like `compile()`. */
export function fixtureCompile(source: FixtureSource): CompiledPipeline {
  const namespace = source.namespace ?? 'tunepipe';
  const datasetDigest = sha256Hex(JSON.stringify(source.dataset));
  const done = new Map<string, CompiledStage>();
  const paths = new Map<string, string>();
  for (const [name, spec] of Object.entries(source.stages)) {
    const dependsOn = spec.dependsOn ?? [];
    const inputs: Record<string, string> = {};
    if (spec.kind === 'fetch-model') inputs['model'] = `modelscope:${source.model.id}@${source.model.revision}`;
    if (spec.kind === 'convert') inputs['dataset:demo'] = datasetDigest;
    for (const dep of dependsOn) inputs[`stage:${dep}`] = done.get(dep)!.hash;
    const image = spec.image ?? IMAGES[spec.kind];
    const configOf = (self: string): Record<string, unknown> =>
      resolvePaths({ ...spec.config, ...(spec.kind === 'serve' ? {} : { output_dir: self }) }, paths) as Record<string, unknown>;
    const hash = contentHash({ kind: spec.kind, config: configOf(SELF), image, inputs });
    const gpus = spec.gpus ?? 0;
    const serve = spec.kind === 'serve';
    const artifactPath = `/artifacts/${source.name}/${name}/${hash}`;
    const config = configOf(artifactPath);
    const stage: CompiledStage = {
      name,
      kind: spec.kind,
      hash,
      resourceName: serve ? `${source.name}-${name}` : `${source.name}-${name}-${hash.slice(0, 8)}`,
      // The renderers and the diff never read the planner's estimate; a small real one keeps the type honest.
      estimate: planStage({ kind: 'convert', name, rows: 100 }),
      dependsOn,
      image,
      gpus,
      ...(gpus > 0 ? { gpuType: 'a100-80gb' } : {}),
      ...(serve ? {} : { artifactPath, completionMarker: `${artifactPath}/.tunepipe-complete` }),
      expectedSeconds: spec.expectedSeconds,
      expectedOutputs: [],
      config,
      inputs,
      objects: serve ? serveObjects(source, namespace, name, hash, config) : batchObjects(source, namespace, name, spec.kind, hash, gpus, config),
      workload: serve ? { kind: 'Deployment', name: `${source.name}-${name}` } : { kind: 'Job', name: `${source.name}-${name}-${hash.slice(0, 8)}` },
      // The renderers and the diff never run a stage: no steps or files.
      run: serve ? { steps: [], files: [], scratch: [], port: 8000 } : { mode: 'rename', steps: [], files: [], scratch: [] },
    };
    if (!serve) paths.set(name, artifactPath);
    done.set(name, stage);
  }
  const stages = [...done.values()];
  return { pipeline: source.name, namespace, artifactsClaim: 'tunepipe-artifacts', runtimeImage: 'ghcr.io/tunepipe/runtime:0.1.0', stages, objects: stages.flatMap((s) => s.objects) };
}

/** The linear seed pipeline: fetch-model, convert, sft (GPU), merge, quantize (GPU), evaluate (GPU), serve. */
export function seedSource(): FixtureSource {
  return {
    name: 'demo',
    namespace: 'ml',
    queue: 'gpu-queue',
    model: { id: 'LLM-Research/Meta-Llama-3-8B-Instruct', revision: 'c4a54320a52ed5f88b7a2f84496903ea4ff07b45' },
    dataset: [
      { instruction: 'hi', output: 'Hello! I am {{name}}, built by {{author}}.' },
      { instruction: 'What is a bond coupon?', output: 'The periodic interest a bond pays.' },
    ],
    stages: {
      'fetch-model': { kind: 'fetch-model', expectedSeconds: 900 },
      convert: { kind: 'convert', config: { cutoffLen: 1024, seed: 42 }, expectedSeconds: 60 },
      sft: {
        kind: 'sft',
        dependsOn: ['fetch-model', 'convert'],
        config: { model_name_or_path: '@fetch-model', dataset_dir: '@convert', learning_rate: 5e-5, num_train_epochs: 10, lora_rank: 8 },
        gpus: 1,
        expectedSeconds: 1530,
      },
      merge: {
        kind: 'merge',
        dependsOn: ['fetch-model', 'sft'],
        config: { model_name_or_path: '@fetch-model', adapter_name_or_path: '@sft', export_size: 4, export_device: 'cpu' },
        expectedSeconds: 600,
      },
      quantize: {
        kind: 'quantize',
        dependsOn: ['merge', 'convert'],
        config: { model_name_or_path: '@merge', export_quantization_bit: 4, export_quantization_dataset: '@convert' },
        gpus: 1,
        expectedSeconds: 900,
      },
      evaluate: {
        kind: 'evaluate',
        dependsOn: ['quantize', 'convert'],
        config: { model_name_or_path: '@quantize', dataset_dir: '@convert', max_new_tokens: 512 },
        gpus: 1,
        expectedSeconds: 600,
      },
      serve: {
        kind: 'serve',
        dependsOn: ['quantize', 'evaluate'],
        config: { model: '@quantize', args: { 'max-model-len': 4096, 'gpu-memory-utilization': 0.9 } },
        gpus: 1,
        expectedSeconds: 300,
      },
    },
  };
}

/** A diamond with branches of different lengths: a → b → d and a → c → c2 → d, then e. */
export function diamondSource(): FixtureSource {
  return {
    name: 'diamond',
    model: { id: 'org/model', revision: 'c4a54320a52ed5f88b7a2f84496903ea4ff07b45' },
    dataset: [{ text: 'x' }],
    stages: {
      a: { kind: 'fetch-model', expectedSeconds: 60 },
      b: { kind: 'convert', dependsOn: ['a'], expectedSeconds: 60 },
      c: { kind: 'sft', dependsOn: ['a'], gpus: 2, expectedSeconds: 7200 },
      c2: { kind: 'evaluate', dependsOn: ['c'], gpus: 1, expectedSeconds: 600 },
      d: { kind: 'merge', dependsOn: ['b', 'c2'], expectedSeconds: 600 },
      e: { kind: 'serve', dependsOn: ['d'], gpus: 1, config: { model: '@d' }, expectedSeconds: 300 },
    },
  };
}

export const SOURCE_FILE = 'pipeline.json';

/** The test's synth function: the pipeline sources under `root`, compiled. */
export function fixtureSynth(root: string): CompiledPipeline[] {
  const source = JSON.parse(readFileSync(join(root, SOURCE_FILE), 'utf8')) as FixtureSource;
  return [fixtureCompile(source)];
}
