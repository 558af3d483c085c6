import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import {
  SEED_RUN,
  TRAINING_UTILISATION,
  decoderLinears,
  deadlineSeconds,
  gpuById,
  impliedUtilisation,
  planPipeline,
  planStage,
  trainerSchedule,
  trainingFlopsPerToken,
  trainingTokensPerSecond,
  type SftPlanArgs,
  type StagePlanInput,
} from '../src/planner/index.ts';

const SEED_ARGS: SftPlanArgs = { lora_rank: 8, lora_target: 'all', per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 };
const SEED_CONFIG = { microBatch: 2, gradientAccumulation: 8, epochs: 10, maxSteps: undefined, valSize: 0, packing: false, cutoffLen: 1024 };
// Tokens per row as the seed's model saw them (padding included): 2,812,704 tokens / 4,665 rows run = 602.9
const SEED_MEAN_TOKENS = 603;
const seedSft = (extra: object = {}): StagePlanInput => ({ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: SEED_ARGS, data: { rows: 481, meanTokensPerRow: SEED_MEAN_TOKENS }, ...extra }) as StagePlanInput;

test("the Trainer's schedule for the seed: 300 steps that end at epoch 9.70", () => {
  // 481 rows / batch 2 = 241 micro-batches per epoch; planned floor(241/8) = 30 updates per epoch →
  // max_steps = 10 × 30 = 300. But each epoch runs ceil(241/8) = 31 updates (the last with 1 micro-batch),
  // so 300 steps = 9 epochs (279 updates) + 21 updates × 8 = 168 micro-batches: epoch 9 + 168/241 = 9.70,
  // rows 9 × 481 + 168 × 2 = 4,665 (not 481 × 10 = 4,810)
  const s = trainerSchedule(481, SEED_CONFIG, 1, SEED_MEAN_TOKENS);
  assert.equal(s.microBatchesPerEpoch, 241);
  assert.equal(s.optimizerSteps, 300);
  assert.equal(s.microBatchesRun, 2_337);
  assert.equal(s.sequencesRun, 4_665);
  assert.equal(s.epochsRun.toFixed(2), '9.70');
  assert.equal(SEED_RUN.sequences, 4_665);
  // val_size 0.02 of 491 rows holds out ceil(9.82) = 10 rows: the seed's 481 train / 10 eval
  assert.deepEqual([trainerSchedule(491, { ...SEED_CONFIG, valSize: 0.02 }, 1, 603).trainRows, trainerSchedule(491, { ...SEED_CONFIG, valSize: 0.02 }, 1, 603).evalRows], [481, 10]);
  // packing: ceil(481 × 603 / 1024) = ceil(283.2) = 284 packed rows per epoch
  assert.equal(trainerSchedule(481, { ...SEED_CONFIG, packing: true }, 1, 603).sequencesPerEpoch, 284);
});

test('calibration: the seed implies 26% utilisation on an A100-class GPU', () => {
  // FLOPs per token, LoRA with gradient checkpointing, s = 2,812,704 / 4,665 = 602.94:
  //   frozen decoder linears 3 × 2 × 6,979,321,856   = 41,875,931,136  (forward, input-grad, recompute)
  //   LM head                4 × 525,336,576          =  2,101,346,304  (forward + input-grad)
  //   LoRA                   8 × 20,971,520            =    167,772,160
  //   attention  4 × 2 × 32 × 602.94 × 4096           =    632,2..,...
  //   total ≈ 4.4777e10
  const s = SEED_RUN.tokens / SEED_RUN.sequences;
  const f = trainingFlopsPerToken(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true }, s);
  assert.equal(f.frozenLinears, 41_875_931_136);
  assert.equal(f.lmHead, 2_101_346_304);
  assert.equal(f.lora, 167_772_160);
  assert.equal(Math.round(f.attention / 1e6), 632);
  // 2,812,704 tokens / 1,530.14 s = 1,838.2 tokens/s × 4.4777e10 = 8.231e13 FLOP/s / 312e12 = 0.2638
  assert.equal(impliedUtilisation(SEED_RUN).toFixed(4), '0.2638');
  assert.equal(TRAINING_UTILISATION, impliedUtilisation(SEED_RUN));
  // without checkpointing the same step costs 2/3 of the frozen FLOPs: 4P instead of 6P
  const noGc = trainingFlopsPerToken(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: false }, s);
  assert.equal(noGc.frozenLinears, 27_917_287_424);
});

test("the seed's run is predicted at 25.5 minutes on its GPU", () => {
  const plan = planStage(seedSft({ resources: { gpuType: 'a100-40gb' } }));
  assert.equal(plan.details.kind, 'sft');
  if (plan.details.kind !== 'sft') return;
  // 4,665 rows × 603 tokens = 2,812,995 tokens (the log: 2,812,704)
  assert.equal(plan.details.tokens, 2_812_995);
  assert.equal(plan.details.schedule.optimizerSteps, 300);
  // tokens / 1,838 tokens/s ≈ 1,530 s = 25.5 min (the log: train_runtime 1,530.14 s)
  const minutes = (plan.details.trainSeconds ?? 0) / 60;
  assert.equal(minutes.toFixed(1), '25.5');
  assert.ok(Math.abs((plan.details.trainSeconds ?? 0) - 1530.14) / 1530.14 < 0.01);
  assert.equal(Math.round(plan.details.tokensPerSecond ?? 0), 1838);
  // the pod also starts, reads 16 GB of weights, tokenises and saves: 60 + 64.2 + 3.2 + 1530.3 + 1.3
  assert.equal(plan.expectedSeconds, 1660);
  assert.equal(plan.deadlineSeconds, 1660 * 3 + 1800);
  assert.ok(plan.warnings.some((w) => /stops at epoch 9\.70 of 10/.test(w)));
});

