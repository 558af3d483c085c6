import { LLAMA3_8B, type ModelArchitecture } from '../model/architecture.ts';
import { llamaFactoryDefault } from '../defaults.ts';
import { ALLOCATOR_RESERVE_BAND, CUDA_CONTEXT_BAND, CUDA_CONTEXT_BYTES, NCCL_BUFFER_BYTES, SFT_ACTIVATION_BAND } from './assumptions.ts';
import { H100_LLAMA3_8B_LORA, type SftMeasurement } from './calibration.ts';
import { hasQkNorm, loraParamCount, loraTargets, type LinearShape, type LoraParamCount } from './shapes.ts';
import { breakdown, type MemoryBreakdown, type MemoryTerm, type PlannerIssue } from './types.ts';
import { worldSize, type ParallelLayout } from './layout.ts';
import { modelStates } from './parallel.ts';
import { n } from './internal.ts';
import { formatGiB } from './units.ts';

/**
 * LLaMA-Factory training arguments the planner reads, under their LLaMA-Factory names. Structurally
 * a superset of the DSL's `SftArgs`, so a stage's args can be passed as they are.
 */
export interface SftPlanArgs {
  /** `lora` or `full` (every parameter trained); `freeze` and `oft` are not modelled. @default 'lora' */
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
  /** QLoRA: the frozen decoder linears in 4 or 8 bits (bitsandbytes). @default none */
  readonly quantization_bit?: number;
  /** 4-bit only: bitsandbytes quantizes the per-block scales too. @default true (LLaMA-Factory) */
  readonly double_quantization?: boolean;
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
  /** `full`: every parameter is trainable (no adapters; `targets` is empty). */
  readonly finetuningType: 'lora' | 'full';
  /** QLoRA: bits of the frozen decoder linears (bitsandbytes), or undefined for 16-bit weights. */
  readonly quantizationBit: 4 | 8 | undefined;
  /** bitsandbytes' double quantization of the 4-bit block scales. */
  readonly doubleQuantization: boolean;
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
  /** `pure_bf16`: LoRA parameters stay in bf16 (no upcast, no autocast). */
  readonly pureBf16: boolean;
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

