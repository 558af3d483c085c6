import type { ModelArchitecture } from '../model/architecture.ts';
import {
  INFERENCE_ACTIVATION_BAND,
  NCCL_BUFFER_BYTES,
  POD_STARTUP_SECONDS,
  VLLM_NON_TORCH_BYTES,
  VLLM_OUTSIDE_BUDGET_BYTES,
  VLLM_PROFILE_BAND,
  VLLM_STARTUP_COMPILE_SECONDS,
  VOLUME_READ_BYTES_PER_SECOND,
} from './assumptions.ts';
import type { GpuSpec } from './gpus.ts';
import { gptqOutputBytes, inferenceLayerBytesPerToken, GPTQ_GROUP_SIZE } from './quantize.ts';
import { breakdown, type MemoryBreakdown, type MemoryTerm } from './types.ts';
import { n } from './internal.ts';
import { GiB, formatGiB } from './units.ts';

/** `vllm serve` flags the planner reads, by their snake_case names. */
export interface ServePlanArgs {
  /** @default the model's max_position_embeddings */
  readonly max_model_len?: number;
  /** @default 256 (1024 on ≥ 70 GiB GPUs other than A100) */
  readonly max_num_seqs?: number;
  /** @default 0.9 */
  readonly gpu_memory_utilization?: number;
  /** @default 1 */
  readonly tensor_parallel_size?: number;
  /** @default 'auto' */
  readonly dtype?: string;
  /** @default 'auto' */
  readonly kv_cache_dtype?: string;
  /** @default 2048 (8192 on ≥ 70 GiB GPUs other than A100) */
  readonly max_num_batched_tokens?: number;
  /** @default 16 */
  readonly block_size?: number;
}

/**
 * Reads the flags above from a vLLM args record keyed `max_model_len`, `max-model-len` or
 * `--max-model-len` (values as numbers or numeric strings). Unknown keys are ignored.
 */
export function readServeArgs(raw: Readonly<Record<string, unknown>>): ServePlanArgs {
  const out: Record<string, number | string> = {};
  for (const [key, value] of Object.entries(raw)) {
    const name = key.replace(/^--/, '').replace(/-/g, '_');
    if (typeof value === 'number' || typeof value === 'string') out[name] = value;
  }
  const num = (k: string): number | undefined => {
    const v = out[k];
    const x = typeof v === 'string' ? Number(v) : v;
    return typeof x === 'number' && Number.isFinite(x) ? x : undefined;
  };
  const str = (k: string): string | undefined => (typeof out[k] === 'string' ? (out[k] as string) : undefined);
  const result: { -readonly [K in keyof ServePlanArgs]: ServePlanArgs[K] } = {};
  for (const k of ['max_model_len', 'max_num_seqs', 'gpu_memory_utilization', 'tensor_parallel_size', 'max_num_batched_tokens', 'block_size'] as const) {
    const v = num(k);
    if (v !== undefined) result[k] = v;
  }
  for (const k of ['dtype', 'kv_cache_dtype'] as const) {
    const v = str(k);
    if (v !== undefined) result[k] = v;
  }
  return result;
}

/** What vLLM loads: the merged model in 16 bits, or a GPTQ checkpoint. */
export type ServedWeights =
  | { readonly format: 'dense' }
  | { readonly format: 'gptq'; readonly bits: number; readonly groupSize?: number };

/** vLLM's start-up defaults for the API server (v0.11): larger on ≥ 70 GiB GPUs other than A100. */
export function vllmDefaults(gpu: GpuSpec): { maxNumSeqs: number; maxNumBatchedTokens: number } {
  const big = gpu.memoryBytes >= 70 * GiB && !gpu.id.startsWith('a100');
  return big ? { maxNumSeqs: 1024, maxNumBatchedTokens: 8192 } : { maxNumSeqs: 256, maxNumBatchedTokens: 2048 };
}

/** The activation dtype vLLM runs in, or an error string when the GPU cannot. */
export function servedDtype(arch: ModelArchitecture, weights: ServedWeights, dtypeArg: string | undefined, gpu: GpuSpec): { dtype: 'bfloat16' | 'float16' | 'float32' } | { error: string } {
  const d = dtypeArg ?? 'auto';
  if (d === 'bfloat16' && gpu.bf16DenseFlops === null) return { error: `${gpu.name} has no bf16 (compute capability ${gpu.computeCapability}); vLLM refuses dtype bfloat16 there` };
  if (d === 'float32' || d === 'float') return { dtype: 'float32' };
  if (d === 'float16' || d === 'half') return { dtype: 'float16' };
  if (d === 'bfloat16') return { dtype: 'bfloat16' };
  // auto: GPTQ kernels run in fp16; dense models keep their dtype where the GPU supports it.
  if (weights.format === 'gptq') return { dtype: 'float16' };
  if (arch.torchDtype === 'float32') return { dtype: gpu.bf16DenseFlops === null ? 'float16' : 'bfloat16' };
  if (arch.torchDtype === 'bfloat16' && gpu.bf16DenseFlops === null) return { dtype: 'float16' };
  return { dtype: arch.torchDtype };
}

