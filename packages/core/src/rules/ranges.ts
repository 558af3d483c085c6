import type { Issue } from '../issues.ts';
import { LLAMAFACTORY_ARGS } from '../reference/llamafactory-args.gen.ts';

/**
 * Numeric ranges of LLaMA-Factory keys. The argument table gives each key's type and default; the
 * range comes from what the key means to the code that reads it (PEFT, transformers' Trainer,
 * LLaMA-Factory's own argument post-processing), and is checked on every route into the key
 * (typed `args`, `extraArgs`), so a value that would stop the tool inside a GPU pod, or silently
 * mean something else, is caught before anything runs.
 *
 * Values of the wrong type (a string for a number) are left to the type check against the table;
 * NaN and ±Infinity are reported here, for every numeric key.
 */

interface Bound {
  readonly value: number;
  /** The bound itself is allowed. */
  readonly inclusive: boolean;
}

interface NumericRule {
  readonly integer?: boolean;
  readonly min?: Bound;
  readonly max?: Bound;
  /** What the key means, to say why the range is what it is. */
  readonly meaning: string;
  /** The valid values in words, when the bounds alone do not say it. */
  readonly range?: string;
  /** A value in range that is still worth a second look. */
  readonly unusual?: (value: number, context: RangeContext) => { message: string; fix: string } | undefined;
  /** A value the plain bounds accept or reject wrongly, with its own verdict. */
  readonly special?: (value: number) => { severity: 'error' | 'warning'; message: string; fix: string } | undefined;
}

export interface RangeContext {
  /** LLaMA-Factory's finetuning_type; tunepipe trains LoRA adapters. @default 'lora' */
  readonly finetuningType?: string;
}

const atLeast = (value: number): Bound => ({ value, inclusive: true });
const above = (value: number): Bound => ({ value, inclusive: false });
const atMost = (value: number): Bound => ({ value, inclusive: true });
const below = (value: number): Bound => ({ value, inclusive: false });

const count = (meaning: string): NumericRule => ({ integer: true, min: atLeast(1), meaning });

/**
 * transformers' TrainingArguments take logging/eval/save intervals as "an integer or a float in
 * range [0,1)"; below 1 the value is a ratio of the total training steps (transformers PR #23235,
 * and the `save_steps` docstring of the pinned transformers 4.57.1). Above 1 a fraction stops the
 * Trainer at start ("--save_steps must be an integer if bigger than 1"). 0 is not useful: logging
 * raises on it, and saving every 0 steps means never.
 */
const interval = (what: string): NumericRule => ({
  min: above(0),
  range: 'a whole number of steps ≥ 1, or a ratio between 0 and 1 (0.25 = every quarter of the run)',
  meaning: `${what} every N optimizer steps (an integer ≥ 1), or a ratio of the whole run (a number between 0 and 1)`,
  special: (v) =>
    v > 1 && !Number.isInteger(v)
      ? { severity: 'error', message: `${v} is neither a whole number of steps nor a ratio below 1; the Trainer stops with "must be an integer if bigger than 1"`, fix: `use ${Math.round(v)} (steps) or a ratio such as 0.25` }
      : undefined,
});

/** numpy's seed (which transformers' set_seed calls) must lie in [0, 2**32 - 1]. */
const SEED_MAX = 2 ** 32 - 1;

