import type { ModelArchitecture } from '../model/architecture.ts';
import {
  ALLOCATOR_FRAGMENTATION,
  ALLOCATOR_FRAGMENTATION_BAND,
  CUDA_CONTEXT_BAND,
  CUDA_CONTEXT_BYTES,
  INFERENCE_ACTIVATION_BAND,
  GPTQ_FORWARD_UTILISATION,
  GPTQ_FP32_UTILISATION,
  GPTQ_PACK_ELEMENTS_PER_SECOND,
  GPTQ_SECONDS_PER_COLUMN,
  POD_STARTUP_SECONDS,
  SHA256_BYTES_PER_SECOND,
  VOLUME_READ_BYTES_PER_SECOND,
  VOLUME_WRITE_BYTES_PER_SECOND,
} from './assumptions.ts';
import type { GpuSpec } from './gpus.ts';
import { decoderLinears, linearWeightsPerLayer, type LinearShape } from './shapes.ts';
import { breakdown, type MemoryBreakdown, type MemoryTerm } from './types.ts';
import { n } from './internal.ts';
import { formatGiB } from './units.ts';

/** GPTQ group size LLaMA-Factory uses (transformers GPTQConfig default). */
export const GPTQ_GROUP_SIZE = 128;

/**
 * `true_sequential` order (optimum / gptqmodel): the layer is re-run over the calibration set for
 * each group, collecting Hessians only for that group's linears.
 */
export const GPTQ_SEQUENTIAL_GROUPS: readonly (readonly string[])[] = [['q_proj', 'k_proj', 'v_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']];

export interface QuantizedLinearBytes {
  readonly qweight: number;
  readonly qzeros: number;
  readonly scales: number;
  readonly gIdx: number;
  readonly bias: number;
}

/**
 * Stored bytes of one GPTQ-quantized linear (`in` × `out`, group size g):
 * qweight int32-packed `in·out·bits/8`; qzeros int32-packed `ceil(in/g)·out·bits/8`;
 * scales fp16 `ceil(in/g)·out·2`; g_idx int32 `in·4`; bias (if any) fp16 `out·2`.
 */
export function quantizedLinearBytes(l: LinearShape, bits: number, groupSize = GPTQ_GROUP_SIZE): QuantizedLinearBytes {
  const groups = Math.ceil(l.inFeatures / groupSize);
  return {
    qweight: (l.inFeatures * l.outFeatures * bits) / 8,
    qzeros: (groups * l.outFeatures * bits) / 8,
    scales: groups * l.outFeatures * 2,
    gIdx: l.inFeatures * 4,
    bias: l.bias ? l.outFeatures * 2 : 0,
  };
}

export interface GptqOutput {
  readonly bytes: number;
  readonly terms: readonly MemoryTerm[];
}

/**
 * Size of the quantized checkpoint: every decoder linear quantized, everything else (embeddings,
 * norms, LM head) kept in fp16. Llama-3-8B at 4 bits: ≈ 5.73 GB.
 */
export function gptqOutputBytes(arch: ModelArchitecture, bits: number, groupSize = GPTQ_GROUP_SIZE): GptqOutput {
  const L = arch.numHiddenLayers;
  const linears = decoderLinears(arch);
  const sum = (k: keyof QuantizedLinearBytes) => L * linears.reduce((s, l) => s + quantizedLinearBytes(l, bits, groupSize)[k], 0);
  const quantizedParams = L * linearWeightsPerLayer(arch);
  const biasParams = L * linears.reduce((s, l) => s + (l.bias ? l.outFeatures : 0), 0);
  const fp16Params = arch.parameterCount - quantizedParams - biasParams;
  const terms: MemoryTerm[] = [
    { name: `qweight (${bits}-bit packed)`, bytes: sum('qweight'), detail: `${n(quantizedParams)} linear weights × ${bits}/8 B` },
    { name: `scales (fp16, group ${groupSize})`, bytes: sum('scales'), detail: `${n(quantizedParams)} / ${groupSize} × 2 B` },
    { name: 'qzeros (packed)', bytes: sum('qzeros'), detail: `${n(quantizedParams)} / ${groupSize} × ${bits}/8 B` },
    { name: 'g_idx (int32)', bytes: sum('gIdx'), detail: 'one int32 per input feature of each linear' },
    { name: 'linear biases (fp16)', bytes: sum('bias'), detail: `${n(biasParams)} × 2 B` },
    { name: 'embeddings, norms, LM head (fp16)', bytes: fp16Params * 2, detail: `${n(fp16Params)} params × 2 B, not quantized` },
  ].filter((t) => t.bytes > 0);
  return { bytes: terms.reduce((s, t) => s + t.bytes, 0), terms };
}

/** Transient bytes per token of one decoder layer's inference forward (no grad), in `a`-byte activations. */
export function inferenceLayerBytesPerToken(arch: ModelArchitecture, a = 2, tensorParallel = 1): number {
  const h = arch.hiddenSize;
  const qkv = ((arch.numAttentionHeads + 2 * arch.numKeyValueHeads) * arch.headDim) / tensorParallel;
  const attnOut = (arch.numAttentionHeads * arch.headDim) / tensorParallel;
  const mlp = (3 * arch.intermediateSize) / tensorParallel; // gate+up (fused), activation product
  return 4 * h * 2 + a * (qkv + attnOut + mlp + 2 * h); // fp32 norm temporaries + residual and outputs
}

export interface GptqMemory extends MemoryBreakdown {
  /** The layer-by-layer working set alone, without the resident weights. */
  readonly workingSetBytes: number;
}

