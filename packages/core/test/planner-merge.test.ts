import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B, QWEN2_5_7B } from '../src/model/architecture.ts';
import { GiB, mergeEstimate, planStage, shardFileNames, shardPlan, splitIntoShards, loraTargets } from '../src/planner/index.ts';

test('Llama-3-8B bf16 at export_size 4 is 5 shards, not 4 (worked example)', () => {
  // bytes = 8,030,261,248 × 2 = 16,060,522,496 = 16.06 GB; 16.06 / 4 = 4.015 → ceil = 5
  const plan = shardPlan(LLAMA3_8B, 2, 4);
  assert.equal(plan.lowerBound, 5);
  assert.equal(plan.count, 5);
  assert.equal(plan.exact, true);
  // Greedy split at tensor boundaries, in state-dict order (limit 4,000,000,000 B):
  //   shard 1: embed_tokens 1,050,673,152 + layers 0-5 (6 × 436,224,000 incl. 2 norms of 8,192 B)
  //            = 3,668,017,152; + layer 6 q 33,554,432, k 8,388,608, v 8,388,608, o 33,554,432,
  //            gate 117,440,512, up 117,440,512 = 3,986,784,256; down (117,440,512) would pass 4e9
  //   shards 2, 3: layer 6 down + norms, then whole layers: 9 × 436,224,000 = 3,926,016,000 each
  //   shard 4: the rest of the layers and the final norm = 3,171,033,088
  //   shard 5: lm_head alone, 1,050,673,152 (3,171,033,088 + 1,050,673,152 > 4e9)
  assert.deepEqual(plan.shardBytes, [3_986_784_256, 3_926_016_000, 3_926_016_000, 3_171_033_088, 1_050_673_152]);
  assert.equal(plan.shardBytes.reduce((a, b) => a + b, 0), 16_060_522_496);
  assert.equal(plan.fileNames[0], 'model-00001-of-00005.safetensors');
  assert.equal(plan.fileNames[4], 'model-00005-of-00005.safetensors');
  assert.match(plan.note, /16\.06 GB \/ 4 GB = 4\.02 → 5 shards/);
});

test('the split reproduces the shard sizes published with the models', () => {
  // Meta-Llama-3-8B-Instruct on the Hub (max_shard_size 5GB): 4.98, 5.00, 4.92, 1.17 GB
  const llama = shardPlan(LLAMA3_8B, 2, 5);
  assert.deepEqual(llama.shardBytes.map((b) => (b / 1e9).toFixed(2)), ['4.98', '5.00', '4.92', '1.17']);
  // Qwen2.5-7B-Instruct on the Hub (4GB shards): 3.95, 3.86, 3.86, 3.56 GB
  const qwen = shardPlan(QWEN2_5_7B, 2, 4);
  assert.deepEqual(qwen.shardBytes.map((b) => (b / 1e9).toFixed(2)), ['3.95', '3.86', '3.86', '3.56']);
});

test('when the tensor layout is unknown, ceil(bytes / size) is reported with the bound it can reach', () => {
  const unknown = { ...LLAMA3_8B, modelType: 'gemma2' };
  const plan = shardPlan(unknown, 2, 4);
  assert.equal(plan.exact, false);
  assert.equal(plan.count, 5);
  // every closed shard holds more than 4e9 − 1,050,673,152 (largest tensor) = 2,949,326,848 B:
  // 16,060,522,496 / 2,949,326,848 = 5.45 → at most 6
  assert.equal(plan.upperBound, 6);
  assert.match(plan.note, /can be up to 6/);
});

test('the greedy split: a tensor above the limit gets its own shard, tensors never straddle', () => {
  assert.deepEqual(splitIntoShards([6, 6, 2, 6, 2, 2], 10), [6, 8, 10]);
  assert.deepEqual(splitIntoShards([3, 12, 3], 10), [12, 6]);
  assert.deepEqual(splitIntoShards([], 10), []);
  assert.deepEqual(shardFileNames(1), ['model.safetensors']);
  assert.deepEqual(shardFileNames(2, true), ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']);
});

test('merge on CPU needs the model in RAM, no GPU, and takes the bytes it moves', () => {
  const targets = loraTargets(LLAMA3_8B, 'all', 'p').modules;
  const e = mergeEstimate(LLAMA3_8B, { rank: 8, targets }, { export_size: 4, export_device: 'cpu' }, 'stages.merge');
  assert.equal(e.onGpu, false);
  assert.equal(e.gpu, undefined);
  // host: weights 16,060,522,496 + adapter 20,971,520 × 4 = 83,886,080 + largest shard 3,986,784,256 + 2 GiB
  assert.equal(e.host.totalBytes, 16_060_522_496 + 83_886_080 + 3_986_784_256 + 2 * GiB);
  // seconds: 60 start + 16.06e9/250e6 read (64.24) + 6,979,321,856 / 0.5e9 merge (13.96)
  //          + 16.06e9/200e6 write (80.30) + 16.06e9/500e6 SHA-256 (32.12) = 250.6 s
  assert.equal(Math.round(e.seconds * 10), 2506);
  assert.equal(e.disk.totalBytes, 16_060_522_496);
});

test('export_device auto puts the model on a GPU; a fractional export_size is an issue', () => {
  const plan = planStage({ kind: 'merge', name: 'merge', architecture: LLAMA3_8B, args: { export_size: 4, export_device: 'auto' } });
  assert.equal(plan.placement, 'auto');
  assert.ok(plan.gpuType);
  assert.ok((plan.gpuMemory?.totalBytes ?? 0) > 16e9);

  const cpu = planStage({ kind: 'merge', name: 'merge', architecture: LLAMA3_8B, args: { export_size: 4.5 }, resources: { gpuType: 'l4' } });
  assert.equal(cpu.gpus, 0);
  assert.deepEqual(cpu.issues.map((i) => [i.code, i.path]), [['planner.export-size', 'stages.merge.args.export_size'], ['planner.cpu-stage', 'stages.merge.resources']]);
  assert.deepEqual(cpu.expectedOutputs, ['4 shards (model-00001-of-00004.safetensors … model-00004-of-00004.safetensors), 16.06 GB']);
});
