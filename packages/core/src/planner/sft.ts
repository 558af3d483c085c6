import type { ModelArchitecture } from '../model/architecture.ts';
import { llamaFactoryDefault } from '../defaults.ts';
import { ALLOCATOR_FRAGMENTATION, CUDA_CONTEXT_BYTES, NCCL_BUFFER_BYTES } from './assumptions.ts';
import { loraParamCount, loraTargets, type LinearShape, type LoraParamCount } from './shapes.ts';
import { breakdown, type MemoryBreakdown, type MemoryTerm, type PlannerIssue } from './types.ts';
import { n } from './internal.ts';
import { formatGiB } from './units.ts';

/**
 * LLaMA-Factory training arguments the planner reads, under their LLaMA-Factory names. Structurally
 * a superset of the DSL's `SftArgs`, so a stage's args can be passed as they are.
 */
export interface SftPlanArgs {
  /** Only `lora` is modelled. @default 'lora' */
  readonly finetuning_type?: string;
  /** @default 8 */
  readonly lora_rank?: number;
  /** @default 'all' */
  readonly lora_target?: string;
  /** @default 0 */
  readonly lora_dropout?: number;
  /** Micro-batch per GPU. @default 8 (HF TrainingArguments) */
  readonly per_device_train_batch_size?: number;
  /** @default 1 */
  readonly gradient_accumulation_steps?: number;
  /** @default 2048 */
  readonly cutoff_len?: number;
  /** LLaMA-Factory checkpoints every decoder layer unless this is true. @default false */
  readonly disable_gradient_checkpointing?: boolean;
  /** @default false */
  readonly bf16?: boolean;
  /** @default false */
  readonly fp16?: boolean;
  /** @default false */
  readonly pure_bf16?: boolean;
  /** @default 3 */
  readonly num_train_epochs?: number;
  /** Overrides epochs when > 0. @default -1 */
  readonly max_steps?: number;
  /** @default false for sft */
  readonly packing?: boolean;
  /** @default false */
  readonly neat_packing?: boolean;
  /** `disabled` is eager attention (materialises the score matrix). @default 'auto' */
  readonly flash_attn?: string;
  /** @default 'adamw_torch' */
  readonly optim?: string;
  /** Fused linear + cross-entropy: the logits are never materialised. @default false */
  readonly enable_liger_kernel?: boolean;
  /** QLoRA bits; not modelled (estimates stay those of 16-bit weights). @default none */
  readonly quantization_bit?: number;
  /** @default false */
  readonly use_dora?: boolean;
  /** Fraction (< 1) or count of rows held out for evaluation. @default 0 */
  readonly val_size?: number;
  /** @default 500 */
  readonly save_steps?: number;
  /** @default unlimited */
  readonly save_total_limit?: number;
}

/** The training data as the planner needs it. */
export interface TrainingData {
  /** Rows LLaMA-Factory loads (after `max_samples`), before `val_size` is held out. */
  readonly rows: number;
  /**
   * Mean tokens per row as the model sees them: after truncation to cutoff_len and, without
   * packing, including padding to the longest row of the micro-batch. Unknown: cutoff_len is used
   * (an upper bound on time).
   */
  readonly meanTokensPerRow?: number;
  /** Longest row in tokens (≤ cutoff_len); sets the activation peak. @default cutoff_len */
  readonly maxTokensPerRow?: number;
}

export type ComputeDtype = 'bfloat16' | 'float16' | 'float32';

/** An SFT configuration with every default applied. */
export interface SftConfig {
  readonly rank: number;
  readonly targets: readonly LinearShape[];
  readonly dropout: number;
  readonly microBatch: number;
  readonly gradientAccumulation: number;
  readonly cutoffLen: number;
  /** Tokens per sequence at the memory peak. */
  readonly peakSequenceLength: number;
  readonly gradientCheckpointing: boolean;
  /** `auto` when neither bf16 nor fp16 is set: LLaMA-Factory then loads in the model dtype if the GPU supports it. */
  readonly precision: ComputeDtype | 'auto';
  /** Whether bf16 was asked for explicitly (it then fails on GPUs without bf16). */
  readonly requiresBf16: boolean;
  readonly eagerAttention: boolean;
  readonly liger: boolean;
  readonly optim: string;
  readonly packing: boolean;
  readonly neatPacking: boolean;
  readonly epochs: number;
  readonly maxSteps: number | undefined;
  readonly valSize: number;
  readonly saveSteps: number;
  readonly saveTotalLimit: number | undefined;
}

