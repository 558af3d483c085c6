import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { ALLOCATOR_RESERVE_FACTOR, GiB, H100_LLAMA3_8B_LORA, MiB, layerActivationBytesPerToken, resolveSft, sftMemory, type SftPlanArgs } from '../src/planner/index.ts';

const SEED_ARGS: SftPlanArgs = { lora_rank: 8, lora_target: 'all', per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 };
const resolve = (args: SftPlanArgs) => resolveSft(LLAMA3_8B, args, { rows: 481 }, 'stages.sft');
const term = (m: ReturnType<typeof sftMemory>, name: string) => {
  const t = m.terms.find((x) => x.name === name);
  assert.ok(t, `no term '${name}' in ${m.terms.map((x) => x.name).join(', ')}`);
  return t.bytes;
};

test('per-layer activation bytes per token, by hand (Llama-3-8B, bf16, LoRA r=8 all)', () => {
  // h=4096, I=14336, nH=32, nKV=8, d=128, a=2 B; only what autograd keeps (frozen linears keep no input)
  //   RMSNorm ×2: 2 × (4·4096 + 4) (fp32 input + rsqrt)          = 32,776
  //   attention: 2 × (2·32 + 2·8) × 128 (q, k, v, out) + 4 × 32     = 20,608
  //   MLP: 3 × 2 × 14336 (gate, SiLU(gate), up)                      = 86,016
  //   LoRA: 2 × (5·4096 + 4096 + 14336) (a 16-bit input copy per adapter) + 7 × 2 × 8 = 77,824 + 112 = 77,936
  //   total                                                          = 217,336
  const { config } = resolve(SEED_ARGS);
  assert.equal(layerActivationBytesPerToken(LLAMA3_8B, config), 217_336);
  // pure_bf16: nothing is cast, adapters on one tensor share it (q/k/v, gate/up): 4 inputs, not 7
  const { bf16: _bf16, ...rest } = SEED_ARGS;
  const pure = resolve({ ...rest, pure_bf16: true }).config;
  assert.equal(layerActivationBytesPerToken(LLAMA3_8B, pure), 217_336 - 2 * (2 * 4096 + 4096));
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
  // checkpointed inputs: 32 layers × 2048 tokens × 4096 × 2 B = 536,870,912; cos/sin 2048 × 128 × 2 × 2 B
  assert.equal(term(m, 'checkpointed layer inputs'), 536_870_912);
  assert.equal(term(m, 'rotary cos/sin (shared by the layers)'), 1_048_576);
  // the peak is the loss's backward: the final norm's fp32 input 2048 × 16,388 = 33,562,624, and
  // 2048 × 128,256 = 262,668,288 logits × 4 B = 1,050,673,152 three times (log-softmax, its
  // gradient, the logits' gradient); the 16-bit logits and their fp32 upcast are gone by then
  assert.equal(m.peakPhase, 'loss');
  assert.equal(term(m, 'final RMSNorm fp32 input'), 33_562_624);
  assert.equal(term(m, 'log-softmax output (fp32, kept by the loss)'), 1_050_673_152);
  assert.equal(term(m, 'its gradient from the NLL loss (fp32)'), 1_050_673_152);
  assert.equal(term(m, 'gradient of the fp32 logits'), 1_050_673_152);
  // allocated = 16,396,066,816 + 537,919,488 + 33,562,624 + 3,152,019,456 = 20,119,568,384 B = 18.74 GiB
  // (the H100 measured 18.72 GiB: +0.1 %)
  assert.equal(m.allocatedBytes, 20_119_568_384);
  assert.equal((m.allocatedBytes / GiB).toFixed(2), '18.74');
  // the last layer's backward would need 2048 × (217,336 + 102,400 + 57,344) B = 772,259,840 on top of the persistent bytes
  assert.equal(m.otherPhaseBytes, 772_259_840);
  // the reserve: the 16-bit logits (525,336,576) and one layer's forward working set (2048 × 172,032)
  // × the fitted factor = exactly the measured 19.76 − 18.72 = 1.04 GiB
  assert.equal(Math.round(term(m, 'allocator reserve (cached, unused blocks)')), Math.round(1.04 * GiB));
  assert.equal(ALLOCATOR_RESERVE_FACTOR.toFixed(4), ((1.04 * GiB) / (525_336_576 + 2048 * 172_032)).toFixed(4));
  assert.equal(m.reservedBytes, m.allocatedBytes + term(m, 'allocator reserve (cached, unused blocks)'));
  // nvidia-smi adds the CUDA context outside PyTorch: what must fit
  assert.equal(term(m, 'CUDA context (outside PyTorch)'), 512 * MiB);
  assert.equal(m.totalBytes, m.reservedBytes + 512 * MiB);
  assert.equal((m.totalBytes / GiB).toFixed(2), '20.28');
  // the band: ±5 % of the activation terms, ±30 % of the reserve, ±50 % of the context
  const activations = m.allocatedBytes - 16_396_066_816;
  assert.equal(Math.round(m.bandBytes), Math.round(activations * 0.05 + 1.04 * GiB * 0.3 + 256 * MiB));
});

