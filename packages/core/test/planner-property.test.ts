import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LLAMA3_8B, QWEN2_5_7B } from '../src/model/architecture.ts';
import { GPUS, gpuById, planStage, resolveSft, sftMemory, trainingThroughput, vllmMemory, type SftPlanArgs } from '../src/planner/index.ts';

const arch = fc.constantFrom(LLAMA3_8B, QWEN2_5_7B);
const target = fc.constantFrom('all', 'q_proj,v_proj', 'q_proj,k_proj,v_proj,o_proj', 'down_proj');
const base = fc.record({
  per_device_train_batch_size: fc.integer({ min: 1, max: 32 }),
  cutoff_len: fc.integer({ min: 16, max: 16384 }),
  lora_rank: fc.integer({ min: 1, max: 256 }),
  lora_target: target,
  disable_gradient_checkpointing: fc.boolean(),
  flash_attn: fc.constantFrom('auto', 'disabled'),
  enable_liger_kernel: fc.boolean(),
  lora_dropout: fc.constantFrom(0, 0.05),
  bf16: fc.constant(true),
});
const memory = (a: typeof LLAMA3_8B, args: SftPlanArgs, gpus = 1) => sftMemory(a, resolveSft(a, args, { rows: 1000 }, 's').config, gpus).totalBytes;

test('SFT memory grows monotonically with micro-batch, sequence length and LoRA rank', () => {
  fc.assert(
    fc.property(arch, base, fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 64 }), (a, args, db, ds, dr) => {
      const m = memory(a, args);
      assert.ok(memory(a, { ...args, per_device_train_batch_size: args.per_device_train_batch_size + db }) > m, 'batch');
      assert.ok(memory(a, { ...args, cutoff_len: args.cutoff_len + ds }) > m, 'sequence length');
      assert.ok(memory(a, { ...args, lora_rank: args.lora_rank + dr }) > m, 'rank');
      // checkpointing never costs memory, more GPUs never save per-GPU memory
      assert.ok(memory(a, { ...args, disable_gradient_checkpointing: false }) <= memory(a, { ...args, disable_gradient_checkpointing: true }));
      assert.ok(memory(a, args, 2) > m);
    }),
    { numRuns: 300 },
  );
});

test('training speed rises with the micro-batch, never past the physical limit; bands are never negative', () => {
  fc.assert(
    fc.property(arch, base, fc.constantFrom(...GPUS.filter((g) => g.bf16DenseFlops !== null)), fc.integer({ min: 1, max: 16 }), (a, args, gpu, db) => {
      const config = resolveSft(a, args, { rows: 1000 }, 's').config;
      const at = (b: number) => trainingThroughput(a, config, { sequenceLength: config.cutoffLen, tokensPerMicroBatch: b * config.cutoffLen }, gpu, 1)!;
      const small = at(args.per_device_train_batch_size);
      const large = at(args.per_device_train_batch_size + db);
      assert.ok(large.tokensPerSecond > small.tokensPerSecond, 'more tokens per micro-batch, more tokens per second');
      assert.ok(large.tokensPerSecond <= large.limitTokensPerSecond && large.efficiency < 1);
      assert.ok(small.low < small.tokensPerSecond && small.tokensPerSecond < small.high);
      const m = sftMemory(a, config);
      assert.ok(m.bandBytes > 0 && m.allocatedBytes < m.reservedBytes && m.reservedBytes < m.totalBytes);
    }),
    { numRuns: 200 },
  );
});

test('vLLM: a longer max_model_len never makes the KV cache hold more sequences', () => {
  const l40s = gpuById('l40s')!;
  fc.assert(
    fc.property(arch, fc.integer({ min: 256, max: 32768 }), fc.integer({ min: 1, max: 32768 }), fc.double({ min: 0.5, max: 0.95, noNaN: true }), (a, len, extra, util) => {
      const short = vllmMemory(a, { format: 'dense' }, { max_model_len: len, gpu_memory_utilization: util }, l40s, 1, 'bfloat16');
      const long = vllmMemory(a, { format: 'dense' }, { max_model_len: len + extra, gpu_memory_utilization: util }, l40s, 1, 'bfloat16');
      assert.ok(long.maxConcurrency <= short.maxConcurrency);
      assert.equal(short.startsUp, short.kvTokens >= len);
      if (!short.startsUp) assert.equal(long.startsUp, false);
    }),
    { numRuns: 300 },
  );
});

test('bad numbers anywhere give issues, never an exception', () => {
  const num = fc.oneof(fc.integer({ min: -5, max: 100_000 }), fc.double(), fc.constant(Number.NaN), fc.constant(0));
  fc.assert(
    fc.property(num, num, num, num, num, fc.constantFrom(undefined, 't4', 'h200', 'nope'), fc.constantFrom(undefined, -1, 0, 1, 3, 8), (a, b, c, d, e, gpuType, gpus) => {
      const resources = { ...(gpuType !== undefined ? { gpuType } : {}), ...(gpus !== undefined ? { gpus } : {}) };
      const stages = [
        planStage({ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: { per_device_train_batch_size: a, cutoff_len: b, lora_rank: c, num_train_epochs: d, gradient_accumulation_steps: e }, data: { rows: a, meanTokensPerRow: b }, resources }),
        planStage({ kind: 'merge', name: 'merge', architecture: LLAMA3_8B, args: { export_size: a }, resources }),
        planStage({ kind: 'quantize', name: 'quantize', architecture: LLAMA3_8B, args: { export_quantization_bit: a, export_quantization_nsamples: Math.abs(b) % 512, export_quantization_maxlen: Math.abs(c) % 4096 }, resources }),
        planStage({ kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'dense' }, args: { max_model_len: a, max_num_seqs: b, gpu_memory_utilization: c, tensor_parallel_size: e }, resources }),
      ];
      for (const s of stages) {
        assert.ok(Number.isFinite(s.expectedSeconds) || s.issues.length > 0, `${s.kind}: ${s.expectedSeconds}`);
        for (const i of s.issues) assert.ok(i.path.startsWith(`stages.${s.name}`) && i.message.length > 0);
      }
    }),
    { numRuns: 200 },
  );
});