export interface ResolvedSft {
  readonly config: SftConfig;
  readonly lora: LoraParamCount;
  readonly issues: readonly PlannerIssue[];
  readonly warnings: readonly string[];
}

const positive = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Applies LLaMA-Factory's defaults and reports arguments the planner cannot use. */
export function resolveSft(arch: ModelArchitecture, args: SftPlanArgs, data: TrainingData, path: string): ResolvedSft {
  const issues: PlannerIssue[] = [];
  const warnings: string[] = [];
  const bad = (key: string, value: unknown, message: string, fix: string) =>
    issues.push({ code: 'planner.sft-arg', path: `${path}.args.${key}`, value, message, fix });

  if (args.finetuning_type !== undefined && args.finetuning_type !== 'lora') {
    bad('finetuning_type', args.finetuning_type, 'the planner models LoRA only', "use 'lora'");
  }
  const int = (key: keyof SftPlanArgs, fallback: number): number => {
    const v = args[key];
    if (v === undefined) return fallback;
    if (!positive(v) || !Number.isInteger(v)) {
      bad(key, v, 'must be a positive integer', `use a positive integer (LLaMA-Factory's default is ${fallback})`);
      return fallback;
    }
    return v;
  };
  const rank = int('lora_rank', llamaFactoryDefault('lora_rank'));
  const microBatch = int('per_device_train_batch_size', llamaFactoryDefault('per_device_train_batch_size'));
  const gradientAccumulation = int('gradient_accumulation_steps', llamaFactoryDefault('gradient_accumulation_steps'));
  const cutoffLen = int('cutoff_len', llamaFactoryDefault('cutoff_len'));

  const targetsResolved = loraTargets(arch, args.lora_target ?? llamaFactoryDefault<string>('lora_target'), `${path}.args.lora_target`);
  issues.push(...targetsResolved.issues);

  let epochs = 3;
  if (args.num_train_epochs !== undefined) {
    if (positive(args.num_train_epochs)) epochs = args.num_train_epochs;
    else bad('num_train_epochs', args.num_train_epochs, 'must be a positive number', 'use e.g. 3');
  }
  const maxSteps = args.max_steps !== undefined && args.max_steps > 0 ? Math.floor(args.max_steps) : undefined;

  if (!(positive(data.rows) && Number.isInteger(data.rows))) {
    issues.push({ code: 'planner.rows', path: `${path}.train`, value: data.rows, message: 'the training data must have a positive whole number of rows', fix: 'check the convert stage output (rows after validation and max_samples)' });
  }
  if (data.meanTokensPerRow !== undefined && !positive(data.meanTokensPerRow)) {
    issues.push({ code: 'planner.tokens', path: `${path}.train`, value: data.meanTokensPerRow, message: 'mean tokens per row must be positive', fix: 'leave it unset to plan with cutoff_len' });
  }

  const packing = args.packing === true || args.neat_packing === true;
  const peakSequenceLength = packing ? cutoffLen : Math.min(cutoffLen, positive(data.maxTokensPerRow) ? data.maxTokensPerRow : cutoffLen);

  if (args.bf16 === true && args.fp16 === true) {
    bad('fp16', true, 'bf16 and fp16 are mutually exclusive', 'keep one: bf16 on Ampere or newer, fp16 on T4');
  }
  const precision: SftConfig['precision'] = args.bf16 === true || args.pure_bf16 === true ? 'bfloat16' : args.fp16 === true ? 'float16' : 'auto';
  if (precision === 'auto') {
    warnings.push("neither bf16 nor fp16 is set: LLaMA-Factory loads the weights in the model's dtype where the GPU supports it, but trains without mixed precision (slower); set bf16: true");
  }

  const optim = args.optim ?? 'adamw_torch';
  if (!(optim in OPTIMIZER_STATE_BYTES)) warnings.push(`optimizer '${optim}' is not modelled; AdamW's 8 bytes of state per trainable parameter assumed`);
  if (args.quantization_bit !== undefined) warnings.push(`quantization_bit ${args.quantization_bit} (QLoRA) is not modelled: memory is that of 16-bit frozen weights (an upper bound)`);
  if (args.use_dora === true) warnings.push('DoRA is not modelled: it adds a magnitude vector and extra activations per target (estimate is low)');

  const dropout = typeof args.lora_dropout === 'number' && args.lora_dropout > 0 ? args.lora_dropout : 0;
  const valSize = typeof args.val_size === 'number' && args.val_size > 0 ? args.val_size : 0;
  const saveSteps = positive(args.save_steps) ? args.save_steps : llamaFactoryDefault<number>('save_steps');

  const config: SftConfig = {
    rank,
    targets: targetsResolved.modules,
    dropout,
    microBatch,
    gradientAccumulation,
    cutoffLen,
    peakSequenceLength,
    gradientCheckpointing: args.disable_gradient_checkpointing !== true,
    precision,
    requiresBf16: args.bf16 === true || args.pure_bf16 === true,
    eagerAttention: args.flash_attn === 'disabled',
    liger: args.enable_liger_kernel === true,
    optim,
    packing,
    neatPacking: args.neat_packing === true,
    epochs,
    maxSteps,
    valSize,
    saveSteps,
    saveTotalLimit: positive(args.save_total_limit) ? args.save_total_limit : undefined,
  };
  return { config, lora: loraParamCount(arch, rank, targetsResolved.modules), issues, warnings };
}

