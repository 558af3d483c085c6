// The model catalogue against the models' published config.json facts, and what a pipeline on a
// catalogue model (or on one the catalogue lacks) gets from check(), the planner and compile().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  analysePipeline,
  architectureFromConfig,
  catalogueModel,
  CheckError,
  check,
  compile,
  definePipeline,
  fromConfigJson,
  LLAMA3_8B,
  LLAMAFACTORY_TEMPLATES,
  MODEL_CATALOGUE,
  parameterCountOf,
  QWEN2_5_7B,
  type BaseModelOptions,
  type Pipeline,
} from '../src/index.ts';
import { context } from './fixtures.ts';

/*
 * Where the facts were read. Each row below names its sources; "copy" means a verbatim copy of the
 * published config.json, "Hub record" the Hugging Face API record of the repository (safetensors
 * parameter total and dtype, gating, license tag), "card" the model card's text.
 *
 * LITGPT   Lightning-AI/litgpt litgpt/config.py @26857050 (shapes, each block citing the HF config.json)
 * MLC      mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f0 (copies)
 * PROF     citsjtu2020/LLM-Prof sglang/Model_Config.md @8434c8d1 (copies)
 * ALAIN    daniel-p-green/alain-ai-learning-platform out/research-<model>/sources/huggingface/
 *          {config.json (copy), model.json (Hub record)} @522537bc
 * CARDS    ZHUI/paddlenlp_model_readme <org>/<model>/index.md @40a7101e (cards with their front matter)
 * LF       hiyouga/LLaMA-Factory v0.9.4 src/llamafactory/extras/constants.py (templates, ModelScope ids)
 * SEARCH   copies found by content search of public code, no repository named (index id given)
 */

/** The config.json keys the catalogue reads, as published (keys the file leaves out are left out). */
interface Published {
  readonly model_type: string;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly head_dim?: number;
  readonly vocab_size: number;
  readonly max_position_embeddings: number;
  readonly tie_word_embeddings?: boolean;
  readonly torch_dtype: string;
}

interface Row {
  readonly id: string;
  readonly config: Published;
  /** The published size: exact (a Hub record's safetensors total) or as the card rounds it. */
  readonly published?: { readonly params: number; readonly exact: boolean };
}

const exact = (params: number) => ({ params, exact: true });
const card = (billions: number) => ({ params: billions * 1e9, exact: false });

const LLAMA3_8B_CONFIG = { model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, tie_word_embeddings: false, torch_dtype: 'bfloat16' } as const;
const LLAMA3_2_1B_CONFIG = { model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: true, torch_dtype: 'bfloat16' } as const;
const LLAMA3_2_3B_CONFIG = { model_type: 'llama', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: true, torch_dtype: 'bfloat16' } as const;
const qwen3 = (c: Pick<Published, 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads' | 'tie_word_embeddings'>): Published => ({
  model_type: 'qwen3', num_key_value_heads: 8, head_dim: 128, vocab_size: 151936, max_position_embeddings: 40960, torch_dtype: 'bfloat16', ...c,
});

