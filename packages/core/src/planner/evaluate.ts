import { llamaFactoryDefault } from '../defaults.ts';
import type { ModelArchitecture } from '../model/architecture.ts';
import {
  ALLOCATOR_FRAGMENTATION,
  ALLOCATOR_FRAGMENTATION_BAND,
  CUDA_CONTEXT_BAND,
  CUDA_CONTEXT_BYTES,
  INFERENCE_ACTIVATION_BAND,
  DECODE_BANDWIDTH_EFFICIENCY,
  HF_GENERATE_STEP_FLOOR_SECONDS,
  POD_STARTUP_SECONDS,
  PREFILL_UTILISATION,
  VOLUME_READ_BYTES_PER_SECOND,
} from './assumptions.ts';
import { peakFlops, type GpuSpec } from './gpus.ts';
import { gptqOutputBytes, inferenceLayerBytesPerToken } from './quantize.ts';
import { kvBytesPerToken } from './serve.ts';
import { loraParamCount, loraTargets, matmulParams } from './shapes.ts';
import { breakdown, type MemoryBreakdown, type MemoryTerm } from './types.ts';
import { n } from './internal.ts';
import { formatGiB } from './units.ts';

/** Generation arguments of an evaluate stage (LLaMA-Factory predict), a superset of the DSL's GenerationArgs. */
export interface EvaluatePlanArgs {
  /** @default 1024 */
  readonly max_new_tokens?: number;
  /** @default 8 */
  readonly per_device_eval_batch_size?: number;
  /** Prompt truncation. @default 2048 */
  readonly cutoff_len?: number;
  /** @default all rows */
  readonly max_samples?: number;
}

/** What evaluate loads: an adapter on its base, a 16-bit model, or a GPTQ checkpoint. */
export type EvaluatedModel =
  | { readonly format: 'adapter'; readonly rank: number; readonly target: string }
  | { readonly format: 'dense' }
  | { readonly format: 'gptq'; readonly bits: number };

export interface EvaluateData {
  readonly rows: number;
  /** Mean prompt tokens. @default cutoff_len (an upper bound) */
  readonly meanPromptTokens?: number;
}

export interface EvaluateEstimate {
  readonly gpu: MemoryBreakdown;
  readonly seconds: Record<string, number>;
  readonly rows: number;
  readonly weightBytes: number;
}

function weightBytes(arch: ModelArchitecture, model: EvaluatedModel): number {
  if (model.format === 'gptq') return gptqOutputBytes(arch, model.bits).bytes;
  const base = arch.parameterCount * 2;
  if (model.format === 'dense') return base;
  const targets = loraTargets(arch, model.target, '').modules;
  return base + loraParamCount(arch, model.rank, targets).trainable * 2; // adapter cast to the compute dtype
}

/**
 * `llamafactory-cli train` with do_predict + predict_with_generate: Hugging Face `generate` in
 * batches. Memory: weights, the KV cache of a batch at full length (prompt + max_new_tokens), the
 * prefill activations of one layer, last-position logits in fp32. Time: prefill compute plus one
 * decode step per new token per batch, each step streaming the weights from HBM (or the
 * per-step Python floor of `generate`, whichever is slower). Upper bound: every row is assumed to
 * generate max_new_tokens (a batch runs until its longest row stops).
 */
export function evaluateEstimate(arch: ModelArchitecture, model: EvaluatedModel, args: EvaluatePlanArgs, data: EvaluateData, gpu: GpuSpec): EvaluateEstimate {
  const batch = args.per_device_eval_batch_size ?? llamaFactoryDefault<number>('per_device_eval_batch_size');
  const maxNew = args.max_new_tokens ?? llamaFactoryDefault<number>('max_new_tokens');
  const cutoff = args.cutoff_len ?? llamaFactoryDefault<number>('cutoff_len');
  const rows = args.max_samples !== undefined ? Math.min(data.rows, args.max_samples) : data.rows;
  const prompt = Math.min(cutoff, data.meanPromptTokens ?? cutoff);
  const w = weightBytes(arch, model);
  const kvPerToken = kvBytesPerToken(arch, 2);
  const kv = batch * (cutoff + maxNew) * kvPerToken;
  const prefill = batch * cutoff * inferenceLayerBytesPerToken(arch, 2);
  const logits = batch * arch.vocabSize * 4 * 2;
  const transient = kv + prefill + logits;
  const terms: MemoryTerm[] = [
    { name: model.format === 'gptq' ? `weights (GPTQ ${model.bits}-bit)` : model.format === 'adapter' ? 'base weights + adapter (bf16)' : 'weights (bf16)', bytes: w, detail: model.format === 'gptq' ? 'quantized checkpoint' : `${n(arch.parameterCount)} params × 2 B` },
    { name: 'KV cache of a batch', bytes: kv, detail: `${batch} rows × (${n(cutoff)} + ${n(maxNew)}) tokens × ${n(kvPerToken)} B` },
    { name: 'prefill activations (one layer)', bytes: prefill, detail: `${batch} × ${n(cutoff)} tokens × ${n(inferenceLayerBytesPerToken(arch, 2))} B`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'logits of the last position (fp32)', bytes: logits, detail: `${batch} × ${n(arch.vocabSize)} × 4 B × 2`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'allocator fragmentation', bytes: transient * ALLOCATOR_FRAGMENTATION, detail: `${ALLOCATOR_FRAGMENTATION * 100}% of ${formatGiB(transient)}`, band: ALLOCATOR_FRAGMENTATION_BAND },
    { name: 'CUDA context + workspaces', bytes: CUDA_CONTEXT_BYTES, detail: 'assumed (300-800 MiB)', band: CUDA_CONTEXT_BAND },
  ];
  const peak = peakFlops(gpu, 'bfloat16') ?? gpu.fp16DenseFlops;
  const batches = Math.ceil(rows / batch);
  const step = Math.max(w / (gpu.memoryBandwidthBytesPerSecond * DECODE_BANDWIDTH_EFFICIENCY), HF_GENERATE_STEP_FLOOR_SECONDS);
  return {
    gpu: breakdown('gpu', terms),
    rows,
    weightBytes: w,
    seconds: {
      startup: POD_STARTUP_SECONDS,
      'read weights': w / VOLUME_READ_BYTES_PER_SECOND,
      prefill: (rows * prompt * 2 * matmulParams(arch)) / (PREFILL_UTILISATION * peak),
      decode: batches * maxNew * step,
    },
  };
}