/** Optimizer state bytes per trainable parameter. */
export const OPTIMIZER_STATE_BYTES: Readonly<Record<string, number>> = {
  adamw_torch: 8, // m and v in fp32
  adamw_torch_fused: 8,
  adamw_8bit: 2, // m and v in 8 bits (block-wise scales ignored)
  paged_adamw_8bit: 2,
  adafactor: 4, // factored second moment; LoRA's thin matrices barely factor, so about one fp32 vector
  sgd: 0, // momentum 0 by default: no state
};

/** Bytes of the dtype the frozen weights and activations are held in. */
export function activationBytes(precision: SftConfig['precision'], arch: ModelArchitecture): number {
  if (precision === 'float32') return 4;
  if (precision === 'auto') return arch.torchDtype === 'float32' ? 4 : 2;
  return 2;
}

export interface ActivationPart {
  readonly name: string;
  readonly bytesPerToken: number;
}

/**
 * Bytes one decoder layer keeps for backward, per token, without gradient checkpointing (SDPA or
 * FlashAttention: no score matrix). `a` is the activation dtype's bytes (2 for bf16/fp16).
 * - RMSNorm (×2): it upcasts its input to fp32 and keeps it (4·h), and keeps its normalised output (a·h).
 * - q, k, v projections: outputs a·(nH + 2·nKV)·d; RoPE keeps rotated q and k: a·(nH + nKV)·d.
 * - attention output a·nH·d (input of o_proj) plus the kernel's fp32 log-sum-exp per head.
 * - MLP: gate and up outputs, SiLU(gate), and their product (input of down_proj): 4·a·I.
 * - LoRA, per targeted linear: PEFT casts the input to the adapter's fp32 and autocast casts it back
 *   to bf16 for lora_A, which keeps that copy: a·in; plus lora_A's output a·r; plus a 1-byte mask
 *   per input element when lora_dropout > 0.
 */
export function layerActivationParts(arch: ModelArchitecture, config: SftConfig): ActivationPart[] {
  const a = activationBytes(config.precision, arch);
  const h = arch.hiddenSize;
  const d = arch.headDim;
  const nH = arch.numAttentionHeads;
  const nKV = arch.numKeyValueHeads;
  const i = arch.intermediateSize;
  // In fp32 there is no cast: the adapter reads the tensor the base layer already keeps.
  const loraInputCopy = a === 4 ? 0 : a;
  const lora = config.targets.reduce(
    (sum, t) => sum + loraInputCopy * t.inFeatures + a * config.rank + (config.dropout > 0 ? t.inFeatures : 0),
    0,
  );
  return [
    { name: 'RMSNorm inputs (fp32) and outputs, ×2', bytesPerToken: 2 * (4 * h + a * h) },
    { name: 'q, k, v projections', bytesPerToken: a * (nH + 2 * nKV) * d },
    { name: 'RoPE-rotated q and k', bytesPerToken: a * (nH + nKV) * d },
    { name: 'attention output + log-sum-exp', bytesPerToken: a * nH * d + 4 * nH },
    { name: 'MLP gate, up, SiLU(gate), product', bytesPerToken: 4 * a * i },
    { name: `LoRA inputs (${config.targets.length} targets, r=${config.rank})`, bytesPerToken: lora },
  ];
}

export function layerActivationBytesPerToken(arch: ModelArchitecture, config: SftConfig): number {
  return layerActivationParts(arch, config).reduce((s, p) => s + p.bytesPerToken, 0);
}

export interface SftMemory extends MemoryBreakdown {
  readonly lora: LoraParamCount;
  readonly layerActivationBytesPerToken: number;
}

