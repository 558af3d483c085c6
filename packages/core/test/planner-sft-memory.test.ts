import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { GiB, MiB, layerActivationBytesPerToken, resolveSft, sftMemory, type SftPlanArgs } from '../src/planner/index.ts';

const SEED_ARGS: SftPlanArgs = { lora_rank: 8, lora_target: 'all', per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 };
const resolve = (args: SftPlanArgs) => resolveSft(LLAMA3_8B, args, { rows: 481 }, 'stages.sft');
const term = (m: ReturnType<typeof sftMemory>, name: string) => {
  const t = m.terms.find((x) => x.name === name);
  assert.ok(t, `no term '${name}' in ${m.terms.map((x) => x.name).join(', ')}`);
  return t.bytes;
};

test('per-layer activation bytes per token, by hand (Llama-3-8B, bf16, LoRA r=8 all)', () => {
  // h=4096, I=14336, nH=32, nKV=8, d=128, a=2 B
  //   RMSNorm ×2: 2 × (4·4096 + 2·4096)              = 49,152
  //   q,k,v:      2 × (32 + 16) × 128                 = 12,288
  //   RoPE q,k:   2 × (32 + 8) × 128                  = 10,240
  //   attn out:   2 × 32 × 128 + 4 × 32 (LSE)         =  8,320
  //   MLP:        4 × 2 × 14336                       = 114,688
  //   LoRA:       2 × (3·4096 + 4096 + 2·4096 + 14336) + 7 × 2 × 8 = 77,824 + 112 = 77,936
  //   total                                           = 272,624
  const { config } = resolve(SEED_ARGS);
  assert.equal(layerActivationBytesPerToken(LLAMA3_8B, config), 272_624);
});

test("the seed's SFT step, term by term (micro-batch 2 × 1024 tokens, checkpointing on)", () => {
  const { config, issues } = resolve(SEED_ARGS);
  assert.deepEqual(issues, []);
  assert.equal(config.gradientCheckpointing, true); // LLaMA-Factory's default
  const m = sftMemory(LLAMA3_8B, config);
  // frozen weights: 8,030,261,248 × 2 B = 16,060,522,496
  assert.equal(term(m, 'frozen weights'), 16_060_522_496);
  // LoRA weights and gradients in fp32: 20,971,520 × 4 = 83,886,080 each; AdamW m+v: × 8 = 167,772,160
  assert.equal(term(m, 'LoRA weights (fp32)'), 83_886_080);
  assert.equal(term(m, 'LoRA gradients (fp32)'), 83_886_080);
  assert.equal(term(m, 'optimizer states (adamw_torch)'), 167_772_160);
  // checkpointed inputs: 32 layers × 2048 tokens × 4096 × 2 B = 536,870,912
  assert.equal(term(m, 'checkpointed layer inputs'), 536_870_912);
  // one layer recomputed: 2048 × 272,624 = 558,333,952
  assert.equal(term(m, 'one layer recomputed in backward'), 558_333_952);
  // gradients inside a layer: 2048 × (3·14336 + 2·4096) × 2 = 2048 × 51,200 × 2 = 209,715,200
  assert.equal(term(m, 'activation gradients (one layer)'), 209_715_200);
  // logits: 2048 × 128,256 = 262,668,288 elements: bf16 × 2 = 525,336,576; fp32 copy, log-softmax and
  // its gradient × 4 = 1,050,673,152 each
  assert.equal(term(m, 'logits'), 525_336_576);
  assert.equal(term(m, 'logits fp32 copy for the loss'), 1_050_673_152);
  assert.equal(term(m, 'cross-entropy log-softmax (fp32)'), 1_050_673_152);
  assert.equal(term(m, 'gradient of the fp32 logits'), 1_050_673_152);
  // fragmentation: 10% of the transient 536,870,912 + 558,333,952 + 209,715,200 + 525,336,576 + 3 × 1,050,673,152
  //   = 4,982,276,096 → 498,227,609.6
  assert.equal(Math.round(term(m, 'allocator fragmentation') * 10), 4_982_276_096);
  assert.equal(term(m, 'CUDA context + workspaces'), 512 * MiB);
  // total 16,060,522,496 + 335,544,320 + 4,982,276,096 + 498,227,609.6 + 536,870,912 = 22,413,441,433.6 B = 20.87 GiB
  assert.equal(Math.round(m.totalBytes * 10), 224_134_414_336);
  assert.equal((m.totalBytes / GiB).toFixed(2), '20.87');
});