test('the H100 measurements: allocated and reserved peaks at 2 × 1024 and 8 × 1024', () => {
  for (const point of H100_LLAMA3_8B_LORA) {
    const m = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, per_device_train_batch_size: point.microBatch, cutoff_len: point.sequenceLength }).config);
    assert.ok(Math.abs(m.allocatedBytes / point.allocatedBytes - 1) < 0.002, `${point.label}: ${(m.allocatedBytes / GiB).toFixed(3)} GiB`);
    if (point.reservedBytes !== undefined) assert.ok(Math.abs(m.reservedBytes / point.reservedBytes - 1) < 0.002, point.label);
  }
  // the slope per token: 12 B × 128,256 logits + 32 × 4096 × 2 B checkpoints + 4 × 4096 + 4 B final
  // norm + 128 × 2 × 2 B cos/sin = 1,818,116 B; measured: (29.12 − 18.72) GiB / 6,144 = 1,817,532 B
  const at = (b: number) => sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, per_device_train_batch_size: b }).config).allocatedBytes;
  assert.equal((at(8) - at(2)) / 6144, 1_818_116);
});

test('without gradient checkpointing every layer keeps its activations', () => {
  const on = sftMemory(LLAMA3_8B, resolve(SEED_ARGS).config);
  const off = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, disable_gradient_checkpointing: true }).config);
  // 32 layers × 2048 tokens × 217,336 B = 14,243,332,096 instead of the 536,870,912 checkpointed inputs
  assert.equal(term(off, 'activations of every layer'), 14_243_332_096);
  assert.ok(!off.terms.some((t) => t.name === 'checkpointed layer inputs'));
  assert.equal(off.allocatedBytes - on.allocatedBytes, 14_243_332_096 - 536_870_912);
});

test("Liger fused cross-entropy removes the logits; the last layer's backward becomes the peak", () => {
  const liger = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, enable_liger_kernel: true }).config);
  assert.ok(!liger.terms.some((t) => t.name === 'log-softmax output (fp32, kept by the loss)'));
  assert.equal(liger.peakPhase, 'layer');
  // 2048 × 217,336 recomputed + 2048 × ((3 × 14336 + 2 × 4096) × 2 + 4 × 14336) gradients
  assert.equal(term(liger, 'last layer recomputed in backward'), 445_104_128);
  assert.equal(term(liger, 'gradients inside the layer'), 327_155_712);
  // the chunk: ceil(2048 / ceil(128,256 / 4096)) = 64 tokens × 128,256 × 4 B × 2 = 65,667,072, in the other phase
  assert.equal(liger.otherPhaseBytes, 33_562_624 + 2048 * 4096 * 2 + 65_667_072);
  assert.ok(liger.totalBytes < sftMemory(LLAMA3_8B, resolve(SEED_ARGS).config).totalBytes - 2.5 * GiB);
  // eager attention keeps one layer's score matrices in that phase: 2 × 32 heads × 1024² × (4 + 2) B
  const eager = sftMemory(LLAMA3_8B, resolve({ ...SEED_ARGS, enable_liger_kernel: true, flash_attn: 'disabled' }).config);
  assert.equal(term(eager, 'attention score matrices (eager, one layer)'), 402_653_184);
});

test('data parallelism does not shrink per-GPU memory; it adds DDP buckets and NCCL buffers', () => {
  const { config } = resolve(SEED_ARGS);
  const one = sftMemory(LLAMA3_8B, config, 1);
  const two = sftMemory(LLAMA3_8B, config, 2);
  // + 20,971,520 × 4 B buckets + 512 MiB NCCL
  assert.equal(two.totalBytes - one.totalBytes, 83_886_080 + 512 * MiB);
});

test('bad arguments become issues with paths, and defaults are LLaMA-Factory defaults', () => {
  const r = resolveSft(LLAMA3_8B, { lora_rank: 0, per_device_train_batch_size: 2.5, finetuning_type: 'freeze' }, { rows: 0 }, 'stages.sft');
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
