import { LLAMA3_8B, QWEN2_5_7B, type ModelArchitecture } from './architecture.ts';
import type { ModelHub } from '../handles.ts';

/** The terms a model is published under on Hugging Face. */
export interface ModelLicense {
  /** The license as the model card names it (`license`, or `license_name` for `other`), e.g. `llama3.1`, `apache-2.0`. */
  readonly name: string;
  /**
   * Whether Hugging Face serves the files only to accounts that accepted the terms: fetching needs
   * a hub token of such an account (`token`, or the platform's default hub token).
   */
  readonly gated: boolean;
}

/** A model people fine-tune with LLaMA-Factory, with the facts a pipeline needs to use it. */
export interface CatalogueModel {
  /** Repository id on Hugging Face, as the model's publisher names it today. */
  readonly huggingface: string;
  /** Earlier names of the repository that Hugging Face still redirects (and LLaMA-Factory still lists). */
  readonly aliases?: readonly string[];
  /** Repository id on ModelScope, as LLaMA-Factory's model list names it, where the model is mirrored there. */
  readonly modelscope?: string;
  readonly family: string;
  /** The published config.json's facts (the test table cites where each was read). */
  readonly architecture: ModelArchitecture;
  /**
   * Tokens the published checkpoint is configured for (`max_position_embeddings`), which is what
   * vLLM serves by default. Longer contexts some cards advertise need rope scaling set by hand.
   */
  readonly contextLength: number;
  /** LLaMA-Factory's chat template for the model (`template:`), one of the pinned release's templates. */
  readonly template: string;
  readonly license: ModelLicense;
}

type Entry = Omit<CatalogueModel, 'contextLength'>;

function arch(modelType: string, shape: Omit<ModelArchitecture, 'modelType' | 'torchDtype'>): ModelArchitecture {
  return { modelType, ...shape, torchDtype: 'bfloat16' };
}

const LLAMA = { family: 'Llama 3' } as const;
const GATED = (name: string): ModelLicense => ({ name, gated: true });
const OPEN = (name: string): ModelLicense => ({ name, gated: false });

const LLAMA3_1_8B: ModelArchitecture = { ...LLAMA3_8B, maxPositionEmbeddings: 131072 };
const LLAMA3_1_70B = arch('llama', { parameterCount: 70_553_706_496, hiddenSize: 8192, intermediateSize: 28672, numHiddenLayers: 80, numAttentionHeads: 64, numKeyValueHeads: 8, headDim: 128, vocabSize: 128256, maxPositionEmbeddings: 131072, tieWordEmbeddings: false });
const LLAMA3_2_1B = arch('llama', { parameterCount: 1_235_814_400, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 16, numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 64, vocabSize: 128256, maxPositionEmbeddings: 131072, tieWordEmbeddings: true });
const LLAMA3_2_3B = arch('llama', { parameterCount: 3_212_749_824, hiddenSize: 3072, intermediateSize: 8192, numHiddenLayers: 28, numAttentionHeads: 24, numKeyValueHeads: 8, headDim: 128, vocabSize: 128256, maxPositionEmbeddings: 131072, tieWordEmbeddings: true });

const qwen2 = (shape: Omit<ModelArchitecture, 'modelType' | 'torchDtype' | 'headDim'>): ModelArchitecture => arch('qwen2', { ...shape, headDim: shape.hiddenSize / shape.numAttentionHeads });
const qwen3 = (shape: Omit<ModelArchitecture, 'modelType' | 'torchDtype' | 'headDim' | 'vocabSize' | 'maxPositionEmbeddings'>): ModelArchitecture =>
  arch('qwen3', { ...shape, headDim: 128, vocabSize: 151936, maxPositionEmbeddings: 40960 });

