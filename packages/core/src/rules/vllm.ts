import type { Issue } from '../issues.ts';
import { VLLM_SERVE_FLAGS, VLLM_SOURCE } from '../reference/vllm-serve-flags.gen.ts';
import { vllmFlagName } from '../vllm.ts';

/**
 * Values `LoRAConfig` accepts for `--max-lora-rank` in the pinned vLLM 0.11.0: `possible_max_ranks`
 * in `LoRAConfig.__post_init__` (vllm/config/lora.py of the installed 0.11.0 wheel, the one
 * reference/vllm-serve-flags.gen.ts was read from). Any other value stops the engine at start.
 * Later vLLM releases turn this into the `MaxLoRARanks` Literal and add 1; re-read it when the pin moves.
 */
export const VLLM_MAX_LORA_RANKS: readonly number[] = [8, 16, 32, 64, 128, 256, 320, 512];

/** Flags whose argparse type is vLLM's `human_readable_int` ('32k' = 32000, '32K' = 32768) in 0.11.0. */
const HUMAN_READABLE_INT_FLAGS = new Set(['--max-model-len', '--max-num-batched-tokens', '--kv-cache-memory-bytes']);

export interface VllmValueContext {
  /** The served model's context length in tokens (max_position_embeddings), when known. */
  readonly contextTokens?: number;
}

interface FlagRange {
  readonly min?: number;
  /** `min` itself is not allowed. */
  readonly minExclusive?: boolean;
  readonly max?: number;
  readonly meaning: string;
}

const RANGES: Readonly<Record<string, FlagRange>> = {
  // vLLM refuses > 1 when the cache config is built; 0 or less leaves no memory for the KV cache.
  '--gpu-memory-utilization': { min: 0, minExclusive: true, max: 1, meaning: 'the share of GPU memory vLLM may use' },
  '--max-num-seqs': { min: 1, meaning: 'how many sequences one batch may hold' },
  '--max-num-batched-tokens': { min: 1, meaning: 'how many tokens one batch may hold' },
  '--tensor-parallel-size': { min: 1, meaning: 'how many GPUs one model is split over' },
  '--pipeline-parallel-size': { min: 1, meaning: 'how many pipeline stages the model is split into' },
  '--data-parallel-size': { min: 1, meaning: 'how many model replicas one server runs' },
  '--max-model-len': { min: 1, meaning: 'the longest prompt + output in tokens' },
  '--max-loras': { min: 1, meaning: 'how many adapters one batch may use' },
  '--max-cpu-loras': { min: 1, meaning: 'how many adapters are kept in host memory' },
  '--port': { min: 1, max: 65535, meaning: 'a TCP port' },
  '--swap-space': { min: 0, meaning: 'GiB of host memory per GPU for swapped-out sequences' },
  '--cpu-offload-gb': { min: 0, meaning: 'GiB of weights offloaded to host memory' },
  '--api-server-count': { min: 1, meaning: 'how many API server processes run' },
};

const INT = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const HUMAN_INT = /^(\d+(?:\.\d+)?)([kKmMgG])$/;
const DECIMAL: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9 };
const BINARY: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/**
 * The number vLLM's argparse makes of a flag's value (`int()`, `float()`, or `human_readable_int`
 * for the flags that use it), or undefined when it would refuse it. Readers that need the value of
 * a numeric flag (the planner) use this, so `'32k'`, `32000` and `'32000'` are one answer.
 */