const RULES: Readonly<Record<string, NumericRule>> = {
  lora_rank: {
    integer: true,
    min: atLeast(1),
    meaning: 'the LoRA rank is the inner dimension of the adapter matrices',
    unusual: (v) =>
      v > 256 ? { message: `rank ${v} is far above the usual 8–128: the adapter's memory and size grow with the rank, quality rarely does`, fix: 'try 16–64 first; raise it only if evaluation says the adapter underfits' } : undefined,
  },
  lora_alpha: {
    integer: true,
    min: above(0),
    meaning: "LoRA alpha scales the adapter's update (by alpha / rank)",
    // LLaMA-Factory sets `lora_alpha = lora_alpha or lora_rank * 2`: a 0 is read as "unset".
    special: (v) => (v === 0 ? { severity: 'error', message: 'lora_alpha 0 is read as unset and becomes 2 × lora_rank', fix: 'remove lora_alpha to get 2 × lora_rank, or give the scale you want (e.g. 16)' } : undefined),
  },
  lora_dropout: { min: atLeast(0), max: below(1), meaning: 'lora_dropout is the probability that an input to the adapter is zeroed (1 would zero all of them)' },
  learning_rate: {
    min: above(0),
    meaning: 'the learning rate is the optimizer step size',
    unusual: (v, ctx) =>
      (ctx.finetuningType ?? 'lora') === 'lora' && v > 1e-2
        ? { message: `learning rate ${v} is very high for LoRA (usual: 5e-5 to 5e-4); the loss is likely to diverge`, fix: 'use 1e-4 to 2e-4, e.g. 2e-4' }
        : undefined,
  },
  num_train_epochs: { min: above(0), meaning: 'num_train_epochs is how many passes over the training set to make (fractions allowed)' },
  per_device_train_batch_size: count('the batch size per GPU is a number of rows'),
  per_device_eval_batch_size: count('the evaluation batch size per GPU is a number of rows'),
  gradient_accumulation_steps: count('gradient_accumulation_steps is how many batches make one optimizer step'),
  save_steps: interval('a checkpoint is saved'),
  logging_steps: interval('the loss is logged'),
  eval_steps: interval('the validation set is evaluated'),
  cutoff_len: count('cutoff_len is the maximum tokens of a training row'),
  max_new_tokens: count('max_new_tokens is how many tokens generation may add'),
  max_length: count('max_length is the longest generated sequence in tokens'),
  export_quantization_maxlen: count('export_quantization_maxlen is the token length of each GPTQ calibration sample'),
  export_quantization_nsamples: count('export_quantization_nsamples is how many calibration samples GPTQ reads'),
  max_samples: count('max_samples is how many rows of each dataset to keep'),
  warmup_steps: { integer: true, min: atLeast(0), meaning: 'warmup_steps is how many optimizer steps the learning rate ramps up over' },
  max_grad_norm: {
    min: atLeast(0),
    meaning: 'max_grad_norm is the norm gradients are clipped to',
    // The Trainer clips only when max_grad_norm > 0, so 0 turns clipping off rather than failing.
    unusual: (v) => (v === 0 ? { message: 'max_grad_norm 0 turns gradient clipping off', fix: "remove it to clip at 1.0 (the Trainer's default), unless no clipping is what you want" } : undefined),
  },
  temperature: { min: atLeast(0), meaning: 'temperature divides the logits before sampling' },
  top_p: { min: above(0), max: atMost(1), meaning: 'top_p is the probability mass sampling keeps' },
  top_k: { integer: true, min: atLeast(0), meaning: 'top_k is how many most likely tokens sampling keeps (0 = no limit)' },
  num_beams: count('num_beams is the beam-search width (1 = no beam search)'),
  repetition_penalty: { min: above(0), meaning: 'repetition_penalty divides the logits of tokens already generated (1 = none)' },
  seed: { integer: true, min: atLeast(0), max: atMost(SEED_MAX), meaning: 'the seed goes to numpy, which takes 0 to 2³²−1' },
  data_seed: { integer: true, min: atLeast(0), max: atMost(SEED_MAX), meaning: 'the data seed goes to numpy, which takes 0 to 2³²−1' },
  weight_decay: { min: atLeast(0), meaning: 'weight_decay is the decoupled L2 penalty of AdamW' },
  adam_beta1: { min: atLeast(0), max: below(1), meaning: "adam_beta1 is the decay of Adam's first moment" },
  adam_beta2: { min: atLeast(0), max: below(1), meaning: "adam_beta2 is the decay of Adam's second moment" },
  adam_epsilon: { min: above(0), meaning: "adam_epsilon keeps Adam's division away from zero" },
  label_smoothing_factor: { min: atLeast(0), max: below(1), meaning: 'label smoothing moves this share of the target probability to the other tokens' },
  dataloader_num_workers: { integer: true, min: atLeast(0), meaning: 'dataloader_num_workers is a number of worker processes (0 = load in the main process)' },
  preprocessing_num_workers: count('preprocessing_num_workers is a number of worker processes'),
  save_total_limit: count('save_total_limit is how many checkpoints to keep'),
  eval_accumulation_steps: count('eval_accumulation_steps is how many evaluation batches are gathered before moving them to the CPU'),
  ddp_timeout: count('ddp_timeout is the seconds a distributed process waits for the others'),
};

/** The keys with a numeric range beyond their type (export_size included). */
export const RANGED_LLAMAFACTORY_KEYS: readonly string[] = [...Object.keys(RULES), 'export_size'].sort();

