import type { ResolvedContext } from './context.ts';
import type { Pipeline, StageSpec } from './dsl.ts';

/** Placement, size and timing of one stage: what the compiler writes into its pod spec. */
export interface StagePlan {
  readonly gpus: number;
  readonly gpuType?: string;
  readonly cpu: string;
  readonly memory: string;
  /** Size of the memory-backed /dev/shm (NCCL and vLLM workers need more than the 64 MiB default). */
  readonly shmSize: string;
  readonly expectedSeconds: number;
  /** Job `activeDeadlineSeconds` / Deployment `progressDeadlineSeconds`. */
  readonly deadlineSeconds: number;
  readonly expectedOutputs: readonly string[];
}

const GB = 1e9;

function bytesPerParam(dtype: string): number {
  return dtype === 'float32' ? 4 : 2;
}

export function shardCount(modelBytes: number, exportSizeGb: number): number {
  return Math.ceil(modelBytes / (exportSizeGb * GB));
}

function shardList(count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return count === 1 ? 'model.safetensors' : `model-${pad(1)}-of-${pad(count)}.safetensors … model-${pad(count)}-of-${pad(count)}.safetensors`;
}

function planOne(spec: StageSpec): StagePlan {
  const deadline = (seconds: number) => Math.ceil(seconds * 3 + 1800);
  switch (spec.kind) {
    case 'fetch-model': {
      const bytes = spec.options.architecture.parameterCount * bytesPerParam(spec.options.architecture.torchDtype);
      const seconds = Math.ceil(bytes / (100e6)) + 60;
      return { gpus: 0, cpu: '1', memory: '2Gi', shmSize: '0', expectedSeconds: seconds, deadlineSeconds: deadline(seconds), expectedOutputs: [`${spec.options.id}@${spec.options.revision} (${(bytes / GB).toFixed(2)} GB)`] };
    }
    case 'convert':
      return { gpus: 0, cpu: '1', memory: '512Mi', shmSize: '0', expectedSeconds: 120, deadlineSeconds: deadline(120), expectedOutputs: ['dataset_info.json', ...spec.options.sources.flatMap((s) => [`${s}.jsonl`, `${s}.validation.jsonl`, `${s}.test.jsonl`]), ...(spec.options.calibration ? ['calibration.jsonl'] : []), 'quarantine.jsonl', 'manifest.json'] };
    case 'sft': {
      const gpus = spec.options.resources?.gpus ?? 1;
      return { gpus, ...(spec.options.resources?.gpuType ? { gpuType: spec.options.resources.gpuType } : {}), cpu: spec.options.resources?.cpu ?? '8', memory: spec.options.resources?.memory ?? '64Gi', shmSize: '16Gi', expectedSeconds: 3600, deadlineSeconds: deadline(3600), expectedOutputs: ['adapter_model.safetensors', 'adapter_config.json', 'checkpoint-N/', 'trainer_log.jsonl', 'all_results.json'] };
    }
    case 'merge': {
      const arch = spec.options.adapter.base.architecture;
      const bytes = arch.parameterCount * bytesPerParam(arch.torchDtype);
      const count = shardCount(bytes, spec.options.args?.export_size ?? 5);
      return { gpus: spec.options.args?.export_device === 'auto' ? 1 : 0, cpu: '4', memory: `${Math.ceil((bytes / 2 ** 30) * 1.3)}Gi`, shmSize: '1Gi', expectedSeconds: 900, deadlineSeconds: deadline(900), expectedOutputs: [`${count} shards (${shardList(count)}), ${(bytes / GB).toFixed(2)} GB`] };
    }
    case 'quantize':
      return { gpus: 1, cpu: '8', memory: '64Gi', shmSize: '8Gi', expectedSeconds: 1800, deadlineSeconds: deadline(1800), expectedOutputs: [`GPTQ ${spec.options.args.export_quantization_bit}-bit model`] };
    case 'evaluate':
      return { gpus: 1, cpu: '8', memory: '64Gi', shmSize: '8Gi', expectedSeconds: 900, deadlineSeconds: deadline(900), expectedOutputs: ['generated_predictions.jsonl', 'predict_results.json'] };
    case 'serve':
      return { gpus: spec.options.resources?.gpus ?? 1, cpu: '8', memory: '48Gi', shmSize: '8Gi', expectedSeconds: 600, deadlineSeconds: 1800, expectedOutputs: ['OpenAI-compatible API on /v1'] };
  }
}

export function planStages(pipeline: Pipeline, _ctx: ResolvedContext): Map<string, StagePlan> {
  return new Map(pipeline.stages.map((s) => [s.name, planOne(s)]));
}