/**
 * Peak GPU memory per GPU of a LoRA SFT step, term by term. Data parallelism (gpus > 1) replicates
 * the model: memory per GPU does not shrink, DDP adds gradient buckets and NCCL buffers.
 */
export function sftMemory(arch: ModelArchitecture, config: SftConfig, gpus = 1): SftMemory {
  const lora = loraParamCount(arch, config.rank, config.targets);
  const a = activationBytes(config.precision, arch);
  const tokens = config.microBatch * config.peakSequenceLength;
  const layerBytes = layerActivationBytesPerToken(arch, config);
  const h = arch.hiddenSize;
  const v = arch.vocabSize;
  const L = arch.numHiddenLayers;
  const optimBytes = OPTIMIZER_STATE_BYTES[config.optim] ?? 8;
  const bxs = `${n(config.microBatch)} × ${n(config.peakSequenceLength)} tokens`;

  const fixed: MemoryTerm[] = [
    { name: 'frozen weights', bytes: arch.parameterCount * a, detail: `${n(arch.parameterCount)} params × ${a} B (${a === 2 ? 'bf16/fp16' : 'fp32'})` },
    { name: 'LoRA weights (fp32)', bytes: lora.trainable * 4, detail: `${n(lora.trainable)} trainable params upcast to fp32 × 4 B` },
    { name: 'LoRA gradients (fp32)', bytes: lora.trainable * 4, detail: `${n(lora.trainable)} × 4 B` },
    { name: `optimizer states (${config.optim})`, bytes: lora.trainable * optimBytes, detail: `${n(lora.trainable)} × ${optimBytes} B${optimBytes === 8 ? ' (AdamW m and v in fp32)' : ''}` },
  ];

  const transient: MemoryTerm[] = [];
  if (config.gradientCheckpointing) {
    transient.push({ name: 'checkpointed layer inputs', bytes: L * tokens * h * a, detail: `${L} layers × ${bxs} × ${n(h)} hidden × ${a} B` });
    transient.push({ name: 'one layer recomputed in backward', bytes: tokens * layerBytes, detail: `${bxs} × ${n(layerBytes)} B/token/layer` });
  } else {
    transient.push({ name: 'activations kept for backward', bytes: L * tokens * layerBytes, detail: `${L} layers × ${bxs} × ${n(layerBytes)} B/token/layer` });
  }
  if (config.eagerAttention) {
    // Eager attention keeps the softmax in fp32 (4 B) and its bf16 cast (a B) per score.
    const layers = config.gradientCheckpointing ? 1 : L;
    const scores = config.microBatch * arch.numAttentionHeads * config.peakSequenceLength ** 2;
    transient.push({ name: 'attention score matrices (eager)', bytes: layers * scores * (4 + a), detail: `${layers} layer(s) × ${n(config.microBatch)} × ${arch.numAttentionHeads} heads × ${n(config.peakSequenceLength)}² × ${4 + a} B` });
  }
  transient.push({
    name: 'activation gradients (one layer)',
    bytes: tokens * (3 * arch.intermediateSize + 2 * h) * a,
    detail: `${bxs} × (3 × ${n(arch.intermediateSize)} + 2 × ${n(h)}) × ${a} B: MLP gate/up/product and residual gradients`,
  });
  if (config.liger) {
    // Fused linear cross-entropy processes the logits in chunks of about hidden-size rows.
    const chunk = Math.min(tokens, Math.ceil(tokens / Math.ceil(v / h)));
    transient.push({ name: 'logits chunk (Liger fused cross-entropy)', bytes: chunk * v * 4 * 2, detail: `${n(chunk)} tokens × ${n(v)} vocab × 4 B × 2 (logits and gradient)` });
  } else {
    const logits = tokens * v;
    transient.push({ name: 'logits', bytes: logits * a, detail: `${bxs} × ${n(v)} vocab × ${a} B` });
    transient.push({ name: 'logits fp32 copy for the loss', bytes: logits * 4, detail: `${bxs} × ${n(v)} × 4 B (loss upcasts)` });
    transient.push({ name: 'cross-entropy log-softmax (fp32)', bytes: logits * 4, detail: `${bxs} × ${n(v)} × 4 B kept for backward` });
    transient.push({ name: 'gradient of the fp32 logits', bytes: logits * 4, detail: `${bxs} × ${n(v)} × 4 B in backward` });
  }
  const transientBytes = transient.reduce((s, t) => s + t.bytes, 0);

  const overhead: MemoryTerm[] = [
    { name: 'allocator fragmentation', bytes: transientBytes * ALLOCATOR_FRAGMENTATION, detail: `${ALLOCATOR_FRAGMENTATION * 100}% of the transient ${formatGiB(transientBytes)}` },
    { name: 'CUDA context + workspaces', bytes: CUDA_CONTEXT_BYTES, detail: `${formatGiB(CUDA_CONTEXT_BYTES)} assumed` },
  ];
  if (gpus > 1) {
    overhead.push({ name: 'DDP gradient buckets', bytes: lora.trainable * 4, detail: `${n(lora.trainable)} × 4 B` });
    overhead.push({ name: 'NCCL buffers', bytes: NCCL_BUFFER_BYTES, detail: `${formatGiB(NCCL_BUFFER_BYTES)} assumed` });
  }
  return { ...breakdown('gpu', [...fixed, ...transient, ...overhead]), lora, layerActivationBytesPerToken: layerBytes };
}

