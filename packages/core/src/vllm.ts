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

/** Command-line arguments for flag → value pairs, in their order (after the positional model path). */
export function flagArgv(flags: Iterable<readonly [string, unknown]>): string[] {
  const argv: string[] = [];
  for (const [flag, value] of flags) {
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
