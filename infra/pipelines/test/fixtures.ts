// Hand-made CompiledPipeline values that follow packages/core/src/compiled.ts, shaped like the
// seed pipeline (fetch → convert → sft → merge → quantize → evaluate / serve). They let the
// deployment be tested independently of compiler details; compile.test.ts runs the real compiler.
import { ANNOTATIONS, LABELS, contentHash, planStage, type CompiledPipeline, type CompiledStage, type KubeObject, type StageKind, type StageRun } from '@tunepipe/core';

export interface FixtureOptions {
  readonly pipeline?: string;
  readonly namespace?: string;
  readonly artifactsClaim?: string;
  /** Compile-time queue: the compiler labels GPU Jobs with it. */
  readonly queueName?: string;
  /** Expected SFT run time. @default 1530 (the seed's 25.5 minutes) */
  readonly sftSeconds?: number;
  readonly learningRate?: number;
}

interface StageInput {
  readonly name: string;
  readonly kind: StageKind;
  readonly dependsOn: readonly string[];
  readonly image: string;
  readonly gpus: number;
  readonly expectedSeconds: number;
  readonly config: Record<string, unknown>;
}

export function seedPipeline(options: FixtureOptions = {}): CompiledPipeline {
  const pipeline = options.pipeline ?? 'llama3-fintech';
  const namespace = options.namespace ?? 'tunepipe';
  const claim = options.artifactsClaim ?? 'tunepipe-artifacts';
  const inputs: StageInput[] = [
    { name: 'fetch-model', kind: 'fetch-model', dependsOn: [], image: 'ghcr.io/tunepipe/fetch:0.1.0', gpus: 0, expectedSeconds: 600, config: { hub: 'modelscope', id: 'LLM-Research/Meta-Llama-3-8B-Instruct', revision: 'v1.0.0' } },
    { name: 'convert', kind: 'convert', dependsOn: [], image: 'ghcr.io/tunepipe/runtime:0.1.0', gpus: 0, expectedSeconds: 60, config: { sources: ['identity', 'fintech'] } },
    {
      name: 'sft',
      kind: 'sft',
      dependsOn: ['fetch-model', 'convert'],
      image: 'hiyouga/llamafactory:0.9.4',
      gpus: 1,
      expectedSeconds: options.sftSeconds ?? 1530,
      config: { stage: 'sft', finetuning_type: 'lora', lora_rank: 8, learning_rate: options.learningRate ?? 1e-4, template: 'llama3' },
    },
    { name: 'merge', kind: 'merge', dependsOn: ['fetch-model', 'sft'], image: 'hiyouga/llamafactory:0.9.4', gpus: 0, expectedSeconds: 900, config: { export_size: 4, export_device: 'cpu', template: 'llama3' } },
    { name: 'quantize', kind: 'quantize', dependsOn: ['merge', 'convert'], image: 'ghcr.io/tunepipe/llamafactory-gptq:0.9.4-0.1.0', gpus: 1, expectedSeconds: 1800, config: { export_quantization_bit: 4 } },
    { name: 'evaluate', kind: 'evaluate', dependsOn: ['quantize', 'convert'], image: 'hiyouga/llamafactory:0.9.4', gpus: 1, expectedSeconds: 700, config: { do_predict: true, predict_with_generate: true } },
    { name: 'serve', kind: 'serve', dependsOn: ['quantize', 'evaluate'], image: 'vllm/vllm-openai:v0.11.0', gpus: 1, expectedSeconds: 420, config: { args: ['--max-model-len', '4096'] } },
  ];

  const hashes = new Map<string, string>();
  const stages: CompiledStage[] = inputs.map((input) => {
    const upstream = Object.fromEntries(input.dependsOn.map((d) => [`stage:${d}`, hashes.get(d)!]));
    const hash = contentHash({ kind: input.kind, config: input.config, image: input.image, inputs: upstream });
    hashes.set(input.name, hash);
    const labels = {
      [LABELS.managedBy]: 'tunepipe',
      [LABELS.pipeline]: pipeline,
      [LABELS.stage]: input.name,
      [LABELS.stageHash]: hash.slice(0, 8),
    };
    const common = {
      name: input.name,
      kind: input.kind,
      hash,
      dependsOn: input.dependsOn,
      image: input.image,
      gpus: input.gpus,
      ...(input.gpus > 0 ? { gpuType: 'a100-80gb' } : {}),
      expectedSeconds: input.expectedSeconds,
      expectedOutputs: [],
      // The deployment never reads the planner's estimate; a small real one keeps the type honest.
      estimate: planStage({ kind: 'convert', name: input.name, rows: 100 }),
      config: input.config,
      inputs: upstream,
    };
    const placement = input.gpus > 0
      ? { nodeSelector: { [LABELS.gpuType]: 'a100-80gb' }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] }
      : {};
    const resources = input.gpus > 0 ? { limits: { 'nvidia.com/gpu': String(input.gpus), memory: '64Gi' }, requests: { cpu: '8', memory: '64Gi', 'nvidia.com/gpu': String(input.gpus) } } : { requests: { cpu: '1', memory: '2Gi' } };

    if (input.kind === 'serve') {
      const name = `${pipeline}-${input.name}`;
      const selector = { [LABELS.pipeline]: pipeline, [LABELS.stage]: input.name };
      const args = [`/artifacts/${pipeline}/quantize/${hashes.get('quantize')}`, '--max-model-len', '4096'];
      const env = [
        { name: 'HF_HUB_OFFLINE', value: '1' },
        { name: 'VLLM_API_KEY', valueFrom: { secretKeyRef: { name: 'tunepipe-vllm', key: 'api-key' } } },
      ];
      const objects: KubeObject[] = [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name, namespace, labels, annotations: { [ANNOTATIONS.dependsOn]: JSON.stringify(input.dependsOn) } },
          spec: {
            replicas: 1,
            selector: { matchLabels: selector },
            progressDeadlineSeconds: 1800,
            template: {
              metadata: { labels: { ...labels, ...selector } },
              spec: {
                ...placement,
                containers: [
                  {
                    name: 'vllm',
                    image: input.image,
                    command: ['vllm', 'serve'],
                    args,
                    env,
                    ports: [{ name: 'http', containerPort: 8000 }],
                    resources,
                  },
                ],
                volumes: [{ name: 'artifacts', persistentVolumeClaim: { claimName: claim, readOnly: true } }],
              },
            },
          },
        },
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name, namespace, labels },
          spec: { type: 'ClusterIP', selector, ports: [{ name: 'http', port: 8000, targetPort: 'http' }] },
        },
      ];
      const run: StageRun = { steps: [{ container: 'vllm', argv: ['vllm', 'serve', ...args], env }], files: [], scratch: [], port: 8000 };
      return { ...common, resourceName: name, objects, workload: { kind: 'Deployment', name }, run };
    }

    const resourceName = `${pipeline}-${input.name}-${hash.slice(0, 8)}`;
    const artifactPath = `/artifacts/${pipeline}/${input.name}/${hash}`;
    const jobLabels = input.gpus > 0 && options.queueName ? { ...labels, [LABELS.kueueQueue]: options.queueName } : labels;
    const env = [
      { name: 'TUNEPIPE_STAGE', value: input.name },
      { name: 'TUNEPIPE_HASH', value: hash },
      ...(input.kind === 'fetch-model'
        ? [{ name: 'MODELSCOPE_API_TOKEN', valueFrom: { secretKeyRef: { name: 'tunepipe-hub', key: 'modelscope' } } }]
        : []),
    ];
    const configFiles = { 'config.yaml': JSON.stringify(input.config), 'stage.sh': '#!/bin/sh\nexec "$@"\n' };
    const argv = ['llamafactory-cli', 'train', '/config/config.yaml'];
    const objects: KubeObject[] = [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: resourceName, namespace, labels },
        immutable: true,
        data: configFiles,
      },
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {
          name: resourceName,
          namespace,
          labels: jobLabels,
          annotations: {
            [ANNOTATIONS.artifactPath]: artifactPath,
            [ANNOTATIONS.dependsOn]: JSON.stringify(input.dependsOn),
            [ANNOTATIONS.expectedSeconds]: String(input.expectedSeconds),
          },
        },
        spec: {
          backoffLimit: 2,
          activeDeadlineSeconds: Math.ceil(input.expectedSeconds * 1.5),
          template: {
            metadata: { labels },
            spec: {
              restartPolicy: 'Never',
              ...placement,
              containers: [
                {
                  name: 'main',
                  image: input.image,
                  command: ['/bin/sh', '/config/stage.sh', 'rename', artifactPath, '--'],
                  args: argv,
                  env,
                  resources,
                  volumeMounts: [
                    { name: 'config', mountPath: '/config', readOnly: true },
                    { name: 'artifacts', mountPath: '/artifacts' },
                  ],
                },
              ],
              volumes: [
                { name: 'config', configMap: { name: resourceName } },
                { name: 'artifacts', persistentVolumeClaim: { claimName: claim } },
              ],
            },
          },
        },
      },
    ];
    return {
      ...common,
      resourceName,
      artifactPath,
      completionMarker: `${artifactPath}/.tunepipe-complete`,
      objects,
      workload: { kind: 'Job', name: resourceName },
      run: {
        mode: 'rename',
        steps: [{ container: 'main', argv, env, wrapper: 'all' }],
        files: Object.entries(configFiles).map(([key, text]) => ({ path: `/config/${key}`, text })),
        scratch: [],
      },
    };
  });

  return { pipeline, namespace, artifactsClaim: claim, runtimeImage: 'ghcr.io/tunepipe/runtime:0.1.0', stages, objects: stages.flatMap((s) => s.objects) };
}

/** A copy of `compiled` with `edit` applied to the object `Kind/name`, in stages and in objects alike. */
export function editObject(compiled: CompiledPipeline, key: string, edit: (object: KubeObject) => KubeObject): CompiledPipeline {
  const apply = (o: KubeObject) => (`${o.kind}/${o.metadata?.name}` === key ? edit(structuredClone(o)) : o);
  return {
    ...compiled,
    stages: compiled.stages.map((s) => ({ ...s, objects: s.objects.map(apply) })),
    objects: compiled.objects.map(apply),
  };
}

export function stageNamed(compiled: CompiledPipeline, name: string): CompiledStage {
  const stage = compiled.stages.find((s) => s.name === name);
  if (!stage) throw new Error(`fixture has no stage ${name}`);
  return stage;
}

/** Every `(stage, upstream)` pair of the pipeline graph, from the stages' own dependsOn. */
export function graphEdges(compiled: CompiledPipeline): string[] {
  return compiled.stages.flatMap((s) => s.dependsOn.map((d) => `${s.name} -> ${d}`)).sort();
}
