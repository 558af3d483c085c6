import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B, QWEN2_5_7B } from '../src/model/architecture.ts';
import { GiB, gpuById, kvBytesPerToken, planStage, readServeArgs, vllmMemory } from '../src/planner/index.ts';

const l4 = gpuById('l4')!;

test('KV bytes per token = 2 × layers × KV heads × head_dim × dtype bytes', () => {
  // Llama-3-8B: 2 × 32 × 8 × 128 × 2 = 131,072 B = 128 KiB; 8192 tokens = 1 GiB
  assert.equal(kvBytesPerToken(LLAMA3_8B, 2), 131_072);
  assert.equal(kvBytesPerToken(LLAMA3_8B, 2) * 8192, GiB);
  // Qwen2.5-7B: 2 × 28 × 4 × 128 × 2 = 57,344
  assert.equal(kvBytesPerToken(QWEN2_5_7B, 2), 57_344);
  // fp8 cache halves it; tensor parallel 2 splits the 8 KV heads 4 + 4; at tp 16 each GPU keeps one head
  assert.equal(kvBytesPerToken(LLAMA3_8B, 1), 65_536);
  assert.equal(kvBytesPerToken(LLAMA3_8B, 2, 2), 65_536);
  assert.equal(kvBytesPerToken(LLAMA3_8B, 2, 16), 16_384);
});

test('vLLM refuses to start when the KV cache cannot hold one full-length sequence', () => {
  // L4: 23034 MiB = 24,152,899,584 B; budget 0.72 × that = 17,390,087,700.48
  // non-KV: weights 16,060,522,496 + profile 2048 tokens × 155,648 B = 318,767,104
  //         + sampler 256 × 128,256 × 4 × 2 = 262,668,288 + non-torch 268,435,456 = 16,910,393,344
  // KV: 479,694,356.48 B → floor(/ (131,072 × 16)) = 228 blocks = 3,648 tokens < 8,192
  const m = vllmMemory(LLAMA3_8B, { format: 'dense' }, { gpu_memory_utilization: 0.72, max_model_len: 8192 }, l4, 1, 'bfloat16');
  assert.equal(m.nonKvBytes, 16_910_393_344);
  assert.equal(m.kvTokens, 3_648);
  assert.equal(m.startsUp, false);
  assert.equal(m.maxModelLenThatFits, 3_648);

  const plan = planStage({
    kind: 'serve',
    name: 'serve',
    architecture: LLAMA3_8B,
    weights: { format: 'dense' },
    args: { gpu_memory_utilization: 0.72, max_model_len: 8192 },
    resources: { gpuType: 'l4', gpus: 1 },
  });
  const warning = plan.warnings.find((w) => w.startsWith('vLLM refuses to start'));
  assert.ok(warning, plan.warnings.join('\n'));
  assert.match(warning, /max_model_len 8,192 needs 1\.00 GiB of KV cache per GPU/);
  assert.match(warning, /max_model_len ≤ 3,648 would fit/);
  // the explicit choice is an issue at its path, with the smallest GPU that works as the fix
  const issue = plan.issues.find((i) => i.code === 'planner.does-not-fit');
  assert.ok(issue);
  assert.equal(issue.path, 'stages.serve.resources.gpuType');
  assert.match(issue.fix ?? '', /l40s/);
  // given the type but not the count, the planner shards over two L4s instead (tensor parallel)
  const two = planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'dense' }, args: { gpu_memory_utilization: 0.72, max_model_len: 8192 }, resources: { gpuType: 'l4' } });
  assert.deepEqual([two.gpuType, two.gpus, two.issues.length], ['l4', 2, 0]);
});

