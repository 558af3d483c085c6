import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B, QWEN2_5_7B } from '../src/model/architecture.ts';
import {
  decoderLinears,
  linearWeightsPerLayer,
  loraParamCount,
  loraTargets,
  matmulParams,
  planStage,
  stateDictTensors,
  tensorLayoutIsExact,
} from '../src/planner/index.ts';

test('LoRA r=8 on all linears of Llama-3-8B: exactly the seed log line', () => {
  // Per layer, r × (in + out):
  //   q 8×(4096+4096)=65,536  k 8×(4096+1024)=40,960  v 40,960  o 65,536
  //   gate 8×(4096+14336)=147,456  up 147,456  down 147,456      → 655,360
  // × 32 layers = 20,971,520; all = 8,030,261,248 + 20,971,520 = 8,051,232,768
  const { modules, issues } = loraTargets(LLAMA3_8B, 'all', 'stages.sft.args.lora_target');
  assert.deepEqual(issues, []);
  assert.deepEqual(modules.map((m) => m.name), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  const count = loraParamCount(LLAMA3_8B, 8, modules);
  assert.equal(count.perLayer, 655_360);
  assert.equal(count.trainable, 20_971_520);
  assert.equal(count.all, 8_051_232_768);
  assert.equal(count.trainablePercent.toFixed(4), '0.2605');

  const plan = planStage({ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: { lora_rank: 8, lora_target: 'all', bf16: true }, data: { rows: 481 } });
  assert.equal(plan.details.kind, 'sft');
  if (plan.details.kind !== 'sft') return;
  assert.equal(plan.details.paramsLogLine, 'trainable params: 20,971,520 || all params: 8,051,232,768 || trainable%: 0.2605');
});

test('LoRA on a subset of modules and another rank', () => {
  // r=16 on q_proj, v_proj: 16×(4096+4096) + 16×(4096+1024) = 131,072 + 81,920 = 212,992 per layer × 32 = 6,815,744
  const { modules } = loraTargets(LLAMA3_8B, 'q_proj, v_proj', 'p');
  assert.equal(loraParamCount(LLAMA3_8B, 16, modules).trainable, 6_815_744);
  // Qwen2.5-7B, r=8, all: q 8×(3584+3584)=57,344  k,v 8×(3584+512)=32,768 each  o 57,344
  // gate,up 8×(3584+18944)=180,224 each  down 180,224 → 720,896 per layer × 28 = 20,185,088
  assert.equal(loraParamCount(QWEN2_5_7B, 8, loraTargets(QWEN2_5_7B, 'all', 'p').modules).trainable, 20_185_088);
});

test('an unknown lora_target is an issue with a suggestion, not a crash', () => {
  const { modules, issues } = loraTargets(LLAMA3_8B, 'q_proj,v_prj', 'stages.sft.args.lora_target');
  assert.deepEqual(modules.map((m) => m.name), ['q_proj']);
  assert.equal(issues.length, 1);
  assert.equal(issues[0]!.path, 'stages.sft.args.lora_target');
  assert.equal(issues[0]!.value, 'v_prj');
  assert.match(issues[0]!.fix ?? '', /v_proj/);
});

test('the tensor layout reproduces both catalogue models parameter for parameter', () => {
  // Llama-3-8B: embed 128,256×4096 = 525,336,576; per layer 218,103,808 linear weights + 2×4096 norms
  // = 218,112,000; × 32 = 6,979,584,000; + final norm 4,096 + lm_head 525,336,576 = 8,030,261,248
  assert.equal(linearWeightsPerLayer(LLAMA3_8B), 218_103_808);
  assert.equal(stateDictTensors(LLAMA3_8B).reduce((s, t) => s + t.elements, 0), 8_030_261_248);
  assert.equal(tensorLayoutIsExact(LLAMA3_8B), true);
  // Qwen2.5-7B has q/k/v biases: 3584 + 512 + 512 per layer
  assert.equal(decoderLinears(QWEN2_5_7B).filter((l) => l.bias).length, 3);
  assert.equal(stateDictTensors(QWEN2_5_7B).reduce((s, t) => s + t.elements, 0), 7_615_616_512);
  assert.equal(tensorLayoutIsExact(QWEN2_5_7B), true);
  // an architecture whose layout we do not know exactly is reported as such
  assert.equal(tensorLayoutIsExact({ ...LLAMA3_8B, modelType: 'gemma2' }), false);
  assert.equal(tensorLayoutIsExact({ ...LLAMA3_8B, parameterCount: LLAMA3_8B.parameterCount + 1 }), false);
});

test('matmul parameters exclude the embedding lookup but include the LM head', () => {
  // 32 × 218,103,808 + 128,256 × 4096 = 6,979,321,856 + 525,336,576 = 7,504,658,432
  assert.equal(matmulParams(LLAMA3_8B), 7_504_658_432);
});