export function vllmNumber(flag: string, value: unknown): number | undefined {
  const canonical = vllmFlagName(flag);
  const type = VLLM_SERVE_FLAGS[canonical]?.type;
  // NaN and ±Infinity come back as they are: they are range errors, not type errors.
  if (typeof value === 'number') return type === 'integer' && Number.isFinite(value) && !Number.isInteger(value) ? undefined : value;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (type === 'integer') {
    if (INT.test(text)) return Number(text);
    if (!HUMAN_READABLE_INT_FLAGS.has(canonical)) return undefined;
    const m = HUMAN_INT.exec(text);
    if (!m) return undefined;
    const [, digits, suffix] = m as unknown as [string, string, string];
    if (suffix in DECIMAL) return Math.trunc(Number(digits) * DECIMAL[suffix]!);
    // vLLM refuses decimals with binary suffixes ('1.5K').
    return INT.test(digits) ? Number(digits) * BINARY[suffix]! : undefined;
  }
  if (type === 'number') {
    if (FLOAT.test(text)) return Number(text);
    // Python's float() also reads these; they are range errors, not type errors.
    if (/^[+-]?(inf|infinity)$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
    if (/^[+-]?nan$/i.test(text)) return NaN;
  }
  return undefined;
}

const describe = (r: FlagRange, integer: boolean): string =>
  [integer ? 'an integer' : 'a number', r.min !== undefined ? `${r.minExclusive ? '>' : '≥'} ${r.min}` : '', r.max !== undefined ? `${r.min !== undefined ? 'and ' : ''}≤ ${r.max}` : ''].filter(Boolean).join(' ');

/**
 * Type and range problems of `vllm serve` flag values. `flags` maps flags to values; keys may be
 * spelled any way vllmFlagName reads (`--max-model-len`, `max_model_len`, `max-model-len`, `-tp`),
 * and two spellings of one flag are reported. `pathOf` is called with the key as given. Unknown
 * flags and string choices are check()'s (`vllm.unknown`, `vllm.choice`); derived flags are
 * checked like any other, since the typed serve options reach them (`port`).
 */
export function vllmValueIssues(flags: Readonly<Record<string, unknown>>, ctx: VllmValueContext, pathOf: (flag: string) => string): Issue[] {
  const issues: Issue[] = [];
  const seen = new Map<string, string>();
  const numbers = new Map<string, { value: number; key: string }>();
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const flag = vllmFlagName(key);
    const path = pathOf(key);
    const first = seen.get(flag);
    if (first !== undefined) {
      issues.push({ code: 'vllm.duplicate', path, value, message: `${flag} is set twice, as '${first}' and as '${key}'`, fix: `keep one of them` });
      continue;
    }
    seen.set(flag, key);
    const spec = VLLM_SERVE_FLAGS[flag];
    if (!spec) continue;
    const typeIssue = typeProblem(flag, spec.type, value);
    if (typeIssue) {
      issues.push({ code: 'vllm.type', path, value, ...typeIssue });
      continue;
    }
    if (spec.type !== 'integer' && spec.type !== 'number') continue;
    const n = vllmNumber(flag, value)!;
    if (!Number.isFinite(n)) {
      issues.push({ code: 'vllm.range', path, value: String(value), message: `${flag} must be a finite number`, fix: `give ${RANGES[flag] ? describe(RANGES[flag], spec.type === 'integer') : 'a finite number'}` });
      continue;
    }
    const rangeIssue = rangeProblem(flag, n, spec.type === 'integer', spec.choices, ctx);
    if (rangeIssue) {
      issues.push({ path, value, ...rangeIssue });
      continue;
    }
    numbers.set(flag, { value: n, key });
  }
  const pair = (a: string, b: string) => [numbers.get(a), numbers.get(b)] as const;
  // vLLM's scheduler config refuses a batch token budget below the batch's sequence count.
  const [tokens, seqs] = pair('--max-num-batched-tokens', '--max-num-seqs');
  if (tokens && seqs && tokens.value < seqs.value) {
    issues.push({ code: 'vllm.range', path: pathOf(tokens.key), value: tokens.value, message: `--max-num-batched-tokens (${tokens.value}) is below --max-num-seqs (${seqs.value}); vLLM stops at start`, fix: `use at least ${seqs.value}, or lower --max-num-seqs` });
  }
  // LoRAConfig refuses fewer host-memory adapter slots than GPU ones.
  const [cpu, gpu] = pair('--max-cpu-loras', '--max-loras');
  if (cpu && gpu && cpu.value < gpu.value) {
    issues.push({ code: 'vllm.range', path: pathOf(cpu.key), value: cpu.value, message: `--max-cpu-loras (${cpu.value}) is below --max-loras (${gpu.value}); vLLM stops at start`, fix: `use at least ${gpu.value}, or remove it (it defaults to --max-loras)` });
  }
  return issues;
}