test('at the default 0.9 a bf16 Llama-3-8B with 8k context is served on one L4', () => {
  // budget 0.9 × 24,152,899,584 = 21,737,609,625.6; need 16,910,393,344 × 1.1 + 1 GiB = 19,675,174,502 ≤ budget
  const plan = planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'dense' }, args: { max_model_len: 8192 } });
  assert.equal(plan.gpuType, 'l4');
  assert.equal(plan.gpus, 1);
  assert.deepEqual(plan.nodeSelector, { 'tunepipe.dev/gpu': 'l4' });
  assert.equal(plan.details.kind, 'serve');
  if (plan.details.kind !== 'serve' || !plan.details.vllm) return;
  // KV: 21,737,609,625.6 − 16,910,393,344 = 4,827,216,281.6 → 2,301 blocks of 16 = 36,816 tokens = 4.49 sequences
  assert.equal(plan.details.vllm.kvTokens, 36_816);
  assert.equal(plan.details.vllm.maxConcurrency.toFixed(2), '4.49');
  // serving is priced per hour, not as a batch cost
  assert.equal(plan.costUsd, null);
  assert.equal(plan.usdPerHour, 0.8048);
});

test('a model too large for one GPU is served with tensor parallelism', () => {
  // a 70B-class Llama in bf16: 70,553,706,496 × 2 B = 141 GB (131.4 GiB) of weights; no single GPU holds
  // them with headroom (H200: 140.4 GiB × 0.9 = 126.4 GiB budget)
  const big = { ...LLAMA3_8B, parameterCount: 70_553_706_496, hiddenSize: 8192, intermediateSize: 28672, numHiddenLayers: 80, numAttentionHeads: 64 };
  const serve = (extra: object) => planStage({ kind: 'serve', name: 'serve', architecture: big, weights: { format: 'dense' }, args: { max_model_len: 8192 }, ...extra });
  // AWS sells no 2-GPU machines of these; 4× L40S (g6e.12xlarge) holds 32.8 GiB of weights per GPU
  // in a 40.5 GiB budget, and is preferred over renting an 8-GPU H100/H200 node
  const aws = serve({});
  assert.deepEqual([aws.gpus, aws.gpuType], [4, 'l40s']);
  // GCP: 2× A100-80GB hold 65.7 GiB of weights each (exact), 1.4 GiB of activations and memory
  // outside PyTorch (±0.63 GiB, their band) and one 8,192-token sequence of KV cache (1.25 GiB):
  // 68.3 + 0.6 ≤ 72 GiB budget, with 4.9 GiB of KV cache left
  const gcp = planStage({ kind: 'serve', name: 'serve', architecture: big, weights: { format: 'dense' }, args: { max_model_len: 8192 } }, { cloud: 'gcp' });
  assert.deepEqual([gcp.gpus, gcp.gpuType], [2, 'a100-80gb']);
  assert.equal((gcp.requiredGpuBandBytes! / 2 ** 30).toFixed(2), '0.63');
  // an explicit type without a count gets the fewest GPUs of that type that fit
  const h200 = serve({ resources: { gpuType: 'h200' } });
  assert.deepEqual([h200.gpus, h200.gpuType, h200.issues.length], [2, 'h200', 0]);
  const tp3 = serve({ args: { tensor_parallel_size: 3 } });
  assert.ok(tp3.issues.some((i) => i.code === 'planner.tensor-parallel' && i.path === 'stages.serve.args.tensor_parallel_size'));
});

test('Turing GPUs are never chosen for vLLM and warned about when set explicitly', () => {
  const gptq = planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'gptq', bits: 4 }, args: { max_model_len: 8192 } });
  assert.notEqual(gptq.gpuType, 't4');
  const t4 = planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'gptq', bits: 4 }, args: { max_model_len: 8192 }, resources: { gpuType: 't4' } });
  assert.equal(t4.gpuType, 't4');
  assert.deepEqual(t4.issues, []);
  assert.ok(t4.warnings.some((w) => /Triton/.test(w)));
  const bf16OnT4 = planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'gptq', bits: 4 }, args: { dtype: 'bfloat16' }, resources: { gpuType: 't4' } });
  assert.ok(bf16OnT4.issues.some((i) => i.code === 'planner.unsupported-gpu'));
});

test('vLLM flags are read from dashed, underscored or -- keys', () => {
  assert.deepEqual(readServeArgs({ '--max-model-len': '4096', 'gpu-memory-utilization': 0.8, max_num_seqs: 64, 'kv-cache-dtype': 'fp8', served_model_name: 'x', 'enforce-eager': true }), {
    max_model_len: 4096,
    gpu_memory_utilization: 0.8,
    max_num_seqs: 64,
    kv_cache_dtype: 'fp8',
  });
});
