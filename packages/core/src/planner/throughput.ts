import { LLAMA3_8B, type ModelArchitecture } from '../model/architecture.ts';
import { DATA_PARALLEL_EFFICIENCY, LAYER_BASE_LAUNCH_UNITS, TRAINING_TIME_BAND, TRAINING_TIME_BAND_CALIBRATED } from './assumptions.ts';
import { H100_LLAMA3_8B_LORA } from './calibration.ts';
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
  config: Pick<SftConfig, 'rank' | 'targets' | 'gradientCheckpointing'> & { readonly finetuningType?: SftConfig['finetuningType'] },
  sequenceLength: number,
): TrainingFlopsPerToken {
  const recompute = config.gradientCheckpointing ? 1 : 0;
  const decoderParams = arch.numHiddenLayers * linearWeightsPerLayer(arch);
  const trainable = loraParamCount(arch, config.rank, config.targets).trainable;
  // Full fine-tuning adds the weight gradients: 6·P (8·P with the recompute), lm_head 6·V·h.
  const weightGradient = config.finetuningType === 'full' ? 1 : 0;
  const frozenLinears = 2 * decoderParams * (2 + weightGradient + recompute);
  const lmHead = 2 * arch.vocabSize * arch.hiddenSize * (2 + weightGradient);
  const lora = 2 * trainable * (3 + recompute);
  const attentionForward = 2 * arch.numHiddenLayers * sequenceLength * arch.numAttentionHeads * arch.headDim;
  const attention = attentionForward * (3 + recompute);
  return { total: frozenLinears + lmHead + lora + attention, frozenLinears, lmHead, lora, attention };
}

