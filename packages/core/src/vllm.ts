import type { ServeOptions } from './dsl.ts';
import { VLLM_SERVE_FLAGS } from './reference/vllm-serve-flags.gen.ts';

const ALIASES = new Map(Object.entries(VLLM_SERVE_FLAGS).flatMap(([flag, spec]) => (spec.aliases ?? []).map((alias) => [alias, flag] as const)));

/**
 * The canonical long flag: `max_model_len`, `--max-model-len` and `max-model-len` all name
 * `--max-model-len`, and a short alias (`-tp`) names its long flag.
 */
export function vllmFlagName(key: string): string {
  const alias = ALIASES.get(key.startsWith('-') ? key : `-${key}`);
  if (alias) return alias;
  return `--${key.replace(/^-+/, '').replace(/_/g, '-')}`;
}

/**
 * Flags tunepipe derives itself; setting them by hand would fight the compiler (a tensor-parallel
 * size other than the GPUs the pod requests makes vLLM fail at start).
 */
export const DERIVED_VLLM_FLAGS = new Set(['--model', '--port', '--served-model-name', '--api-key', '--host', '--tensor-parallel-size']);

/** The typed serve options and free-form `args`, as one flag → value map. */
export function vllmFlagValues(
  pipelineName: string,
  options: ServeOptions,
  gpus: number,
): Map<string, string | number | boolean | readonly string[]> {
  const flags = new Map<string, string | number | boolean | readonly string[]>();
  flags.set('--served-model-name', options.servedModelName ?? pipelineName);
  flags.set('--port', options.port ?? 8000);
  if (options.maxModelLen !== undefined) flags.set('--max-model-len', options.maxModelLen);
  if (options.gpuMemoryUtilization !== undefined) flags.set('--gpu-memory-utilization', options.gpuMemoryUtilization);
  if (options.maxNumSeqs !== undefined) flags.set('--max-num-seqs', options.maxNumSeqs);
  if (gpus > 1) flags.set('--tensor-parallel-size', gpus);
  for (const key of Object.keys(options.args ?? {}).sort()) {
    flags.set(vllmFlagName(key), options.args![key]!);
  }
  return flags;
}

/** Command-line arguments after the positional model path. */
export function servedArgs(pipelineName: string, options: ServeOptions, gpus: number): string[] {
  const argv: string[] = [];
  for (const [flag, value] of vllmFlagValues(pipelineName, options, gpus)) {
    const type = VLLM_SERVE_FLAGS[flag]?.type;
    if (typeof value === 'boolean') {
      if (value) argv.push(flag);
      // argparse BooleanOptionalAction flags have a --no- form; store_true flags are simply absent.
      else if (type === 'boolean') argv.push(`--no-${flag.slice(2)}`);
    } else if (Array.isArray(value)) {
      argv.push(flag, ...value.map(String));
    } else {
      argv.push(flag, String(value));
    }
  }
  return argv;
}
