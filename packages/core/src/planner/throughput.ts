import { LLAMA3_8B, type ModelArchitecture } from '../model/architecture.ts';
import { DATA_PARALLEL_EFFICIENCY } from './assumptions.ts';
import { gpuById, peakFlops, type GpuId, type GpuSpec } from './gpus.ts';
import { decoderLinears, linearWeightsPerLayer, loraParamCount } from './shapes.ts';
import { trainerSchedule, type ComputeDtype, type SftConfig } from './sft.ts';

export interface TrainingFlopsPerToken {
  readonly total: number;
  readonly frozenLinears: number;
  readonly lmHead: number;
  readonly lora: number;
  readonly attention: number;
}

/**
 * Model FLOPs per trained token of a LoRA step, counted from the shapes (a multiply-add is 2 FLOPs):
 * - frozen decoder linears: forward 2·P, backward only to their inputs 2·P (no weight gradient),
 *   and with gradient checkpointing the forward again: 6·P with checkpointing, 4·P without.
 *   (Full fine-tuning would be 6·P / 8·P: LoRA saves the weight-gradient third, not the backward.)
 * - LM head: forward + input gradient, never recomputed: 4·V·h.
 * - LoRA matrices: forward, input and weight gradients (+ recompute): 8·r or 6·r per trainable param.
 * - attention scores and values: 2·L·s·nH·d forward (QKᵀ and AV over s/2 keys on average, causal),
 *   backward twice that, plus the recompute.
 * `sequenceLength` is the mean tokens per sequence (attention cost grows with it).
 */
export function trainingFlopsPerToken(
  arch: ModelArchitecture,
  config: Pick<SftConfig, 'rank' | 'targets' | 'gradientCheckpointing'>,
  sequenceLength: number,
): TrainingFlopsPerToken {
  const recompute = config.gradientCheckpointing ? 1 : 0;
  const decoderParams = arch.numHiddenLayers * linearWeightsPerLayer(arch);
  const trainable = loraParamCount(arch, config.rank, config.targets).trainable;
  const frozenLinears = 2 * decoderParams * (2 + recompute);
  const lmHead = 2 * arch.vocabSize * arch.hiddenSize * 2;
  const lora = 2 * trainable * (3 + recompute);
  const attentionForward = 2 * arch.numHiddenLayers * sequenceLength * arch.numAttentionHeads * arch.headDim;
  const attention = attentionForward * (3 + recompute);
  return { total: frozenLinears + lmHead + lora + attention, frozenLinears, lmHead, lora, attention };
}

/** An observed training run to calibrate the throughput model against. */
export interface ObservedRun {
  readonly architecture: ModelArchitecture;
  readonly gpu: GpuId;
  readonly computeDtype: ComputeDtype;
  readonly rank: number;
  readonly gradientCheckpointing: boolean;
  /** `num_input_tokens_seen` at the end (padding included). */
  readonly tokens: number;
  /** `train_runtime`. */
  readonly seconds: number;
  /** Sequences the run processed. */
  readonly sequences: number;
}

/**
 * The seed's run (its log): Llama-3-8B-Instruct, LoRA r=8 on all linears, gradient checkpointing,
 * bf16, batch 2 × accumulation 8 on one GPU, 481 rows, 10 epochs → 300 steps, 2,812,704 tokens in
 * 1,530.14 s (1,838 tokens/s; the log's running `throughput` reads 1,840).
 *
 * The log does not name the GPU. Assumed: an A100-class card (312 TFLOP/s bf16 dense); the seed ran
 * on a rented single-GPU box (AutoDL) where A100/A800 are the common 40-80 GB choice. On an L40S
 * (362 TFLOP/s) the same run would imply 14% lower utilisation; on a 24 GB RTX 4090 (165 TFLOP/s
 * with fp32 accumulation) an implausible 50%.
 */
export const SEED_RUN: ObservedRun = {
  architecture: LLAMA3_8B,
  gpu: 'a100-40gb',
  computeDtype: 'bfloat16',
  rank: 8,
  gradientCheckpointing: true,
  tokens: 2_812_704,
  seconds: 1530.1399,
  // 9 whole epochs of 481 rows plus 168 micro-batches of 2: the Trainer's schedule (trainerSchedule).
  sequences: trainerSchedule(481, { microBatch: 2, gradientAccumulation: 8, epochs: 10, maxSteps: undefined, valSize: 0, packing: false, cutoffLen: 1024 }, 1, 0).sequencesRun,
};

/**
 * Utilisation (model FLOPs per second / bf16 dense peak) an observed run implies.
 * For the seed: 1,838 tokens/s × 4.48e10 FLOPs/token = 82 TFLOP/s of 312 ⇒ 0.264.
 */
export function impliedUtilisation(run: ObservedRun): number {
  const gpu = gpuById(run.gpu);
  const peak = gpu ? peakFlops(gpu, run.computeDtype) : null;
  if (!gpu || peak === null) throw new Error(`no ${run.computeDtype} peak for GPU '${run.gpu}'`);
  const flops = trainingFlopsPerToken(
    run.architecture,
    { rank: run.rank, targets: decoderLinears(run.architecture), gradientCheckpointing: run.gradientCheckpointing },
    run.tokens / run.sequences,
  ).total;
  return ((run.tokens / run.seconds) * flops) / peak;
}

/**
 * Share of the dense peak a LoRA SFT step reaches, calibrated on the seed (≈ 0.26). Assumed the same
 * on every GPU in the catalogue: this is the model's largest error source (±30% across GPU
 * generations and batch shapes; small batches and Ada cards' lower bandwidth do worse).
 */
export const TRAINING_UTILISATION = impliedUtilisation(SEED_RUN);

/** The dtype matmuls run in on a GPU: `auto` is bf16 where the GPU has it, else fp16. */
export function effectiveComputeDtype(precision: SftConfig['precision'], arch: ModelArchitecture, gpu: GpuSpec): ComputeDtype {
  if (precision !== 'auto') return precision;
  if (arch.torchDtype === 'float32') return 'float32';
  return gpu.bf16DenseFlops !== null ? 'bfloat16' : 'float16';
}

/** Predicted training tokens per second on `gpus` × `gpu` (data parallel), or null if the dtype is unsupported. */
export function trainingTokensPerSecond(
  arch: ModelArchitecture,
  config: Pick<SftConfig, 'rank' | 'targets' | 'gradientCheckpointing' | 'precision'>,
  sequenceLength: number,
  gpu: GpuSpec,
  gpus: number,
): number | null {
  const peak = peakFlops(gpu, effectiveComputeDtype(config.precision, arch, gpu));
  if (peak === null) return null;
  const scaling = gpus > 1 ? gpus * DATA_PARALLEL_EFFICIENCY : 1;
  return (TRAINING_UTILISATION * peak * scaling) / trainingFlopsPerToken(arch, config, sequenceLength).total;
}
