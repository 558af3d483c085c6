import type { ModelArchitecture } from '../model/architecture.ts';
import type { PlannerIssue } from './types.ts';
import { didYouMean } from '../issues.ts';

/** The linear layers of one decoder layer of a Llama-family model (llama, mistral, qwen2, qwen3). */
export const LINEAR_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LinearModuleName = (typeof LINEAR_MODULES)[number];

export interface LinearShape {
  readonly name: LinearModuleName;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bias: boolean;
}

/** Model types whose tensor layout this file knows exactly (checked against `parameterCount`). */
const QKV_BIAS = new Set(['qwen2']);
const MLP_MODULES: ReadonlySet<string> = new Set(['gate_proj', 'up_proj', 'down_proj']);
const QK_NORM = new Set(['qwen3']);
export const KNOWN_MODEL_TYPES = new Set(['llama', 'mistral', 'qwen2', 'qwen3']);

/** Whether the model normalises q and k per head before RoPE (Qwen3). */
export const hasQkNorm = (arch: ModelArchitecture): boolean => QK_NORM.has(arch.modelType);

/** Shapes of the seven linear layers of one decoder layer. */
export function decoderLinears(arch: ModelArchitecture): LinearShape[] {
  const h = arch.hiddenSize;
  const q = arch.numAttentionHeads * arch.headDim;
  const kv = arch.numKeyValueHeads * arch.headDim;
  const i = arch.intermediateSize;
  const qkvBias = QKV_BIAS.has(arch.modelType);
  return [
    { name: 'q_proj', inFeatures: h, outFeatures: q, bias: qkvBias },
    { name: 'k_proj', inFeatures: h, outFeatures: kv, bias: qkvBias },
    { name: 'v_proj', inFeatures: h, outFeatures: kv, bias: qkvBias },
    { name: 'o_proj', inFeatures: q, outFeatures: h, bias: false },
    { name: 'gate_proj', inFeatures: h, outFeatures: i, bias: false },
    { name: 'up_proj', inFeatures: h, outFeatures: i, bias: false },
    { name: 'down_proj', inFeatures: i, outFeatures: h, bias: false },
  ];
}

/** Weight elements of the linear layers of one decoder layer (biases excluded). */
export function linearWeightsPerLayer(arch: ModelArchitecture): number {
  return decoderLinears(arch).reduce((sum, l) => sum + l.inFeatures * l.outFeatures, 0);
}

/**
 * Parameters that take part in a matrix multiply per token: every decoder linear plus the LM head.
 * The input embedding is a table lookup (no FLOPs); with tied embeddings the same matrix is the head.
 */
export function matmulParams(arch: ModelArchitecture): number {
  return arch.numHiddenLayers * linearWeightsPerLayer(arch) + arch.vocabSize * arch.hiddenSize;
}

export interface NamedTensor {
  readonly name: string;
  readonly elements: number;
}

/**
 * The model's tensors in the order `save_pretrained` writes them (module registration order:
 * embed_tokens, then per layer self_attn q/k/v/o (+ biases, + q/k norms), mlp gate/up/down,
 * input_layernorm, post_attention_layernorm, then the final norm and lm_head).
 */
export function stateDictTensors(arch: ModelArchitecture): NamedTensor[] {
  const h = arch.hiddenSize;
  const out: NamedTensor[] = [{ name: 'model.embed_tokens.weight', elements: arch.vocabSize * h }];
  const linears = decoderLinears(arch);
  for (let layer = 0; layer < arch.numHiddenLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    for (const l of linears) {
      const block = MLP_MODULES.has(l.name) ? 'mlp' : 'self_attn';
      out.push({ name: `${prefix}.${block}.${l.name}.weight`, elements: l.inFeatures * l.outFeatures });
      if (l.bias) out.push({ name: `${prefix}.${block}.${l.name}.bias`, elements: l.outFeatures });
      if (l.name === 'o_proj' && QK_NORM.has(arch.modelType)) {
        out.push({ name: `${prefix}.self_attn.q_norm.weight`, elements: arch.headDim });
        out.push({ name: `${prefix}.self_attn.k_norm.weight`, elements: arch.headDim });
      }
    }
    out.push({ name: `${prefix}.input_layernorm.weight`, elements: h });
    out.push({ name: `${prefix}.post_attention_layernorm.weight`, elements: h });
  }
  out.push({ name: 'model.norm.weight', elements: h });
  if (!arch.tieWordEmbeddings) out.push({ name: 'lm_head.weight', elements: arch.vocabSize * h });
  return out;
}

/**
 * Whether the tensor layout above reproduces the architecture's parameter count exactly: then shard
 * counts and GPTQ sizes are computed tensor by tensor; otherwise the planner falls back to bounds.
 */
export function tensorLayoutIsExact(arch: ModelArchitecture): boolean {
  if (!KNOWN_MODEL_TYPES.has(arch.modelType)) return false;
  return stateDictTensors(arch).reduce((s, t) => s + t.elements, 0) === arch.parameterCount;
}

export interface LoraTargets {
  readonly modules: readonly LinearShape[];
  readonly issues: readonly PlannerIssue[];
}

/**
 * The decoder linears a `lora_target` value selects. `all` is every linear layer of the decoder
 * (LLaMA-Factory's find_all_linear_modules excludes lm_head), i.e. q,k,v,o,gate,up,down.
 */
export function loraTargets(arch: ModelArchitecture, loraTarget: string, path: string): LoraTargets {
  const linears = decoderLinears(arch);
  const wanted = loraTarget
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (wanted.length === 0 || wanted.includes('all')) return { modules: linears, issues: [] };
  const issues: PlannerIssue[] = [];
  const selected = new Set<string>();
  for (const name of wanted) {
    if ((LINEAR_MODULES as readonly string[]).includes(name)) selected.add(name);
    else {
      issues.push({
        code: 'planner.lora-target',
        path,
        value: name,
        message: `is not a linear layer of a ${arch.modelType} decoder layer (${LINEAR_MODULES.join(', ')})`,
        fix: didYouMean(name, LINEAR_MODULES) ?? "use 'all' or a comma-separated list of those names",
      });
    }
  }
  return { modules: linears.filter((l) => selected.has(l.name)), issues };
}

export interface LoraParamCount {
  /** Trainable LoRA parameters: r × (in + out) for each targeted linear, in every layer. */
  readonly trainable: number;
  /** Base parameters plus the LoRA parameters, as LLaMA-Factory logs `all params`. */
  readonly all: number;
  /** `trainable / all` in percent, as logged (`trainable%`). */
  readonly trainablePercent: number;
  readonly perLayer: number;
}

/** Exact LoRA parameter counts (A is r × in, B is out × r; no biases). */
export function loraParamCount(arch: ModelArchitecture, rank: number, modules: readonly LinearShape[]): LoraParamCount {
  const perLayer = modules.reduce((sum, m) => sum + rank * (m.inFeatures + m.outFeatures), 0);
  const trainable = perLayer * arch.numHiddenLayers;
  const all = arch.parameterCount + trainable;
  return { trainable, all, trainablePercent: (100 * trainable) / all, perLayer };
}