test('without gradient checkpointing every layer keeps its activations', () => {
  const on = sftMemory(LLAMA3_8B, resolve(SEED_ARGS).config);
  const off = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, disable_gradient_checkpointing: true }).config);
  // 32 layers × 2048 tokens × 272,624 B = 17,866,686,464 instead of 536,870,912 + 558,333,952
  assert.equal(term(off, 'activations kept for backward'), 17_866_686_464);
  assert.ok(!off.terms.some((t) => t.name === 'checkpointed layer inputs'));
  assert.ok(off.totalBytes > on.totalBytes + 16 * GiB);
});

test('Liger fused cross-entropy removes the full logits; eager attention adds the score matrix', () => {
  const base = sftMemory(LLAMA3_8B, resolve(SEED_ARGS).config);
  const liger = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, enable_liger_kernel: true }).config);
  assert.ok(!liger.terms.some((t) => t.name === 'logits fp32 copy for the loss'));
  // chunk = ceil(2048 / ceil(128,256 / 4096)) = ceil(2048 / 32) = 64 tokens × 128,256 × 4 B × 2 = 65,667,072
  assert.equal(term(liger, 'logits chunk (Liger fused cross-entropy)'), 65_667_072);
  assert.ok(liger.totalBytes < base.totalBytes - 3 * GiB);

  const eager = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, flash_attn: 'disabled' }).config);
  // one recomputed layer: 2 × 32 heads × 1024² × (4 + 2) B = 402,653,184
  assert.equal(term(eager, 'attention score matrices (eager)'), 402_653_184);
});

test('data parallelism does not shrink per-GPU memory; it adds DDP buckets and NCCL buffers', () => {
  const { config } = resolve(SEED_ARGS);
  const one = sftMemory(LLAMA3_8B, config, 1);
  const two = sftMemory(LLAMA3_8B, config, 2);
  // + 20,971,520 × 4 B buckets + 512 MiB NCCL
  assert.equal(two.totalBytes - one.totalBytes, 83_886_080 + 512 * MiB);
});

test('bad arguments become issues with paths, and defaults are LLaMA-Factory defaults', () => {
  const r = resolveSft(LLAMA3_8B, { lora_rank: 0, per_device_train_batch_size: 2.5, finetuning_type: 'full' }, { rows: 0 }, 'stages.sft');
  const paths = r.issues.map((i) => i.path).sort();
  assert.deepEqual(paths, ['stages.sft.args.finetuning_type', 'stages.sft.args.lora_rank', 'stages.sft.args.per_device_train_batch_size', 'stages.sft.train']);
  // defaults: rank 8, micro-batch 8, cutoff 2048, checkpointing on
  assert.equal(r.config.rank, 8);
  assert.equal(r.config.microBatch, 8);
  assert.equal(r.config.cutoffLen, 2048);
  assert.equal(r.config.gradientCheckpointing, true);
  assert.ok(r.warnings.some((w) => /neither bf16 nor fp16/.test(w)));
});

test('the longest row, when known, sets the activation peak instead of cutoff_len', () => {
  const short = resolveSft(LLAMA3_8B, SEED_ARGS, { rows: 481, maxTokensPerRow: 512 }, 's').config;
  assert.equal(short.peakSequenceLength, 512);
  assert.ok(sftMemory(LLAMA3_8B, short).totalBytes < sftMemory(LLAMA3_8B, resolve(SEED_ARGS).config).totalBytes);
  // packing always fills cutoff_len
  assert.equal(resolveSft(LLAMA3_8B, { ...SEED_ARGS, packing: true }, { rows: 481, maxTokensPerRow: 512 }, 's').config.peakSequenceLength, 1024);
});