/**
 * GPU memory of GPTQ calibration (fp16, one decoder layer at a time):
 * - resident weights: LLaMA-Factory loads the model with device_map=auto, which places every layer
 *   that fits on the GPU first (`residentGpus` GPUs share them); the layer-by-layer working set must
 *   fit next to them.
 * - calibration activations: the current layer's inputs and outputs for all samples, nsamples ×
 *   maxlen × hidden × 2 B each.
 * - rotary cos/sin kept per sample.
 * - Hessians H = 2·X·Xᵀ in fp32 (in² × 4 B) for the linears of the largest sequential group.
 * - the solve's workspace for the largest linear: Cholesky factors of H (2 × in² × 4 B) and fp32
 *   copies of W, Q and the losses (3 × in × out × 4 B).
 * - one sample's forward through the layer.
 */
export function gptqMemory(arch: ModelArchitecture, nsamples: number, maxlen: number, residentGpus = 1): GptqMemory {
  const linears = decoderLinears(arch);
  const byName = new Map(linears.map((l) => [l.name as string, l]));
  const hessianGroup = Math.max(...GPTQ_SEQUENTIAL_GROUPS.map((g) => g.reduce((s, name) => s + (byName.get(name)?.inFeatures ?? 0) ** 2 * 4, 0)));
  const largest = linears.reduce((best, l) => (l.inFeatures ** 2 * 4 + 3 * l.inFeatures * l.outFeatures * 4 > best.inFeatures ** 2 * 4 + 3 * best.inFeatures * best.outFeatures * 4 ? l : best));
  const solve = 2 * largest.inFeatures ** 2 * 4 + 3 * largest.inFeatures * largest.outFeatures * 4;
  const activations = 2 * nsamples * maxlen * arch.hiddenSize * 2;
  const rotary = nsamples * maxlen * arch.headDim * 2 * 2;
  const forward = maxlen * inferenceLayerBytesPerToken(arch, 2);
  const transient = activations + rotary + hessianGroup + solve + forward;
  const weights = arch.parameterCount * 2;
  const terms: MemoryTerm[] = [
    { name: 'model weights (fp16, device_map=auto)', bytes: weights / residentGpus, detail: `${n(arch.parameterCount)} params × 2 B${residentGpus > 1 ? ` / ${residentGpus} GPUs` : ''}` },
    { name: 'calibration layer inputs + outputs', bytes: activations, detail: `2 × ${n(nsamples)} samples × ${n(maxlen)} tokens × ${n(arch.hiddenSize)} × 2 B`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'rotary cos/sin per sample', bytes: rotary, detail: `${n(nsamples)} × ${n(maxlen)} × ${arch.headDim} × 2 × 2 B`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'Hessians of the largest group (fp32)', bytes: hessianGroup, detail: 'Σ in² × 4 B over the group (down_proj alone for Llama)', band: INFERENCE_ACTIVATION_BAND },
    { name: `GPTQ solve workspace (${largest.name})`, bytes: solve, detail: `2 × ${n(largest.inFeatures)}² × 4 B + 3 × ${n(largest.inFeatures)} × ${n(largest.outFeatures)} × 4 B`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'one sample through the layer', bytes: forward, detail: `${n(maxlen)} tokens × ${n(inferenceLayerBytesPerToken(arch, 2))} B`, band: INFERENCE_ACTIVATION_BAND },
    { name: 'allocator fragmentation', bytes: transient * ALLOCATOR_FRAGMENTATION, detail: `${ALLOCATOR_FRAGMENTATION * 100}% of ${formatGiB(transient)}`, band: ALLOCATOR_FRAGMENTATION_BAND },
    { name: 'CUDA context + workspaces', bytes: CUDA_CONTEXT_BYTES, detail: 'assumed (300-800 MiB)', band: CUDA_CONTEXT_BAND },
  ];
  const all = breakdown('gpu', terms);
  return { ...all, workingSetBytes: all.totalBytes - weights / residentGpus };
}

/** Expected GPTQ run time on one GPU, term by term (seconds). */
export function gptqSeconds(arch: ModelArchitecture, bits: number, nsamples: number, maxlen: number, gpu: GpuSpec): Record<string, number> {
  const tokens = nsamples * maxlen;
  const L = arch.numHiddenLayers;
  const linears = decoderLinears(arch);
  const layerParams = linearWeightsPerLayer(arch);
  const attention = 2 * maxlen * arch.numAttentionHeads * arch.headDim; // per token, causal average
  const forwards = (GPTQ_SEQUENTIAL_GROUPS.length + 1) * tokens * (2 * layerParams + attention) * L;
  const hessians = L * linears.reduce((s, l) => s + 2 * tokens * l.inFeatures ** 2, 0);
  const solve = L * linears.reduce((s, l) => s + 2 * (l.outFeatures * l.inFeatures ** 2 + l.inFeatures ** 3), 0);
  const columns = L * linears.reduce((s, l) => s + l.inFeatures, 0);
  const modelBytes = arch.parameterCount * 2;
  const outBytes = gptqOutputBytes(arch, bits).bytes;
  return {
    startup: POD_STARTUP_SECONDS,
    'read merged model': modelBytes / VOLUME_READ_BYTES_PER_SECOND,
    'calibration forwards': forwards / (gpu.fp16DenseFlops * GPTQ_FORWARD_UTILISATION),
    'Hessian accumulation': hessians / (gpu.fp32Flops * GPTQ_FP32_UTILISATION),
    'GPTQ solve': solve / (gpu.fp32Flops * GPTQ_FP32_UTILISATION) + columns * GPTQ_SECONDS_PER_COLUMN,
    'pack int32': (L * layerParams) / GPTQ_PACK_ELEMENTS_PER_SECOND,
    'write model': outBytes / VOLUME_WRITE_BYTES_PER_SECOND,
    SHA256SUMS: outBytes / SHA256_BYTES_PER_SECOND,
  };
}