test('other GPUs scale with their bf16 peak; data parallelism with 90% efficiency', () => {
  const on = (gpu: string, extra: object = {}) => {
    const p = planStage(seedSft({ resources: { gpuType: gpu, ...extra } }));
    return p.details.kind === 'sft' ? (p.details.trainSeconds ?? 0) : 0;
  };
  const a100 = on('a100-40gb');
  // H100: 989.4 / 312 = 3.17× faster; L40S: 362.05 / 312 = 1.16× faster
  assert.equal((a100 / on('h100-80gb')).toFixed(3), (989.4 / 312).toFixed(3));
  assert.equal((a100 / on('l40s')).toFixed(3), (362.05 / 312).toFixed(3));
  // tokens per second on 2 GPUs = 2 × 0.9 = 1.8 × one GPU
  const cfg = { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true, precision: 'bfloat16' as const };
  const one = trainingTokensPerSecond(LLAMA3_8B, cfg, 603, gpuById('l40s')!, 1)!;
  const two = trainingTokensPerSecond(LLAMA3_8B, cfg, 603, gpuById('l40s')!, 2)!;
  assert.equal((two / one).toFixed(3), '1.800');
  // T4 has no bf16: with bf16 requested there is no throughput at all
  assert.equal(trainingTokensPerSecond(LLAMA3_8B, cfg, 603, gpuById('t4')!, 1), null);
});

test('GPU-hours and money per stage: GPUs × hours × price per GPU-hour', () => {
  const plan = planStage(seedSft());
  assert.equal(plan.gpuType, 'l40s');
  // g6e.xlarge: $1.861 per hour for its one L40S
  assert.equal(plan.gpuHours, plan.expectedSeconds / 3600);
  assert.equal(plan.costUsd, plan.gpuHours * 1.861);
  assert.equal(plan.usdPerHour, 1.861);
  // your own price wins
  const own = planStage(seedSft(), { prices: { l40s: 1 } });
  assert.equal(own.costUsd, own.gpuHours);
  // GCP has no list price for the H200 here: cost unknown, said so
  const h200 = planStage(seedSft({ resources: { gpuType: 'h200' } }), { cloud: 'gcp' });
  assert.equal(h200.costUsd, null);
  assert.ok(h200.warnings.some((w) => /no gcp list price for h200/.test(w)));
  // an A100-40GB on AWS comes as an 8-GPU node: said so
  const p4d = planStage(seedSft({ resources: { gpuType: 'a100-40gb' } }));
  assert.ok(p4d.warnings.some((w) => /p4d\.24xlarge with 8 GPUs/.test(w)));
});

test('without the mean tokens per row, time is an upper bound from cutoff_len', () => {
  const plan = planStage({ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: SEED_ARGS, data: { rows: 481 } });
  if (plan.details.kind !== 'sft') return assert.fail();
  // 4,665 rows × 1,024 tokens
  assert.equal(plan.details.tokens, 4_665 * 1024);
  assert.equal(plan.details.tokensAreUpperBound, true);
  assert.ok(plan.warnings.some((w) => /upper bound/.test(w)));
});

test('stages without GPU work: time from bytes moved', () => {
  const fetch = planStage({ kind: 'fetch-model', name: 'fetch-model', architecture: LLAMA3_8B });
  // 60 s start + 16,060,522,496 B / 100 MB/s (160.6 s) + SHA-256 at 500 MB/s (32.1 s) = 252.7 → 253
  assert.equal(fetch.expectedSeconds, 253);
  assert.deepEqual([fetch.gpus, fetch.gpuHours, fetch.costUsd, fetch.placement], [0, 0, null, 'cpu']);
  assert.equal(deadlineSeconds(253), 253 * 3 + 1800);
});

test('a pipeline adds up batch stages and prices serving per hour', () => {
  const plan = planPipeline([
    { kind: 'fetch-model', name: 'fetch-model', architecture: LLAMA3_8B },
    seedSft(),
    { kind: 'merge', name: 'merge', architecture: LLAMA3_8B, args: { export_size: 4 } },
    { kind: 'quantize', name: 'quantize', architecture: LLAMA3_8B, args: { export_quantization_bit: 4 } },
    { kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'gptq', bits: 4 }, args: { max_model_len: 8192 } },
  ]);
  const batch = plan.stages.filter((s) => s.kind !== 'serve');
  assert.equal(plan.totals.expectedSeconds, batch.reduce((s, p) => s + p.expectedSeconds, 0));
  assert.equal(plan.totals.costUsd, batch.reduce((s, p) => s + (p.costUsd ?? 0), 0));
  assert.equal(plan.totals.costComplete, true);
  assert.equal(plan.totals.servingUsdPerHour, plan.stages.at(-1)!.usdPerHour);
  assert.deepEqual(plan.issues, []);
});