const ENTRIES: readonly Entry[] = [
  // Llama 3: gated on Hugging Face, each release under its own community license.
  { ...LLAMA, huggingface: 'meta-llama/Meta-Llama-3-8B', modelscope: 'LLM-Research/Meta-Llama-3-8B', architecture: LLAMA3_8B, template: 'llama3', license: GATED('llama3') },
  { ...LLAMA, huggingface: 'meta-llama/Meta-Llama-3-8B-Instruct', modelscope: 'LLM-Research/Meta-Llama-3-8B-Instruct', architecture: LLAMA3_8B, template: 'llama3', license: GATED('llama3') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.1-8B', aliases: ['meta-llama/Meta-Llama-3.1-8B'], modelscope: 'LLM-Research/Meta-Llama-3.1-8B', architecture: LLAMA3_1_8B, template: 'llama3', license: GATED('llama3.1') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.1-8B-Instruct', aliases: ['meta-llama/Meta-Llama-3.1-8B-Instruct'], modelscope: 'LLM-Research/Meta-Llama-3.1-8B-Instruct', architecture: LLAMA3_1_8B, template: 'llama3', license: GATED('llama3.1') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.1-70B-Instruct', aliases: ['meta-llama/Meta-Llama-3.1-70B-Instruct'], modelscope: 'LLM-Research/Meta-Llama-3.1-70B-Instruct', architecture: LLAMA3_1_70B, template: 'llama3', license: GATED('llama3.1') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.2-1B', modelscope: 'LLM-Research/Llama-3.2-1B', architecture: LLAMA3_2_1B, template: 'llama3', license: GATED('llama3.2') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.2-1B-Instruct', modelscope: 'LLM-Research/Llama-3.2-1B-Instruct', architecture: LLAMA3_2_1B, template: 'llama3', license: GATED('llama3.2') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.2-3B', modelscope: 'LLM-Research/Llama-3.2-3B', architecture: LLAMA3_2_3B, template: 'llama3', license: GATED('llama3.2') },
  { ...LLAMA, huggingface: 'meta-llama/Llama-3.2-3B-Instruct', modelscope: 'LLM-Research/Llama-3.2-3B-Instruct', architecture: LLAMA3_2_3B, template: 'llama3', license: GATED('llama3.2') },

  // Qwen2.5 Instruct: Apache-2.0 but for 3B (Qwen Research License) and 72B (Qwen License); the
  // configs set 32,768 positions (the cards' 128K needs YaRN rope scaling).
  { family: 'Qwen2.5', huggingface: 'Qwen/Qwen2.5-0.5B-Instruct', modelscope: 'Qwen/Qwen2.5-0.5B-Instruct', template: 'qwen', license: OPEN('apache-2.0'),
    architecture: qwen2({ parameterCount: 494_032_768, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24, numAttentionHeads: 14, numKeyValueHeads: 2, vocabSize: 151936, maxPositionEmbeddings: 32768, tieWordEmbeddings: true }) },
  { family: 'Qwen2.5', huggingface: 'Qwen/Qwen2.5-1.5B-Instruct', modelscope: 'Qwen/Qwen2.5-1.5B-Instruct', template: 'qwen', license: OPEN('apache-2.0'),
    architecture: qwen2({ parameterCount: 1_543_714_304, hiddenSize: 1536, intermediateSize: 8960, numHiddenLayers: 28, numAttentionHeads: 12, numKeyValueHeads: 2, vocabSize: 151936, maxPositionEmbeddings: 32768, tieWordEmbeddings: true }) },
  { family: 'Qwen2.5', huggingface: 'Qwen/Qwen2.5-3B-Instruct', modelscope: 'Qwen/Qwen2.5-3B-Instruct', template: 'qwen', license: OPEN('qwen-research'),
    architecture: qwen2({ parameterCount: 3_085_938_688, hiddenSize: 2048, intermediateSize: 11008, numHiddenLayers: 36, numAttentionHeads: 16, numKeyValueHeads: 2, vocabSize: 151936, maxPositionEmbeddings: 32768, tieWordEmbeddings: true }) },
  { family: 'Qwen2.5', huggingface: 'Qwen/Qwen2.5-7B-Instruct', modelscope: 'Qwen/Qwen2.5-7B-Instruct', template: 'qwen', license: OPEN('apache-2.0'), architecture: QWEN2_5_7B },
  { family: 'Qwen2.5', huggingface: 'Qwen/Qwen2.5-72B-Instruct', modelscope: 'Qwen/Qwen2.5-72B-Instruct', template: 'qwen', license: OPEN('qwen'),
    architecture: qwen2({ parameterCount: 72_706_203_648, hiddenSize: 8192, intermediateSize: 29568, numHiddenLayers: 80, numAttentionHeads: 64, numKeyValueHeads: 8, vocabSize: 152064, maxPositionEmbeddings: 32768, tieWordEmbeddings: false }) },

  // Qwen3 (the hybrid thinking releases): Apache-2.0, 40,960 positions in every config.
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-0.6B', modelscope: 'Qwen/Qwen3-0.6B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 596_049_920, hiddenSize: 1024, intermediateSize: 3072, numHiddenLayers: 28, numAttentionHeads: 16, numKeyValueHeads: 8, tieWordEmbeddings: true }) },
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-1.7B', modelscope: 'Qwen/Qwen3-1.7B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 1_720_574_976, hiddenSize: 2048, intermediateSize: 6144, numHiddenLayers: 28, numAttentionHeads: 16, numKeyValueHeads: 8, tieWordEmbeddings: true }) },
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-4B', modelscope: 'Qwen/Qwen3-4B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 4_022_468_096, hiddenSize: 2560, intermediateSize: 9728, numHiddenLayers: 36, numAttentionHeads: 32, numKeyValueHeads: 8, tieWordEmbeddings: true }) },
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-8B', modelscope: 'Qwen/Qwen3-8B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 8_190_735_360, hiddenSize: 4096, intermediateSize: 12288, numHiddenLayers: 36, numAttentionHeads: 32, numKeyValueHeads: 8, tieWordEmbeddings: false }) },
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-14B', modelscope: 'Qwen/Qwen3-14B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 14_768_307_200, hiddenSize: 5120, intermediateSize: 17408, numHiddenLayers: 40, numAttentionHeads: 40, numKeyValueHeads: 8, tieWordEmbeddings: false }) },
  { family: 'Qwen3', huggingface: 'Qwen/Qwen3-32B', modelscope: 'Qwen/Qwen3-32B', template: 'qwen3', license: OPEN('apache-2.0'),
    architecture: qwen3({ parameterCount: 32_762_123_264, hiddenSize: 5120, intermediateSize: 25600, numHiddenLayers: 64, numAttentionHeads: 64, numKeyValueHeads: 8, tieWordEmbeddings: false }) },

  // Mistral's repositories ask for contact details before download (gated), under Apache-2.0.
  { family: 'Mistral', huggingface: 'mistralai/Mistral-7B-Instruct-v0.3', modelscope: 'LLM-Research/Mistral-7B-Instruct-v0.3', template: 'mistral', license: GATED('apache-2.0'),
    architecture: arch('mistral', { parameterCount: 7_248_023_552, hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, vocabSize: 32768, maxPositionEmbeddings: 32768, tieWordEmbeddings: false }) },

  // Gemma: gated behind Google's usage license. LLaMA-Factory 0.9.4 trains the text-only Gemma 3 1B
  // with the gemma2 template (gemma3 is its multimodal one).
  { family: 'Gemma 2', huggingface: 'google/gemma-2-2b-it', modelscope: 'LLM-Research/gemma-2-2b-it', template: 'gemma2', license: GATED('gemma'),
    architecture: arch('gemma2', { parameterCount: 2_614_341_888, hiddenSize: 2304, intermediateSize: 9216, numHiddenLayers: 26, numAttentionHeads: 8, numKeyValueHeads: 4, headDim: 256, vocabSize: 256000, maxPositionEmbeddings: 8192, tieWordEmbeddings: true }) },
  { family: 'Gemma 3', huggingface: 'google/gemma-3-1b-it', modelscope: 'LLM-Research/gemma-3-1b-it', template: 'gemma2', license: GATED('gemma'),
    architecture: arch('gemma3_text', { parameterCount: 999_885_952, hiddenSize: 1152, intermediateSize: 6912, numHiddenLayers: 26, numAttentionHeads: 4, numKeyValueHeads: 1, headDim: 256, vocabSize: 262144, maxPositionEmbeddings: 32768, tieWordEmbeddings: true }) },

  // Phi: MIT. Phi-3 and Phi-4 share transformers' phi3 architecture (fused qkv and gate/up projections).
  { family: 'Phi-3', huggingface: 'microsoft/Phi-3-mini-4k-instruct', modelscope: 'LLM-Research/Phi-3-mini-4k-instruct', template: 'phi', license: OPEN('mit'),
    architecture: arch('phi3', { parameterCount: 3_821_079_552, hiddenSize: 3072, intermediateSize: 8192, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 32, headDim: 96, vocabSize: 32064, maxPositionEmbeddings: 4096, tieWordEmbeddings: false }) },
  { family: 'Phi-4', huggingface: 'microsoft/phi-4', modelscope: 'LLM-Research/phi-4', template: 'phi4', license: OPEN('mit'),
    architecture: arch('phi3', { parameterCount: 14_659_507_200, hiddenSize: 5120, intermediateSize: 17920, numHiddenLayers: 40, numAttentionHeads: 40, numKeyValueHeads: 10, headDim: 128, vocabSize: 100352, maxPositionEmbeddings: 16384, tieWordEmbeddings: false }) },

  // DeepSeek-R1 distills: MIT, not gated; their embeddings are untied even where the Qwen base tied them.
  { family: 'DeepSeek-R1-Distill', huggingface: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B', modelscope: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B', template: 'deepseekr1', license: OPEN('mit'),
    architecture: qwen2({ parameterCount: 1_777_088_000, hiddenSize: 1536, intermediateSize: 8960, numHiddenLayers: 28, numAttentionHeads: 12, numKeyValueHeads: 2, vocabSize: 151936, maxPositionEmbeddings: 131072, tieWordEmbeddings: false }) },
  { family: 'DeepSeek-R1-Distill', huggingface: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B', modelscope: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B', template: 'deepseekr1', license: OPEN('mit'),
    architecture: qwen2({ parameterCount: 32_763_876_352, hiddenSize: 5120, intermediateSize: 27648, numHiddenLayers: 64, numAttentionHeads: 40, numKeyValueHeads: 8, vocabSize: 152064, maxPositionEmbeddings: 131072, tieWordEmbeddings: false }) },
  { family: 'DeepSeek-R1-Distill', huggingface: 'deepseek-ai/DeepSeek-R1-Distill-Llama-8B', modelscope: 'deepseek-ai/DeepSeek-R1-Distill-Llama-8B', template: 'deepseekr1', license: OPEN('mit'), architecture: LLAMA3_1_8B },
];

