import { LLAMAFACTORY_ARGS } from './reference/llamafactory-args.gen.ts';

/**
 * A LLaMA-Factory key's default in the pinned LLaMA-Factory, read from its introspected argument
 * table: the planner, the checks and the configs tunepipe writes all take defaults from here, so
 * none can drift from the image that runs them.
 */
export function llamaFactoryDefault<T = unknown>(key: string): T {
  if (!Object.hasOwn(LLAMAFACTORY_ARGS, key)) throw new Error(`internal: LLaMA-Factory has no argument ${key}`);
  return LLAMAFACTORY_ARGS[key]!.default as T;
}

function defaultsOf<K extends string>(keys: readonly K[]): Readonly<Record<K, unknown>> {
  return Object.fromEntries(keys.map((k) => [k, llamaFactoryDefault(k)])) as Record<K, unknown>;
}

/** Written into every export config, so the YAML says what runs. */
export const EXPORT_DEFAULTS = defaultsOf(['export_size', 'export_legacy_format'] as const);
/** GPTQ calibration: windows and tokens per window. */
export const CALIBRATION_DEFAULTS = defaultsOf(['export_quantization_nsamples', 'export_quantization_maxlen'] as const);
/** Generation settings of evaluate and predict, in the order they are written. */
export const GENERATION_DEFAULTS = defaultsOf(['cutoff_len', 'per_device_eval_batch_size', 'max_new_tokens', 'do_sample', 'temperature', 'top_p'] as const);

/** vLLM's own default port; the Service, the probes, verify and the local runner read the resolved one. */
export const VLLM_DEFAULT_PORT = 8000;