/** An observed training run to check the throughput model against. */
export interface ObservedRun {
  readonly architecture: ModelArchitecture;
  readonly gpu: GpuId;
  readonly computeDtype: ComputeDtype;
  readonly rank: number;
  readonly gradientCheckpointing: boolean;
  /** Micro-batch per GPU. */
  readonly microBatch: number;
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
 * The log does not name the GPU: an A100-class card is assumed (the seed ran on a rented
 * single-GPU box where A100/A800 are the common 40-80 GB choice). It is held out of the fit: the
 * curve fitted on the H100 predicts it within 2 % on an A100 (bench/planner).
 */
export const SEED_RUN: ObservedRun = {
  architecture: LLAMA3_8B,
  gpu: 'a100-40gb',
  computeDtype: 'bfloat16',
  rank: 8,
  gradientCheckpointing: true,
  microBatch: 2,
  tokens: 2_812_704,
  seconds: 1530.1399,
  // 9 whole epochs of 481 rows plus 168 micro-batches of 2: the Trainer's schedule (trainerSchedule).
  sequences: trainerSchedule(481, { microBatch: 2, gradientAccumulation: 8, epochs: 10, maxSteps: undefined, valSize: 0, packing: false, cutoffLen: 1024 }, 1, 0).sequencesRun,
};

/** Model FLOPs per second an observed run reached, as a share of its GPU's dense peak. */
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

/** The dtype matmuls run in on a GPU: `auto` is bf16 where the GPU has it, else fp16. */
export function effectiveComputeDtype(precision: SftConfig['precision'], arch: ModelArchitecture, gpu: GpuSpec): ComputeDtype {
  if (precision !== 'auto') return precision;
  if (arch.torchDtype === 'float32') return 'float32';
  return gpu.bf16DenseFlops !== null ? 'bfloat16' : 'float16';
}

type StepConfig = Pick<SftConfig, 'rank' | 'targets' | 'gradientCheckpointing'>;

/**
 * Kernel-launch work per micro-batch, in units of one adapter's launches: each pass over a layer
 * launches its base operations (norms, RoPE, attention, the MLP's elementwise ops: about as many
 * kernels as LAYER_BASE_LAUNCH_UNITS adapters) and, per adapter, its casts and two thin matmuls.
 * The forward, the recompute and the backward (about twice the forward's kernels) make 4 passes
 * with gradient checkpointing, 3 without.
 */
export function launchUnits(arch: ModelArchitecture, config: StepConfig): number {
  return arch.numHiddenLayers * (LAYER_BASE_LAUNCH_UNITS + config.targets.length) * (config.gradientCheckpointing ? 4 : 3);
}

/**
 * The step-time model. A micro-batch of T tokens takes
 *
 *     t(T) = T · F / (η∞ · peak) + c
 *
 * F: model FLOPs per token (trainingFlopsPerToken); peak: the GPU's dense peak in the compute
 * dtype; η∞: the share of the peak the step reaches when it is large (matmuls plus the memory-bound
 * casts, norms and the loss); c: the time per micro-batch that a faster GPU does not shorten —
 * Python launching some 12,000 small kernels (LoRA's casts and thin matmuls, norms, RoPE), scaled
 * by launchUnits for other models and settings. The efficiency η(T) = T·F / (peak · t(T)) rises with
 * the batch towards η∞ and never reaches the physical limit η = 1.
 */
export interface TrainingEfficiency {
  /** η∞. */
  readonly asymptotic: number;
  /** c per launch unit (launchUnits), seconds. */
  readonly secondsPerLaunchUnit: number;
}

/**
 * η∞ and c from two measurements on one GPU with one configuration, exactly: the difference of
 * their step times is the compute of the extra tokens, the rest is the overhead.
 */
export function fitTrainingEfficiency(
  arch: ModelArchitecture,
  config: StepConfig,
  gpu: GpuSpec,
  points: readonly { readonly microBatch: number; readonly sequenceLength: number; readonly tokensPerSecond: number }[],
): TrainingEfficiency {
  const [p, q] = points;
  if (!p || !q || p.sequenceLength !== q.sequenceLength || p.microBatch === q.microBatch) throw new Error('internal: the fit needs two batch sizes at one sequence length');
  const peak = peakFlops(gpu, 'bfloat16');
  if (peak === null) throw new Error(`internal: no bf16 peak for ${gpu.id}`);
  const tokens = (x: typeof p) => x.microBatch * x.sequenceLength;
  const stepSeconds = (x: typeof p) => tokens(x) / x.tokensPerSecond;
  const secondsPerToken = (stepSeconds(q) - stepSeconds(p)) / (tokens(q) - tokens(p));
  const flops = trainingFlopsPerToken(arch, config, p.sequenceLength).total;
  const overhead = stepSeconds(p) - tokens(p) * secondsPerToken;
  return { asymptotic: flops / (secondsPerToken * peak), secondsPerLaunchUnit: overhead / launchUnits(arch, config) };
}

/** The GPU the throughput measurements were taken on: the band is narrower on its architecture. */
export const CALIBRATION_GPU: GpuId = 'h100-80gb';

/**
 * Fitted on the H100 measurements of issue 19 (calibration.ts): 4,565 tokens/s at 2 × 1024 and
 * 7,226 at 8 × 1024, with F = 45.22 GFLOP per token (Llama-3-8B, r = 8 on all linears, gradient
 * checkpointing, s = 1024): η∞ = 0.410 and c = 0.220 s per micro-batch.
 */
export const TRAINING_EFFICIENCY: TrainingEfficiency = fitTrainingEfficiency(
  LLAMA3_8B,
  { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true },
  gpuById(CALIBRATION_GPU)!,
  H100_LLAMA3_8B_LORA,
);

/** Predicted training speed with its band. */
export interface TrainingThroughput {
  /** Tokens per second over all GPUs. */
  readonly tokensPerSecond: number;
  /** The band: tokens per second may be this much lower … */
  readonly low: number;
  /** … or this much higher. */
  readonly high: number;
  /** Share of the band (0.1 = ±10 %). */
  readonly band: number;
  /** Model FLOPs per token (trainingFlopsPerToken). */
  readonly flopsPerToken: number;
  /** Share of the dense peak reached (per GPU). */
  readonly efficiency: number;
  /** One micro-batch: compute seconds and launch-overhead seconds. */
  readonly computeSeconds: number;
  readonly overheadSeconds: number;
  /** The physical limit: tokens per second at the full dense peak (η = 1), per GPU. */
  readonly limitTokensPerSecond: number;
}

/**
 * Predicted training tokens per second on `gpus` × `gpu` (data parallel), or null when the GPU
 * lacks the dtype. `tokensPerMicroBatch` is the micro-batch times the tokens per sequence the model
 * sees (padding included); `sequenceLength` sets the attention FLOPs.
 */
export function trainingThroughput(
  arch: ModelArchitecture,
  config: Pick<SftConfig, 'rank' | 'targets' | 'gradientCheckpointing' | 'precision'> & { readonly finetuningType?: SftConfig['finetuningType'] },
  shape: { readonly sequenceLength: number; readonly tokensPerMicroBatch: number },
  gpu: GpuSpec,
  gpus: number,
  efficiency: TrainingEfficiency = TRAINING_EFFICIENCY,
): TrainingThroughput | null {
  const peak = peakFlops(gpu, effectiveComputeDtype(config.precision, arch, gpu));
  if (peak === null) return null;
  const flopsPerToken = trainingFlopsPerToken(arch, config, shape.sequenceLength).total;
  const computeSeconds = (shape.tokensPerMicroBatch * flopsPerToken) / (efficiency.asymptotic * peak);
  const overheadSeconds = efficiency.secondsPerLaunchUnit * launchUnits(arch, config);
  const limitTokensPerSecond = peak / flopsPerToken;
  const perGpu = Math.min(limitTokensPerSecond, shape.tokensPerMicroBatch / (computeSeconds + overheadSeconds));
  const scaling = gpus > 1 ? gpus * DATA_PARALLEL_EFFICIENCY : 1;
  const tokensPerSecond = perGpu * scaling;
  const band = gpu.architecture === gpuById(CALIBRATION_GPU)!.architecture ? TRAINING_TIME_BAND_CALIBRATED : TRAINING_TIME_BAND;
  return {
    tokensPerSecond,
    low: tokensPerSecond * (1 - band),
    high: tokensPerSecond * (1 + band),
    band,
    flopsPerToken,
    efficiency: (perGpu * flopsPerToken) / peak,
    computeSeconds,
    overheadSeconds,
    limitTokensPerSecond,
  };
}