/**
 * The models tunepipe knows by id: `baseModel({ hub, id, revision, template })` needs no
 * `architecture` for them. Each entry's facts are checked against the model's published
 * config.json in test/model-catalogue.test.ts.
 */
export const MODEL_CATALOGUE: readonly CatalogueModel[] = ENTRIES.map((e) => ({ ...e, contextLength: e.architecture.maxPositionEmbeddings }));

/** Every id a catalogue model answers to on the hub (or on either hub), for lookups and suggestions. */
export function catalogueIds(hub?: ModelHub): string[] {
  return MODEL_CATALOGUE.flatMap((m) => idsOf(m, hub));
}

function idsOf(model: CatalogueModel, hub: ModelHub | undefined): string[] {
  const hf = [model.huggingface, ...(model.aliases ?? [])];
  if (hub === 'huggingface') return hf;
  if (hub === 'modelscope') return model.modelscope ? [model.modelscope] : [];
  return [...hf, ...(model.modelscope ? [model.modelscope] : [])];
}

/**
 * The catalogue model a hub repository id names (Hugging Face ids, their redirected old names, and
 * ModelScope ids; case-insensitive, as both hubs are), on the given hub or on either.
 */
export function catalogueModel(id: string, hub?: ModelHub): CatalogueModel | undefined {
  if (typeof id !== 'string') return undefined;
  const wanted = id.trim().toLowerCase();
  return MODEL_CATALOGUE.find((m) => idsOf(m, hub).some((known) => known.toLowerCase() === wanted));
}