const ROWS: readonly Row[] = [
  // LITGPT Meta-Llama-3-8B{,-Instruct} (block 8192); ALAIN meta-llama-meta-llama-3-8b Hub record:
  // 8,030,261,248 BF16, gated manual, license:llama3; LLAMA3_8B is the Instruct config as the seed's training run logged it.
  { id: 'meta-llama/Meta-Llama-3-8B', config: { ...LLAMA3_8B_CONFIG, max_position_embeddings: 8192 }, published: exact(8_030_261_248) },
  // SEARCH id for "llama_3_8B_Instruct_cfg_str" (a copy, 8192 positions, rope_scaling null); CARDS Meta-Llama-3-8B-Instruct: "8B", license llama3.
  { id: 'meta-llama/Meta-Llama-3-8B-Instruct', config: { ...LLAMA3_8B_CONFIG, max_position_embeddings: 8192 }, published: card(8) },
  // PROF "Llama-3.1-8B" (copy, eos 128001: the base model); CARDS Meta-Llama-3.1-8B: license llama3.1, extra_gated_prompt.
  { id: 'meta-llama/Llama-3.1-8B', config: { ...LLAMA3_8B_CONFIG, max_position_embeddings: 131072 }, published: card(8) },
  // MLC llama3_1_8b (copy, eos [128001, 128008, 128009]: the Instruct model); ALAIN meta-llama-llama-3-1-8b-instruct
  // Hub record: 8,030,261,248 BF16, gated manual, license:llama3.1.
  { id: 'meta-llama/Llama-3.1-8B-Instruct', config: { ...LLAMA3_8B_CONFIG, max_position_embeddings: 131072 }, published: exact(8_030_261_248) },
  // MLC llama3_1_70b (copy, Instruct eos list); LITGPT Meta-Llama-3.1-70B; CARDS Meta-Llama-3.1-70B-Instruct: "70B", llama3.1, gated.
  { id: 'meta-llama/Llama-3.1-70B-Instruct', config: { ...LLAMA3_8B_CONFIG, hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64, max_position_embeddings: 131072 }, published: card(70) },
  // MLC llama3_2_1b (copy, Instruct); LITGPT Llama-3.2-1B{,-Instruct}; ALAIN Hub records of both:
  // 1,235,814,400 BF16, gated manual, license:llama3.2.
  { id: 'meta-llama/Llama-3.2-1B', config: LLAMA3_2_1B_CONFIG, published: exact(1_235_814_400) },
  { id: 'meta-llama/Llama-3.2-1B-Instruct', config: LLAMA3_2_1B_CONFIG, published: exact(1_235_814_400) },
  // PROF "Llama-3.2-3B" (copy, eos 128001: base); MLC llama3_2_3b (copy, Instruct); CARDS Llama-3.2-3B{,-Instruct}: "3B (3.21B)", llama3.2, gated.
  { id: 'meta-llama/Llama-3.2-3B', config: LLAMA3_2_3B_CONFIG, published: card(3.21) },
  { id: 'meta-llama/Llama-3.2-3B-Instruct', config: LLAMA3_2_3B_CONFIG, published: card(3.21) },

  // SEARCH ids 70617338289 (a pinned Qwen2.5-0.5B/1.5B-Instruct config check) and 17290250238 (a README duplicating
  // Qwen/Qwen2.5-0.5B-Instruct's config.json); CARDS Qwen2.5-0.5B-Instruct: 0.49B, 32,768 tokens, Apache LICENSE (11.1 KB).
  { id: 'Qwen/Qwen2.5-0.5B-Instruct', config: { model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16' }, published: card(0.49) },
  // ALAIN qwen-qwen2-5-1-5b-instruct: copy; Hub record 1,543,714,304 BF16, not gated, apache-2.0.
  { id: 'Qwen/Qwen2.5-1.5B-Instruct', config: { model_type: 'qwen2', hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16' }, published: exact(1_543_714_304) },
  // ALAIN qwen-qwen2-5-3b-instruct: copy; Hub record 3,085,938,688 BF16, not gated, license other/qwen-research. Also PROF/MLC (base, same shape).
  { id: 'Qwen/Qwen2.5-3B-Instruct', config: { model_type: 'qwen2', hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16' }, published: exact(3_085_938_688) },
  // ALAIN qwen-qwen2-5-7b-instruct: copy; Hub record 7,615,616,512 BF16, not gated, apache-2.0 (QWEN2_5_7B).
  { id: 'Qwen/Qwen2.5-7B-Instruct', config: { model_type: 'qwen2', hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' }, published: exact(7_615_616_512) },
  // SEARCH id 62544871882 (a model report: the config.json and a safetensors total of 72,706,203,648) and
  // id 3787775639 (a test fixture, _name_or_path Qwen/Qwen2.5-72B-Instruct); CARDS: 72.7B, "config.json is set
  // for context length up to 32,768", LICENSE 6.8 KB (the Qwen license, not Apache's 11.1 KB).
  { id: 'Qwen/Qwen2.5-72B-Instruct', config: { model_type: 'qwen2', hidden_size: 8192, intermediate_size: 29568, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' }, published: exact(72_706_203_648) },

  // MLC qwen3_0.6b and ALAIN qwen-qwen3-0-6b (copies); card 0.6B. Its Hub record says 751,632,384: the
  // file stores lm_head beside the embedding it is tied to, and a loaded model holds one (596,049,920).
  { id: 'Qwen/Qwen3-0.6B', config: qwen3({ hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16, tie_word_embeddings: true }), published: card(0.6) },
  // MLC qwen3_1.7b (copy); LITGPT Qwen3-1.7B. No published size at hand.
  { id: 'Qwen/Qwen3-1.7B', config: qwen3({ hidden_size: 2048, intermediate_size: 6144, num_hidden_layers: 28, num_attention_heads: 16, tie_word_embeddings: true }) },
  // PROF Qwen3-4B / -8B / -14B (copies); LITGPT. No published sizes at hand.
  { id: 'Qwen/Qwen3-4B', config: qwen3({ hidden_size: 2560, intermediate_size: 9728, num_hidden_layers: 36, num_attention_heads: 32, tie_word_embeddings: true }) },
  { id: 'Qwen/Qwen3-8B', config: qwen3({ hidden_size: 4096, intermediate_size: 12288, num_hidden_layers: 36, num_attention_heads: 32, tie_word_embeddings: false }) },
  { id: 'Qwen/Qwen3-14B', config: qwen3({ hidden_size: 5120, intermediate_size: 17408, num_hidden_layers: 40, num_attention_heads: 40, tie_word_embeddings: false }) },
  // PROF Qwen3-32B and ALAIN qwen-qwen3-32b (copies); Hub record 32,762,123,264 BF16, not gated, apache-2.0.
  { id: 'Qwen/Qwen3-32B', config: qwen3({ hidden_size: 5120, intermediate_size: 25600, num_hidden_layers: 64, num_attention_heads: 64, tie_word_embeddings: false }), published: exact(32_762_123_264) },

  // MLC mistral_7b_v03 (copy); LITGPT Mistral-7B-Instruct-v0.3. Gated since April 2024 (contact details
  // asked): neuralmagic/sparseml#2249, openvinotoolkit/openvino.genai#371. No published size at hand.
  { id: 'mistralai/Mistral-7B-Instruct-v0.3', config: { model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32768, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },

  // MLC gemma2_2b (copy, eos [1, 107] and transformers 4.42.4: the -it release); LITGPT and AI-Hypercomputer/maxtext
  // hf_model_configs.py agree on the shape. No tie_word_embeddings key: transformers' Gemma2Config defaults it to
  // true (huggingface/transformers configuration_gemma2.py). Size: the Hugging Face blog's "2.6B parameter version".
  // Gated behind the Gemma license (google/gemma.cpp README front matter: extra_gated_*, license gemma).
  { id: 'google/gemma-2-2b-it', config: { model_type: 'gemma2', hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, vocab_size: 256000, max_position_embeddings: 8192, torch_dtype: 'bfloat16' }, published: card(2.6) },
  // MLC gemma3_1b_it and NVIDIA/TensorRT-LLM tests/unittest/_torch/modeling/test_modeling_gemma3.py (copies; the latter
  // cut to one layer); ALAIN google-gemma-3-1b-it Hub record: 999,885,952 BF16 (so the embedding is tied), gated manual, license:gemma.
  { id: 'google/gemma-3-1b-it', config: { model_type: 'gemma3_text', hidden_size: 1152, intermediate_size: 6912, num_hidden_layers: 26, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 256, vocab_size: 262144, max_position_embeddings: 32768, torch_dtype: 'bfloat16' }, published: exact(999_885_952) },

  // SEARCH: PHI3_MINI_4K_CONFIG in TensorRT-LLM's torch modeling tests and a hardware test citing
  // huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/config.json (copies); LITGPT. No published size at hand.
  { id: 'microsoft/Phi-3-mini-4k-instruct', config: { model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32064, max_position_embeddings: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  // SEARCH id 58256788114 (an annotated copy of microsoft/phi-4's config.json); LITGPT phi-4 (block 16384). No published size at hand.
  { id: 'microsoft/phi-4', config: { model_type: 'phi3', hidden_size: 5120, intermediate_size: 17920, num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 10, vocab_size: 100352, max_position_embeddings: 16384, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },

  // SEARCH id 52422771377 (the config as transformers prints it, _name_or_path deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B).
  // No published size at hand (the name's 1.5B is the Qwen base's, whose embedding is tied; this one's is not).
  { id: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B', config: { model_type: 'qwen2', hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 131072, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  // ALAIN deepseek-ai-deepseek-r1-distill-qwen-32b: copy; Hub record 32,763,876,352 BF16, not gated, license:mit.
  { id: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B', config: { model_type: 'qwen2', hidden_size: 5120, intermediate_size: 27648, num_hidden_layers: 64, num_attention_heads: 40, num_key_value_heads: 8, vocab_size: 152064, max_position_embeddings: 131072, tie_word_embeddings: false, torch_dtype: 'bfloat16' }, published: exact(32_763_876_352) },
  // ALAIN deepseek-ai-deepseek-r1-distill-llama-8b: copy; Hub record 8,030,261,248 BF16, not gated, license:mit.
  { id: 'deepseek-ai/DeepSeek-R1-Distill-Llama-8B', config: { ...LLAMA3_8B_CONFIG, max_position_embeddings: 131072 }, published: exact(8_030_261_248) },
];

test('every catalogue model has a row of published config.json facts, and every row a catalogue model', () => {
  assert.deepEqual(ROWS.map((r) => r.id), MODEL_CATALOGUE.map((m) => m.huggingface));
});

for (const row of ROWS) {
  test(`${row.id}: the catalogue's architecture is its config.json's`, () => {
    const model = catalogueModel(row.id)!;
    const read = architectureFromConfig(row.config as unknown as Record<string, unknown>, undefined);
    assert.deepEqual(read.problems, []);
    assert.deepEqual(model.architecture, read.architecture);
    assert.equal(model.contextLength, row.config.max_position_embeddings);
  });

  test(`${row.id}: the parameter count follows from the shapes and matches the published size`, () => {
    const { architecture } = catalogueModel(row.id)!;
    const { parameterCount, ...shape } = architecture;
    assert.equal(parameterCountOf(shape), parameterCount);
    if (!row.published) return;
    if (row.published.exact) assert.equal(parameterCount, row.published.params);
    else assert.ok(Math.abs(parameterCount / row.published.params - 1) <= 0.01, `${parameterCount} is not within 1% of ${row.published.params}`);
  });
}

test("each catalogue model's template is one the pinned LLaMA-Factory registers, and ids are unique", () => {
  for (const model of MODEL_CATALOGUE) assert.ok(LLAMAFACTORY_TEMPLATES.includes(model.template), `${model.huggingface}: ${model.template}`);
  // No id names two models (Qwen and DeepSeek use one id on both hubs: the same model).
  const owner = new Map<string, string>();
  for (const m of MODEL_CATALOGUE) {
    for (const id of [m.huggingface, ...(m.aliases ?? []), ...(m.modelscope ? [m.modelscope] : [])].map((i) => i.toLowerCase())) {
      assert.equal(owner.get(id) ?? m.huggingface, m.huggingface, id);
      owner.set(id, m.huggingface);
    }
  }
});

test('the built-in LLAMA3_8B and QWEN2_5_7B are the catalogue entries of their models', () => {
  assert.deepEqual(catalogueModel('meta-llama/Meta-Llama-3-8B-Instruct')!.architecture, LLAMA3_8B);
  assert.deepEqual(catalogueModel('Qwen/Qwen2.5-7B-Instruct')!.architecture, QWEN2_5_7B);
});

test('catalogue lookups: ModelScope ids, redirected old names, any case, and per hub', () => {
  assert.equal(catalogueModel('LLM-Research/Meta-Llama-3-8B-Instruct', 'modelscope')?.huggingface, 'meta-llama/Meta-Llama-3-8B-Instruct');
  assert.equal(catalogueModel('meta-llama/Meta-Llama-3.1-8B-Instruct', 'huggingface')?.huggingface, 'meta-llama/Llama-3.1-8B-Instruct');
  assert.equal(catalogueModel('qwen/qwen3-8b')?.huggingface, 'Qwen/Qwen3-8B');
  // A Hugging Face id is not a ModelScope repository (there the model lives under LLM-Research/).
  assert.equal(catalogueModel('meta-llama/Meta-Llama-3-8B-Instruct', 'modelscope'), undefined);
  assert.equal(catalogueModel('someone/unknown-model'), undefined);
  assert.deepEqual(catalogueModel('google/gemma-2-2b-it')!.license, { name: 'gemma', gated: true });
  assert.deepEqual(catalogueModel('Qwen/Qwen2.5-72B-Instruct')!.license, { name: 'qwen', gated: false });
});

test('fromConfigJson reads a config.json, defaults a Gemma tie as transformers does, and lists every problem as Issues', () => {
  const row = ROWS.find((r) => r.id === 'google/gemma-2-2b-it')!;
  assert.deepEqual(fromConfigJson(row.config), catalogueModel(row.id)!.architecture);
  assert.equal(fromConfigJson({ ...row.config, tie_word_embeddings: false }).parameterCount, 2_614_341_888 + 256000 * 2304);

  const broken = (() => {
    try {
      fromConfigJson({ model_type: 'llama', hidden_size: 'big', torch_dtype: 'int8' });
    } catch (error) {
      return error;
    }
    return undefined;
  })();
  assert.ok(broken instanceof CheckError);
  assert.deepEqual(broken.issues.map((i) => i.path.replace('config.json.', '')), ['hidden_size', 'num_attention_heads', 'intermediate_size', 'num_hidden_layers', 'num_key_value_heads', 'head_dim', 'vocab_size', 'max_position_embeddings', 'torch_dtype']);
  assert.ok(broken.issues.every((i) => i.code === 'model.config' && i.fix));

  assert.throws(() => fromConfigJson('config.json'), (e: unknown) => e instanceof CheckError && e.issues[0]!.message === 'is not a JSON object');
  // A family tunepipe cannot count needs the total from the weights' headers.
  const falcon = { ...row.config, model_type: 'falcon' };
  assert.throws(() => fromConfigJson(falcon), (e: unknown) => e instanceof CheckError && /pass \{ parameterCount \}/.test(e.issues[0]!.fix ?? ''));
  assert.equal(fromConfigJson(falcon, { parameterCount: 7_000_000_000 }).parameterCount, 7_000_000_000);
  // Multimodal checkpoints nest the decoder under text_config and carry a vision tower besides.
  assert.throws(() => fromConfigJson({ model_type: 'gemma3', text_config: { hidden_size: 2560 }, torch_dtype: 'bfloat16' }), (e: unknown) => e instanceof CheckError && e.issues[0]!.path === 'config.json.text_config');
});

/** fetch → convert → sft → merge → evaluate on the given base model. */
function pipelineOn(model: BaseModelOptions): Pipeline {
  return definePipeline({ name: 'catalogue' }, (p) => {
    const base = p.baseModel(model);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, lora_rank: 8, bf16: true } });
    p.merge({ adapter, args: { export_size: 4 } });
    p.evaluate({ model: adapter, data: data.test });
  });
}

const REVISION = '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2';

test('a catalogue model needs no architecture: the planner sizes every stage with the catalogue entry', () => {
  const pipeline = pipelineOn({ hub: 'huggingface', id: 'Qwen/Qwen3-8B', revision: REVISION, template: 'qwen3' });
  const analysis = analysePipeline(pipeline, context);
  assert.deepEqual(analysis.issues.filter((i) => i.severity !== 'warning').map((i) => i.code), []);
  assert.deepEqual([...analysis.plans.keys()].sort(), ['convert', 'evaluate', 'fetch-model', 'merge', 'sft']);
  // The same pipeline with the architecture written out plans the same.
  const declared = analysePipeline(pipelineOn({ hub: 'huggingface', id: 'Qwen/Qwen3-8B', revision: REVISION, template: 'qwen3', architecture: catalogueModel('Qwen/Qwen3-8B')!.architecture }), context);
  assert.deepEqual(declared.plans.get('sft'), analysis.plans.get('sft'));
  assert.doesNotThrow(() => compile(pipeline, context));
});

test('a hub model neither declared nor in the catalogue is an issue with a fix, never an internal error', () => {
  const pipeline = pipelineOn({ hub: 'huggingface', id: 'Qwen/Qwen3-8b-Instruct', revision: REVISION, template: 'qwen3' });
  const issues = check(pipeline, context);
  const unknown = issues.filter((i) => i.code === 'model.architecture-unknown');
  assert.equal(unknown.length, 1);
  assert.equal(unknown[0]!.path, 'stages.fetch-model.architecture');
  assert.match(unknown[0]!.fix!, /^declare architecture: fromConfigJson\(<the model's config\.json>\) or pick a catalogue model \(MODEL_CATALOGUE\): did you mean 'Qwen\/Qwen3-8B'/);
  // The planner skips the broken stage and everything downstream of it; nothing throws.
  const analysis = analysePipeline(pipeline, context);
  assert.deepEqual([...analysis.plans.keys()], ['convert']);
  assert.throws(() => compile(pipeline, context), (e: unknown) => e instanceof CheckError && e.issues.some((i) => i.code === 'model.architecture-unknown'));
  // Declaring it is enough.
  const declared = pipelineOn({ hub: 'huggingface', id: 'Qwen/Qwen3-8b-Instruct', revision: REVISION, template: 'qwen3', architecture: fromConfigJson(ROWS.find((r) => r.id === 'Qwen/Qwen3-8B')!.config) });
  assert.deepEqual(check(declared, context).filter((i) => i.code.startsWith('model.')), []);
});

test('artifacts and object-store models that reach check() without an architecture get the same issue', () => {
  for (const source of [{ artifacts: 'models/mine', version: 'v1' }, { uri: 's3://bucket/models/mine', version: 'v1' }]) {
    const pipeline = pipelineOn({ ...source, template: 'llama3' } as unknown as BaseModelOptions);
    assert.deepEqual(check(pipeline, context).filter((i) => i.code === 'model.architecture-unknown').map((i) => i.path), ['stages.fetch-model.architecture']);
    assert.doesNotThrow(() => analysePipeline(pipeline, context));
  }
});

test("a catalogue model trained with another template than LLaMA-Factory's for it is warned about", () => {
  const issues = check(pipelineOn({ hub: 'modelscope', id: 'LLM-Research/Meta-Llama-3-8B-Instruct', revision: REVISION, template: 'llama2' }), context);
  const warning = issues.find((i) => i.code === 'model.template')!;
  assert.equal(warning.severity, 'warning');
  assert.equal(warning.fix, "template: 'llama3'");
});