/** KV bytes per token per GPU: 2 (K and V) × layers × KV heads on this GPU × head_dim × dtype bytes. */
export function kvBytesPerToken(arch: ModelArchitecture, kvDtypeBytes: number, tensorParallel = 1): number {
  // With more GPUs than KV heads, vLLM replicates heads so every GPU holds at least one.
  const headsPerGpu = Math.max(1, Math.ceil(arch.numKeyValueHeads / tensorParallel));
  return 2 * arch.numHiddenLayers * headsPerGpu * arch.headDim * kvDtypeBytes;
}

/** Bytes of the served weights (all GPUs together). */
export function servedWeightBytes(arch: ModelArchitecture, weights: ServedWeights, dtypeBytes: number): number {
  return weights.format === 'gptq' ? gptqOutputBytes(arch, weights.bits, weights.groupSize ?? GPTQ_GROUP_SIZE).bytes : arch.parameterCount * dtypeBytes;
}

export interface VllmMemory {
  /** Per GPU, KV cache included. */
  readonly gpu: MemoryBreakdown;
  /** gpu_memory_utilization × GPU memory. */
  readonly budgetBytes: number;
  readonly nonKvBytes: number;
  readonly kvCacheBytes: number;
  readonly kvBytesPerToken: number;
  /** Tokens the KV cache holds (whole blocks). */
  readonly kvTokens: number;
  /** KV bytes one full-length sequence needs. */
  readonly oneSequenceBytes: number;
  /** Full-length sequences the KV cache holds at once (vLLM logs this as "Maximum concurrency"). */
  readonly maxConcurrency: number;
  /** vLLM starts only when the KV cache holds one sequence of max_model_len. */
  readonly startsUp: boolean;
  /** The largest max_model_len whose sequence fits (whole blocks). */
  readonly maxModelLenThatFits: number;
  readonly maxModelLen: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly utilization: number;
}

/**
 * vLLM's memory accounting (V1 engine): it may use `gpu_memory_utilization × total` per GPU; from
 * that it subtracts the weights, the activation peak of a profiling forward pass over
 * max_num_batched_tokens tokens (plus a sampler pass over max_num_seqs rows of logits) and memory
 * that grew outside PyTorch; the rest becomes KV cache. CUDA graphs and the CUDA context live
 * outside the budget, in the remaining (1 − utilisation).
 */
