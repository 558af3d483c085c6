import type { ModelArchitecture } from './architecture.ts';
import { KNOWN_MODEL_TYPES, stateDictTensors } from '../planner/shapes.ts';

type Shape = Omit<ModelArchitecture, 'parameterCount'>;

/**
 * Weights a decoder layer holds beyond the Llama layout (seven linears, two RMSNorms), by
 * `model_type`. Gemma 2 adds a norm before and after its MLP; Gemma 3 also normalises q and k.
 */
const EXTRA_PER_LAYER: Readonly<Record<string, (a: Shape) => number>> = {
  gemma2: (a) => 2 * a.hiddenSize,
  gemma3_text: (a) => 2 * a.hiddenSize + 2 * a.headDim,
};

/**
 * Families whose tensors hold exactly the Llama layout's elements under other names: Phi-3 (and
 * Phi-4, `model_type` phi3) fuses q/k/v into `qkv_proj` and gate/up into `gate_up_proj`, without biases.
 */
const LLAMA_SIZED = new Set(['phi3']);

/** Model types whose parameter count tunepipe derives from config.json alone. */
export const COUNTABLE_MODEL_TYPES: ReadonlySet<string> = new Set([...KNOWN_MODEL_TYPES, ...LLAMA_SIZED, ...Object.keys(EXTRA_PER_LAYER)]);

/**
 * The parameters a model of this shape has once loaded (tied embeddings counted once, as
 * `model.parameters()` and so LLaMA-Factory's `all params` count them), or undefined for a family
 * whose tensor layout tunepipe does not know.
 */
export function parameterCountOf(shape: Shape): number | undefined {
  const extra = EXTRA_PER_LAYER[shape.modelType];
  const layout = KNOWN_MODEL_TYPES.has(shape.modelType) ? shape.modelType : extra || LLAMA_SIZED.has(shape.modelType) ? 'llama' : undefined;
  if (layout === undefined) return undefined;
  const base = stateDictTensors({ ...shape, modelType: layout, parameterCount: 0 }).reduce((sum, t) => sum + t.elements, 0);
  return base + (extra ? shape.numHiddenLayers * extra(shape) : 0);
}