  let finetuningType: SftConfig['finetuningType'] = 'lora';
  if (args.finetuning_type === 'full') finetuningType = 'full';
  else if (args.finetuning_type !== undefined && args.finetuning_type !== 'lora') {
    bad('finetuning_type', args.finetuning_type, 'the planner models LoRA and full fine-tuning only', "use 'lora' or 'full'");
  }
  let quantizationBit: SftConfig['quantizationBit'];
  if (args.quantization_bit !== undefined) {
    if (args.quantization_bit === 4 || args.quantization_bit === 8) quantizationBit = args.quantization_bit;
    else bad('quantization_bit', args.quantization_bit, "bitsandbytes quantizes to 4 or 8 bits only (LLaMA-Factory's model_utils/quantization.py raises otherwise)", 'use 4 (QLoRA) or remove it');
    if (finetuningType === 'full') {
      bad('quantization_bit', args.quantization_bit, "a quantized model can only be trained with adapters: LLaMA-Factory's model/adapter.py raises 'Quantized models can only be used for the LoRA or OFT tuning'", "remove quantization_bit, or use finetuning_type: 'lora'");
      quantizationBit = undefined;
    }
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

  const targetsResolved =
    finetuningType === 'full' ? { modules: [], issues: [] } : loraTargets(arch, args.lora_target ?? llamaFactoryDefault<string>('lora_target'), `${path}.args.lora_target`);
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
  if (quantizationBit !== undefined) warnings.push(`quantization_bit ${quantizationBit} (QLoRA): training time assumes 16-bit matmul speed; bitsandbytes dequantizes every frozen weight on each pass, so it runs slower`);
  if (args.use_dora === true) warnings.push('DoRA is not modelled: it adds a magnitude vector and extra activations per target (estimate is low)');

  const dropout = typeof args.lora_dropout === 'number' && args.lora_dropout > 0 ? args.lora_dropout : 0;
  const valSize = typeof args.val_size === 'number' && args.val_size > 0 ? args.val_size : 0;
  const saveSteps = positive(args.save_steps) ? args.save_steps : llamaFactoryDefault<number>('save_steps');

  const config: SftConfig = {
    finetuningType,
    quantizationBit,
    doubleQuantization: args.double_quantization !== false,
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
    pureBf16: args.pure_bf16 === true,
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
  return { config, lora: trainableParamCount(arch, config), issues, warnings };
}

/**
 * Trainable parameters as LLaMA-Factory logs them: the adapters for LoRA, every parameter for full
 * fine-tuning (`trainable params: N || all params: N || trainable%: 100.0000`).
 */
export function trainableParamCount(arch: ModelArchitecture, config: Pick<SftConfig, 'finetuningType' | 'rank' | 'targets'>): LoraParamCount {
  if (config.finetuningType === 'full') return { trainable: arch.parameterCount, all: arch.parameterCount, trainablePercent: 100, perLayer: 0 };
  return loraParamCount(arch, config.rank, config.targets);
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

/**
 * Whether the adapters run in mixed precision: LLaMA-Factory upcasts the LoRA parameters to fp32
 * ("Upcasting trainable params to float32") unless `pure_bf16`, and the Trainer's autocast runs the
 * matmuls in 16 bits. PEFT then casts each adapter's input to the adapter's fp32 and autocast casts
 * it back to 16 bits: every adapter makes, and keeps, its own copy of its input.
 */
export function loraUpcast(config: Pick<SftConfig, 'precision' | 'pureBf16'>, arch: ModelArchitecture): boolean {
  return activationBytes(config.precision, arch) === 2 && !config.pureBf16;
}

/** Bytes per LoRA parameter (weights, gradients): fp32 when upcast, the model's dtype with pure_bf16. */
export function loraParamBytes(config: Pick<SftConfig, 'pureBf16'>): number {
  return config.pureBf16 ? 2 : 4;
}

export interface ActivationPart {
  readonly name: string;
  readonly bytesPerToken: number;
}

/** The tensor each adapter reads: adapters on the same tensor share it when nothing is cast. */
const LORA_INPUT: Readonly<Record<LinearShape['name'], string>> = {
  q_proj: 'attention input',
  k_proj: 'attention input',
  v_proj: 'attention input',
  o_proj: 'attention output',
  gate_proj: 'MLP input',
  up_proj: 'MLP input',
  down_proj: 'MLP product',
};

/**
 * Bytes one decoder layer keeps for its backward, per token, when it runs with autograd on (every
 * layer without gradient checkpointing; the one being recomputed with it). Only what autograd saves
 * counts: a frozen linear saves its weight, not its input (PyTorch saves a matmul operand only when
 * the other one needs a gradient), so the base model's projections keep nothing of their own.
 * - RMSNorm (×2): it upcasts its input to fp32 and keeps that (4·h) and the fp32 rsqrt (4 B); its
 *   output feeds frozen weights only, so it is not kept. Qwen3's per-head q/k norms likewise.
 * - Attention (SDPA or FlashAttention): the kernel keeps the RoPE-rotated q (a·nH·d), k and v
 *   (a·nKV·d each, grouped heads are not repeated) and its output (a·nH·d) with an fp32 log-sum-exp
 *   per head. RoPE itself keeps only cos and sin, shared by all layers. Eager attention keeps q and
 *   k, v repeated to every head instead, and its score matrices (a separate term).
 * - MLP: SiLU keeps its input (the gate output) and the product keeps both factors (SiLU's output
 *   and the up output): 3·a·I. The product itself feeds frozen down_proj and its adapter's copy.
 * - LoRA, per adapter: the 16-bit copy of its input that lora_A keeps for its weight gradient
 *   (a·in; shared by adapters on one tensor when nothing is cast), lora_A's output that lora_B
 *   keeps (a·r), and a 1-byte mask per input element when lora_dropout > 0.
 */
export function layerActivationParts(arch: ModelArchitecture, config: SftConfig): ActivationPart[] {
  const a = activationBytes(config.precision, arch);
  const h = arch.hiddenSize;
  const d = arch.headDim;
  const nH = arch.numAttentionHeads;
  const nKV = arch.numKeyValueHeads;
  const i = arch.intermediateSize;
  const upcast = loraUpcast(config, arch);
  const sharedInputs = new Map<string, number>();
  for (const t of config.targets) sharedInputs.set(LORA_INPUT[t.name], t.inFeatures);
  const inputCopies = upcast
    ? config.targets.reduce((sum, t) => sum + a * t.inFeatures, 0)
    : [...sharedInputs.values()].reduce((sum, inFeatures) => sum + a * inFeatures, 0);
  const lora = inputCopies + config.targets.length * a * config.rank + (config.dropout > 0 ? config.targets.reduce((sum, t) => sum + t.inFeatures, 0) : 0);
  // Trainable weights need their inputs for the weight gradient: q/k/v share the attention input
  // and gate/up the MLP input; o_proj's input is the attention output kept above; the norms'
  // weights need their normalised 16-bit inputs.
  const trainedInputs: ActivationPart = config.finetuningType === 'full'
    ? { name: 'linear inputs for weight gradients (attention, MLP, down_proj) + normalised RMSNorm inputs ×2', bytesPerToken: 2 * a * h + a * i + 2 * a * h }
    : { name: `LoRA inputs (${config.targets.length} targets, r=${config.rank}${upcast ? ', one 16-bit copy each' : ''})`, bytesPerToken: lora };
  return [
    { name: 'RMSNorm fp32 inputs + rsqrt, ×2', bytesPerToken: 2 * (4 * h + 4) },
    ...(hasQkNorm(arch) ? [{ name: 'q/k RMSNorm fp32 inputs + rsqrt', bytesPerToken: (nH + nKV) * (4 * d + 4) }] : []),
    config.eagerAttention
      ? { name: 'attention q, k, v (k, v repeated to every head)', bytesPerToken: 3 * a * nH * d }
      : { name: 'attention q, k, v, output + log-sum-exp', bytesPerToken: a * (2 * nH + 2 * nKV) * d + 4 * nH },
    { name: 'MLP gate, SiLU(gate), up', bytesPerToken: 3 * a * i },
    trainedInputs,
  ];
}

export function layerActivationBytesPerToken(arch: ModelArchitecture, config: SftConfig): number {
  return layerActivationParts(arch, config).reduce((s, p) => s + p.bytesPerToken, 0);
}

/** The widest input of an adapter (down_proj's I for Llama with `all`), 0 without adapters. */
const widestLoraInput = (config: SftConfig): number => Math.max(0, ...config.targets.map((t) => t.inFeatures));

/**
 * Gradients that exist at once inside one layer's backward, per token: in the MLP the gradients of
 * the product, of SiLU's output and of the up output (3·I) next to the incoming and residual
 * gradients (2·h), in the activation dtype; with the upcast, PEFT's cast hands the widest adapter
 * input's gradient back through fp32 (4·I for down_proj).
 */
export function layerGradientBytesPerToken(arch: ModelArchitecture, config: SftConfig): number {
  const a = activationBytes(config.precision, arch);
  return (3 * arch.intermediateSize + 2 * arch.hiddenSize) * a + (loraUpcast(config, arch) ? 4 * widestLoraInput(config) : 0);
}

/**
 * Per token, what one checkpointed layer's forward (run without autograd) allocates and frees: the
 * MLP's gate, up, SiLU and product outputs (4·a·I) and PEFT's fp32 upcast of the widest adapter
 * input. The caching allocator keeps these blocks reserved after the forward.
 */
export function layerForwardWorkingSetBytesPerToken(arch: ModelArchitecture, config: SftConfig): number {
  const a = activationBytes(config.precision, arch);
  return 4 * a * arch.intermediateSize + (loraUpcast(config, arch) ? 4 * widestLoraInput(config) : 0);
}

/**
 * Blocks the caching allocator has reserved but not in use at the peak, before the fitted factor:
 * the forward's per-layer working set, and the 16-bit logits, freed before the backward (the
 * Trainer drops the model's outputs) in a block too small for the fp32 gradients that follow.
 */
function reserveBasisBytes(arch: ModelArchitecture, config: SftConfig): number {
  const tokens = config.microBatch * config.peakSequenceLength;
  const logits = config.liger ? 0 : tokens * arch.vocabSize * activationBytes(config.precision, arch);
  return logits + tokens * layerForwardWorkingSetBytesPerToken(arch, config);
}

export interface SftMemory extends MemoryBreakdown {
  readonly lora: LoraParamCount;
  /** The layout the memory is per GPU of. */
  readonly layout: ParallelLayout;
  /** Weights, gradients and optimizer states per GPU (the ZeRO paper's "model states"). */
  readonly modelStateBytes: number;
  /** What the layout keeps in host memory per pod (ZeRO-3 offload); empty otherwise. */
  readonly hostTerms: readonly MemoryTerm[];
  readonly layerActivationBytesPerToken: number;
  /** What `torch.cuda.max_memory_allocated()` reports at the end of the run. */
  readonly allocatedBytes: number;
  /** What `torch.cuda.max_memory_reserved()` reports: allocated + blocks the allocator keeps cached. */
  readonly reservedBytes: number;
  /**
   * Where in the step the peak is: `loss`, the start of the backward, when the fp32 log-softmax,
   * its gradient and the logits' gradient coexist; or `layer`, the last layer's backward.
   */
  readonly peakPhase: 'loss' | 'layer';
  /** Bytes of the phase that is not the peak (on top of the same persistent bytes). */
  readonly otherPhaseBytes: number;
}

interface Phase {
  readonly terms: MemoryTerm[];
  readonly bytes: number;
}
const phase = (terms: MemoryTerm[]): Phase => ({ terms, bytes: terms.reduce((s, t) => s + t.bytes, 0) });

/**
 * Peak GPU memory per GPU of a LoRA SFT step, term by term, as the trainer holds it:
 * 1. What lives all along: the frozen weights, the LoRA weights, their gradients and the optimizer
 *    states.
 * 2. What the forward leaves for the backward: with gradient checkpointing each layer's input
 *    (and RoPE's cos/sin, shared); without it every layer's activations.
 * 3. The larger of two moments (`peakPhase`): the loss's backward, when the fp32 log-softmax the
 *    loss kept, its gradient from the NLL loss and the gradient of the fp32 logits coexist (the
 *    16-bit logits and their fp32 upcast are freed by then, 12 B per logit); or the last layer's
 *    backward, with that layer recomputed and the gradients inside it.
 * 4. `allocatedBytes` is their sum; the caching allocator's reserve on top gives `reservedBytes`;
 *    the CUDA context on top of that is what `nvidia-smi` shows and what must fit (`totalBytes`).
 * Data parallelism (gpus > 1) replicates the model: memory per GPU does not shrink; DDP adds its
 * gradient buckets and NCCL its buffers.
 */
export function sftMemory(arch: ModelArchitecture, config: SftConfig, gpus = 1, layout?: ParallelLayout): SftMemory {
  return sftMemoryWithReserve(arch, config, layout ?? { nodes: 1, gpusPerNode: gpus, strategy: 'ddp' }, ALLOCATOR_RESERVE_FACTOR);
}

function sftMemoryWithReserve(arch: ModelArchitecture, config: SftConfig, layout: ParallelLayout, reserveFactor: number): SftMemory {
  const gpus = worldSize(layout);
  const lora = trainableParamCount(arch, config);
  const a = activationBytes(config.precision, arch);
  const b = config.microBatch;
  const s = config.peakSequenceLength;
  const tokens = b * s;
  const layerBytes = layerActivationBytesPerToken(arch, config);
  const h = arch.hiddenSize;
  const v = arch.vocabSize;
  const L = arch.numHiddenLayers;
  const bxs = `${n(b)} × ${n(s)} tokens`;
  const act = SFT_ACTIVATION_BAND;

  const states = modelStates(arch, config, layout);
  const fixed: MemoryTerm[] = [...states.before];

  const rotary = { name: 'rotary cos/sin (shared by the layers)', bytes: tokens * arch.headDim * 2 * a, detail: `${bxs} × ${arch.headDim} × 2 × ${a} B`, band: act };
  const scores = (layers: number): MemoryTerm => ({
    // Eager attention keeps the softmax in fp32 (4 B) and its 16-bit cast (a B) per score.
    name: `attention score matrices (eager, ${layers === 1 ? 'one layer' : 'every layer'})`,
    bytes: layers * b * arch.numAttentionHeads * s ** 2 * (4 + a),
    detail: `${layers} layer(s) × ${n(b)} × ${arch.numAttentionHeads} heads × ${n(s)}² × ${4 + a} B`,
    band: act,
  });
  const persistent: MemoryTerm[] = config.gradientCheckpointing
    ? [{ name: 'checkpointed layer inputs', bytes: L * tokens * h * a, detail: `${L} layers × ${bxs} × ${n(h)} hidden × ${a} B`, band: act }, rotary]
    : [
        { name: 'activations of every layer', bytes: L * tokens * layerBytes, detail: `${L} layers × ${bxs} × ${n(layerBytes)} B/token/layer`, band: act },
        rotary,
        ...(config.eagerAttention ? [scores(L)] : []),
      ];

  const finalNorm: MemoryTerm = { name: 'final RMSNorm fp32 input', bytes: tokens * (4 * h + 4), detail: `${bxs} × (4 × ${n(h)} + 4) B, kept for its backward`, band: act };
  // Full fine-tuning trains lm_head: its input is kept for the weight gradient, which is computed
  // in 16 bits before it is added to the gradient the states hold.
  const lmHeadTraining: MemoryTerm[] =
    config.finetuningType === 'full'
      ? [
          { name: "lm_head input (kept for lm_head's weight gradient)", bytes: tokens * h * a, detail: `${bxs} × ${n(h)} × ${a} B`, band: act },
          { name: 'lm_head weight gradient (16-bit, before accumulation)', bytes: v * h * a, detail: `${n(v)} × ${n(h)} × ${a} B`, band: act },
        ]
      : [];
  const logits = tokens * v;
  const loss = phase(
    config.liger
      ? (() => {
          // Fused linear cross-entropy computes the loss and the hidden states' gradient in the
          // forward, a chunk of about hidden-size rows at a time: the logits never exist in full.
          const chunk = Math.min(tokens, Math.ceil(tokens / Math.ceil(v / h)));
          return [
            finalNorm,
            ...lmHeadTraining,
            { name: 'hidden-state gradient (Liger, computed in the forward)', bytes: tokens * h * a, detail: `${bxs} × ${n(h)} × ${a} B`, band: act },
            { name: 'logits chunk and its gradient (Liger, fp32)', bytes: chunk * v * 4 * 2, detail: `${n(chunk)} tokens × ${n(v)} vocab × 4 B × 2`, band: act },
          ];
        })()
      : [
          finalNorm,
          ...lmHeadTraining,
          { name: 'log-softmax output (fp32, kept by the loss)', bytes: logits * 4, detail: `${bxs} × ${n(v)} vocab × 4 B; the 16-bit logits and their fp32 upcast are freed by now`, band: act },
          { name: 'its gradient from the NLL loss (fp32)', bytes: logits * 4, detail: `${bxs} × ${n(v)} × 4 B`, band: act },
          { name: 'gradient of the fp32 logits', bytes: logits * 4, detail: `${bxs} × ${n(v)} × 4 B, before it is cast back to ${a * 8} bits`, band: act },
        ],
  );
  const gradients: MemoryTerm = {
    name: 'gradients inside the layer',
    bytes: tokens * layerGradientBytesPerToken(arch, config),
    detail: `${bxs} × ${n(layerGradientBytesPerToken(arch, config))} B: MLP and residual gradients${loraUpcast(config, arch) ? ', fp32 gradient of the widest adapter input' : ''}`,
    band: act,
  };
  const layer = phase(
    config.gradientCheckpointing
      ? [
          { name: 'last layer recomputed in backward', bytes: tokens * layerBytes, detail: `${bxs} × ${n(layerBytes)} B/token/layer`, band: act },
          ...(config.eagerAttention ? [scores(1)] : []),
          gradients,
        ]
      : [gradients],
  );
  const lossPeak = loss.bytes >= layer.bytes;
  const peak = lossPeak ? loss : layer;
  const allocatedTerms = [...fixed, ...persistent, ...peak.terms, ...states.after];
  const allocatedBytes = allocatedTerms.reduce((sum, t) => sum + t.bytes, 0);

  const basis = reserveBasisBytes(arch, config);
  const reserve: MemoryTerm = {
    name: 'allocator reserve (cached, unused blocks)',
    bytes: basis * reserveFactor,
    detail: `${reserveFactor.toFixed(2)} × ${formatGiB(basis)} freed before the peak (${config.liger ? '' : '16-bit logits, '}one layer's forward working set); factor fitted on the H100 measurement`,
    band: ALLOCATOR_RESERVE_BAND,
  };
  const outside: MemoryTerm[] = [
    { name: 'CUDA context (outside PyTorch)', bytes: CUDA_CONTEXT_BYTES, detail: `${formatGiB(CUDA_CONTEXT_BYTES)} assumed (300-800 MiB): counted by nvidia-smi, not by PyTorch`, band: CUDA_CONTEXT_BAND },
    ...(gpus > 1 ? [{ name: 'NCCL buffers', bytes: NCCL_BUFFER_BYTES, detail: `${formatGiB(NCCL_BUFFER_BYTES)} assumed`, band: CUDA_CONTEXT_BAND }] : []),
  ];
  return {
    ...breakdown('gpu', [...allocatedTerms, reserve, ...outside]),
    lora,
    layout,
    modelStateBytes: states.modelStateBytes,
    hostTerms: states.host,
    layerActivationBytesPerToken: layerBytes,
    allocatedBytes,
    reservedBytes: allocatedBytes + reserve.bytes,
    peakPhase: lossPeak ? 'loss' : 'layer',
    otherPhaseBytes: lossPeak ? layer.bytes : loss.bytes,
  };
}

/** The configuration of the calibration measurements (calibration.ts), resolved as LLaMA-Factory would. */
function calibrationConfig(m: SftMeasurement): SftConfig {
  const args: SftPlanArgs = { lora_rank: 8, lora_target: 'all', per_device_train_batch_size: m.microBatch, cutoff_len: m.sequenceLength, bf16: true };
  return resolveSft(LLAMA3_8B, args, { rows: 1 }, 'calibration').config;
}

/**
 * The caching allocator's reserve as a multiple of the blocks freed before the peak, fitted on the
 * one measured reserved peak (H100, 2 × 1024: 19.76 − 18.72 = 1.04 GiB): ≈ 1.27, i.e. a quarter more
 * than the blocks named here (block rounding, other blocks freed in the forward).
 */
export const ALLOCATOR_RESERVE_FACTOR: number = (() => {
  const m = H100_LLAMA3_8B_LORA.find((x) => x.reservedBytes !== undefined)!;
  return (m.reservedBytes! - m.allocatedBytes) / reserveBasisBytes(LLAMA3_8B, calibrationConfig(m));
})();

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