function describeRange(rule: NumericRule): string {
  if (rule.range !== undefined) return rule.range;
  const kind = rule.integer ? 'an integer' : 'a number';
  const lo = rule.min ? `${rule.min.inclusive ? '≥' : '>'} ${rule.min.value}` : undefined;
  const hi = rule.max ? `${rule.max.inclusive ? '≤' : '<'} ${rule.max.value}` : undefined;
  return [kind, [lo, hi].filter(Boolean).join(' and ')].filter(Boolean).join(' ');
}

function inRange(value: number, rule: NumericRule): boolean {
  if (rule.min && (rule.min.inclusive ? value < rule.min.value : value <= rule.min.value)) return false;
  if (rule.max && (rule.max.inclusive ? value > rule.max.value : value >= rule.max.value)) return false;
  return true;
}

function defaultHint(key: string): string {
  const d = Object.hasOwn(LLAMAFACTORY_ARGS, key) ? LLAMAFACTORY_ARGS[key]!.default : undefined;
  return d === null || d === undefined ? '' : ` (LLaMA-Factory's default is ${JSON.stringify(d)})`;
}

/**
 * Range problems of one LLaMA-Factory key's value: `args.range` (error) when the tool would fail
 * or the value cannot mean what was intended, `args.unusual` (warning) when it works but is very
 * likely a mistake. `export_size` keeps its own codes (`export.size`, `export.size-zero`).
 */
export function llamaFactoryRangeIssues(key: string, value: unknown, path: string, context: RangeContext = {}): Issue[] {
  if (key === 'export_size') return exportSizeIssues(value, path);
  if (typeof value !== 'number') return [];
  const rule = Object.hasOwn(RULES, key) ? RULES[key] : undefined;
  if (!Number.isFinite(value)) {
    // Only keys that take numbers: an unknown key or a string key is someone else's finding.
    const numeric = rule !== undefined || (Object.hasOwn(LLAMAFACTORY_ARGS, key) && ['int', 'float'].includes(LLAMAFACTORY_ARGS[key]!.type));
    if (!numeric) return [];
    return [
      {
        code: 'args.range',
        path,
        value: String(value),
        message: `${key} is ${String(value)}; the YAML config would carry ${Number.isNaN(value) ? '.nan' : value > 0 ? '.inf' : '-.inf'}, which no setting means`,
        fix: `give a finite number${rule ? `: ${describeRange(rule)}` : ''}${defaultHint(key)}`,
      },
    ];
  }
  if (!rule) return [];
  // Non-integers for integer keys are the type check's (args.type); ranges are checked on whole numbers only.
  if (rule.integer && !Number.isInteger(value)) return [];
  const special = rule.special?.(value);
  if (special) return [{ code: special.severity === 'error' ? 'args.range' : 'args.unusual', path, value, message: special.message, fix: special.fix, ...(special.severity === 'warning' ? { severity: 'warning' as const } : {}) }];
  if (!inRange(value, rule)) {
    return [{ code: 'args.range', path, value, message: `must be ${describeRange(rule)}: ${rule.meaning}`, fix: `use ${describeRange(rule)}${defaultHint(key)}` }];
  }
  const unusual = rule.unusual?.(value, context);
  if (unusual) return [{ code: 'args.unusual', path, value, message: unusual.message, fix: unusual.fix, severity: 'warning' }];
  return [];
}

/** Shard size of merge and quantize exports (the codes check.ts has always used). */
function exportSizeIssues(size: unknown, path: string): Issue[] {
  if (size === undefined) return [];
  if (!(typeof size === 'number' && Number.isInteger(size) && size >= 0)) {
    return [{ code: 'export.size', path, value: typeof size === 'number' && !Number.isFinite(size) ? String(size) : size, message: 'export_size is the shard size in whole GB (it becomes max_shard_size="<n>GB"), not a shard count or a fraction', fix: 'use a positive integer, e.g. 4 or 5' }];
  }
  if (size === 0) {
    // save_pretrained puts every tensor larger than the limit in a shard of its own: at 0 GB, all of them.
    return [{ code: 'export.size-zero', path, value: size, message: 'export_size 0 writes every tensor to a shard of its own (hundreds of files for an 8B model)', fix: 'use a positive integer, e.g. 4 or 5, unless one file per tensor is what you want', severity: 'warning' }];
  }
  return [];
}