export function vllmMemory(
  arch: ModelArchitecture,
  weights: ServedWeights,
  args: ServePlanArgs,
  gpu: GpuSpec,
  tensorParallel: number,
  dtype: 'bfloat16' | 'float16' | 'float32',
): VllmMemory {
  const defaults = vllmDefaults(gpu);
  const utilization = args.gpu_memory_utilization ?? 0.9;
  const maxModelLen = args.max_model_len ?? arch.maxPositionEmbeddings;
  const maxNumSeqs = args.max_num_seqs ?? defaults.maxNumSeqs;
  const maxNumBatchedTokens = args.max_num_batched_tokens ?? defaults.maxNumBatchedTokens;
  const blockSize = args.block_size ?? 16;
  const a = dtype === 'float32' ? 4 : 2;
  const kvDtypeBytes = (args.kv_cache_dtype ?? 'auto').startsWith('fp8') ? 1 : a;

  const weightBytes = servedWeightBytes(arch, weights, a) / tensorParallel;
  const activationPeak = maxNumBatchedTokens * inferenceLayerBytesPerToken(arch, a, tensorParallel);
  const samplerPeak = maxNumSeqs * arch.vocabSize * 4 * 2;
  const nonTorch = VLLM_NON_TORCH_BYTES + (tensorParallel > 1 ? NCCL_BUFFER_BYTES : 0);
  const weightLabel = weights.format === 'gptq' ? `GPTQ ${weights.bits}-bit checkpoint` : `${n(arch.parameterCount)} params × ${a} B`;
  const nonKv: MemoryTerm[] = [
    { name: `weights (${weights.format === 'gptq' ? `GPTQ ${weights.bits}-bit` : dtype})`, bytes: weightBytes, detail: `${weightLabel}${tensorParallel > 1 ? ` / ${tensorParallel} GPUs` : ''}` },
    { name: 'profiling activation peak', bytes: activationPeak, detail: `${n(maxNumBatchedTokens)} batched tokens × ${n(inferenceLayerBytesPerToken(arch, a, tensorParallel))} B (one layer at a time)`, band: VLLM_PROFILE_BAND },
    { name: 'sampler logits (fp32)', bytes: samplerPeak, detail: `${n(maxNumSeqs)} seqs × ${n(arch.vocabSize)} vocab × 4 B × 2`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'non-torch memory', bytes: nonTorch, detail: `cuBLAS workspace${tensorParallel > 1 ? ', NCCL buffers' : ''} (assumed)`, band: VLLM_PROFILE_BAND },
  ];
  const nonKvBytes = nonKv.reduce((s, t) => s + t.bytes, 0);
  const budgetBytes = utilization * gpu.memoryBytes;
  const perToken = kvBytesPerToken(arch, kvDtypeBytes, tensorParallel);
  const kvCacheBytes = Math.max(0, budgetBytes - nonKvBytes);
  const kvTokens = Math.floor(kvCacheBytes / (perToken * blockSize)) * blockSize;
  const oneSequenceBytes = Math.ceil(maxModelLen / blockSize) * blockSize * perToken;
  const gpuBreakdown = breakdown('gpu', [
    ...nonKv,
    { name: 'KV cache', bytes: kvCacheBytes, detail: `the rest of ${utilization} × ${formatGiB(gpu.memoryBytes)}: ${n(kvTokens)} tokens × ${n(perToken)} B/token (2 × ${arch.numHiddenLayers} layers × ${Math.max(1, Math.ceil(arch.numKeyValueHeads / tensorParallel))} KV heads × ${arch.headDim} × ${kvDtypeBytes} B)` },
  ]);
  return {
    gpu: gpuBreakdown,
    budgetBytes,
    nonKvBytes,
    kvCacheBytes,
    kvBytesPerToken: perToken,
    kvTokens,
    oneSequenceBytes,
    maxConcurrency: kvTokens / maxModelLen,
    startsUp: kvTokens >= maxModelLen,
    maxModelLenThatFits: kvTokens,
    maxModelLen,
    maxNumSeqs,
    maxNumBatchedTokens,
    utilization,
  };
}

/** The message when the KV cache cannot hold one full-length sequence (vLLM stops at start-up). */
export function kvRefusalMessage(m: VllmMemory, gpu: GpuSpec, tensorParallel: number): string {
  return (
    `vLLM refuses to start on ${tensorParallel > 1 ? `${tensorParallel}× ` : ''}${gpu.id}: max_model_len ${n(m.maxModelLen)} needs ` +
    `${formatGiB(m.oneSequenceBytes)} of KV cache per GPU, but only ${formatGiB(m.kvCacheBytes)} is left at gpu_memory_utilization ${m.utilization} ` +
    `(${formatGiB(m.budgetBytes)} budget − ${formatGiB(m.nonKvBytes)} weights and activations); ` +
    (m.maxModelLenThatFits > 0 ? `max_model_len ≤ ${n(m.maxModelLenThatFits)} would fit` : 'not even the weights fit')
  );
}

/** Warnings about a vLLM configuration that starts but is tight. */
export function vllmWarnings(m: VllmMemory, gpu: GpuSpec): string[] {
  const out: string[] = [];
  const outside = (1 - m.utilization) * gpu.memoryBytes;
  if (outside < VLLM_OUTSIDE_BUDGET_BYTES) {
    out.push(`gpu_memory_utilization ${m.utilization} leaves ${formatGiB(outside)} outside vLLM's budget on ${gpu.id}; the CUDA context and CUDA graphs need about ${formatGiB(VLLM_OUTSIDE_BUDGET_BYTES)} there (lower it, or set enforce_eager)`);
  }
  if (m.startsUp && m.maxConcurrency < 1.5) {
    out.push(`the KV cache holds only ${m.maxConcurrency.toFixed(2)} full-length (${n(m.maxModelLen)}-token) sequences: long requests will queue`);
  }
  return out;
}

/** Seconds from pod start to Ready: start-up, weights from the volume, compile and CUDA graphs. */
export function vllmStartupSeconds(arch: ModelArchitecture, weights: ServedWeights, dtypeBytes: number): Record<string, number> {
  return {
    startup: POD_STARTUP_SECONDS,
    'read weights': servedWeightBytes(arch, weights, dtypeBytes) / VOLUME_READ_BYTES_PER_SECOND,
    'compile + CUDA graphs': VLLM_STARTUP_COMPILE_SECONDS,
  };
}