function typeProblem(flag: string, type: string, value: unknown): { message: string; fix: string } | undefined {
  const got = Array.isArray(value) ? 'a list' : value === null ? 'null' : typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
  switch (type) {
    case 'flag':
    case 'boolean':
      return typeof value === 'boolean' ? undefined : { message: `${flag} is an on/off switch; got ${got}`, fix: type === 'flag' ? 'use true to add the flag, or remove it' : `use true (${flag}) or false (--no-${flag.slice(2)})` };
    case 'bool':
      // vLLM reads this flag's value with Python's bool(): every non-empty string, 'false' included, is True.
      return typeof value === 'boolean' ? undefined : { message: `${flag} takes true or false; vLLM reads a text value with Python's bool(), so ${JSON.stringify(String(value))} would mean true`, fix: 'use true or false' };
    case 'integer':
    case 'number': {
      if (vllmNumber(flag, value) !== undefined) return undefined;
      const integer = type === 'integer';
      const human = HUMAN_READABLE_INT_FLAGS.has(flag) ? " or a size such as '32k'" : '';
      return { message: `${flag} takes ${integer ? 'an integer' : 'a number'}${human}; got ${got}`, fix: typeof value === 'number' ? `use ${Math.round(value)}` : `give ${integer ? 'an integer' : 'a number'}${human}` };
    }
    case 'integer[]': {
      const items = Array.isArray(value) ? value : [value];
      return items.length > 0 && items.every((v) => (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && INT.test(v.trim())))
        ? undefined
        : { message: `${flag} takes a list of integers; got ${got}`, fix: "give integers, e.g. ['1', '2', '4']" };
    }
    case 'string[]': {
      const items = Array.isArray(value) ? value : [value];
      return items.length > 0 && items.every((v) => typeof v === 'string') ? undefined : { message: `${flag} takes one or more strings; got ${got}`, fix: 'give a string or a list of strings' };
    }
    case 'json': {
      if (typeof value !== 'string') return { message: `${flag} takes JSON text; got ${got}`, fix: typeof value === 'object' && value !== null ? 'pass JSON.stringify(<the object>)' : 'give a JSON object as a string' };
      try {
        JSON.parse(value);
        return undefined;
      } catch (e) {
        return { message: `${flag} is not valid JSON: ${(e as Error).message}`, fix: 'give valid JSON text, e.g. \'{"key": 1}\'' };
      }
    }
    case 'string':
    case 'json_or_string':
      // A number is written as its digits, which is what the flag receives from a shell too.
      return typeof value === 'string' || (type === 'string' && typeof value === 'number' && Number.isFinite(value)) ? undefined : { message: `${flag} takes a string; got ${got}`, fix: 'give a string' };
    default:
      return undefined;
  }
}

function rangeProblem(flag: string, n: number, integer: boolean, choices: readonly unknown[] | undefined, ctx: VllmValueContext): Omit<Issue, 'path'> | undefined {
  if (flag === '--max-lora-rank' && !VLLM_MAX_LORA_RANKS.includes(n)) {
    const up = VLLM_MAX_LORA_RANKS.find((r) => r >= n);
    return { code: 'vllm.range', message: `vLLM ${VLLM_SOURCE.packageVersion} accepts --max-lora-rank ${VLLM_MAX_LORA_RANKS.join(', ')} only; it stops at start on ${n}`, fix: up !== undefined ? `use ${up} (the smallest allowed value ≥ ${n}, which must also be ≥ the adapter's lora_rank)` : `use ${VLLM_MAX_LORA_RANKS[VLLM_MAX_LORA_RANKS.length - 1]}, and train with lora_rank ≤ that` };
  }
  if (choices && choices.every((c) => typeof c === 'number') && !choices.includes(n)) {
    return { code: 'vllm.choice', message: `${flag} is one of ${choices.join(', ')}`, fix: `use one of ${choices.join(', ')}` };
  }
  const range = RANGES[flag];
  if (range) {
    const low = range.min !== undefined && (range.minExclusive ? n <= range.min : n < range.min);
    const high = range.max !== undefined && n > range.max;
    if (low || high) return { code: 'vllm.range', message: `${flag} must be ${describe(range, integer)}: it is ${range.meaning}`, fix: `use ${describe(range, integer)}` };
  }
  if (flag === '--max-model-len' && ctx.contextTokens !== undefined && n > ctx.contextTokens) {
    return {
      code: 'vllm.range',
      message: `--max-model-len ${n} is longer than the model's context (${ctx.contextTokens} tokens); vLLM stops at start ("User-specified max_model_len … is greater than the derived max_model_len")`,
      fix: `use at most ${ctx.contextTokens}`,
    };
  }
  return undefined;
}