/** What Hugging Face's Trainer will run: optimizer steps, micro-batches and rows. */
export interface TrainerSchedule {
  readonly trainRows: number;
  readonly evalRows: number;
  /** Rows per epoch after packing (packed sequences) or the rows themselves. */
  readonly sequencesPerEpoch: number;
  readonly microBatchesPerEpoch: number;
  /** `max_steps` the Trainer derives: ceil(epochs × floor(micro-batches per epoch / accumulation)). */
  readonly optimizerSteps: number;
  /** Micro-batches actually run. */
  readonly microBatchesRun: number;
  /** Sequences actually processed (a short last micro-batch of an epoch counts its rows only). */
  readonly sequencesRun: number;
  /** Epochs actually covered; below `num_train_epochs` when accumulation does not divide an epoch. */
  readonly epochsRun: number;
}

/**
 * The Trainer's schedule (transformers ≥ 4.46, which LLaMA-Factory requires). It plans
 * `max_steps = ceil(epochs × floor(mb / GA))` but runs `ceil(mb / GA)` updates per epoch (the last one
 * with the remainder), so it stops early when GA does not divide the micro-batches of an epoch:
 * the seed's 481 rows, batch 2, GA 8 give 241 micro-batches, 30 planned and 31 run updates per
 * epoch, and 300 steps end at epoch 9.70 — as its log shows.
 */
export function trainerSchedule(
  rows: number,
  config: Pick<SftConfig, 'microBatch' | 'gradientAccumulation' | 'epochs' | 'maxSteps' | 'valSize' | 'packing' | 'cutoffLen'>,
  gpus: number,
  meanTokensPerRow: number,
): TrainerSchedule {
  // datasets.train_test_split: a fraction rounds the test share up; a count is taken as is.
  const evalRows = config.valSize <= 0 ? 0 : config.valSize < 1 ? Math.ceil(rows * config.valSize) : Math.min(rows - 1, Math.floor(config.valSize));
  const trainRows = Math.max(0, rows - evalRows);
  const sequencesPerEpoch = config.packing ? Math.ceil((trainRows * Math.min(meanTokensPerRow, config.cutoffLen)) / config.cutoffLen) : trainRows;
  const perMicroBatch = config.microBatch * gpus;
  const microBatchesPerEpoch = Math.max(1, Math.ceil(sequencesPerEpoch / perMicroBatch));
  const ga = config.gradientAccumulation;
  const plannedUpdatesPerEpoch = Math.max(1, Math.floor(microBatchesPerEpoch / ga));
  const runUpdatesPerEpoch = Math.ceil(microBatchesPerEpoch / ga);
  const optimizerSteps = config.maxSteps ?? Math.ceil(config.epochs * plannedUpdatesPerEpoch);

  const fullEpochs = Math.floor(optimizerSteps / runUpdatesPerEpoch);
  const remainingUpdates = optimizerSteps - fullEpochs * runUpdatesPerEpoch;
  const partialMicroBatches = Math.min(microBatchesPerEpoch, remainingUpdates * ga);
  const microBatchesRun = fullEpochs * microBatchesPerEpoch + partialMicroBatches;
  const sequencesRun = fullEpochs * sequencesPerEpoch + Math.min(sequencesPerEpoch, partialMicroBatches * perMicroBatch);
  return {
    trainRows,
    evalRows,
    sequencesPerEpoch,
    microBatchesPerEpoch,
    optimizerSteps,
    microBatchesRun,
    sequencesRun,
    epochsRun: fullEpochs + partialMicroBatches / microBatchesPerEpoch,
  };
}
