import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import {
  H100_LLAMA3_8B_LORA,
  SEED_RUN,
  TRAINING_EFFICIENCY,
  decoderLinears,
  deadlineSeconds,
  gpuById,
  impliedUtilisation,
  launchUnits,
  planPipeline,
  planStage,
  trainerSchedule,
  trainingFlopsPerToken,
  trainingThroughput,
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

test('FLOPs per token: 6 × the decoder linears with recompute, the LM head without, LoRA and attention', () => {
  // s = 1024, LoRA r = 8 on all linears, gradient checkpointing:
  //   frozen decoder linears 3 × 2 × 6,979,321,856 = 41,875,931,136  (forward, input gradient, recompute)
  //   LM head                4 × 525,336,576        =  2,101,346,304  (forward + input gradient; not checkpointed)
  //   LoRA                   8 × 20,971,520          =    167,772,160
  //   attention  4 × 2 × 32 × 1024 × 4096            =  1,073,741,824
  //   total                                          = 45,218,791,424 (the plain 6 × 8.03e9 = 48.2e9 would count
  //   the embedding lookup and recompute the LM head)
  const f = trainingFlopsPerToken(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true }, 1024);
  assert.deepEqual(f, { total: 45_218_791_424, frozenLinears: 41_875_931_136, lmHead: 2_101_346_304, lora: 167_772_160, attention: 1_073_741_824 });
  // without checkpointing the same step costs 2/3 of the frozen FLOPs: 4P instead of 6P
  const noGc = trainingFlopsPerToken(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: false }, 1024);
  assert.equal(noGc.frozenLinears, 27_917_287_424);
});

test('the efficiency curve: fitted exactly on the two H100 points, rising with the batch', () => {
  // t(T) = T·F / (η∞ · 989.4e12) + c. From 2048/4565 = 0.44863 s and 8192/7226 = 1.13368 s per micro-batch:
  // 0.68505 s for 6,144 more tokens → η∞ = 45.22e9 / (1.11500e-4 × 989.4e12) = 0.410; c = 0.2203 s
  assert.equal(TRAINING_EFFICIENCY.asymptotic.toFixed(3), '0.410');
  const units = launchUnits(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true });
  // 32 layers × (5 + 7 adapters) × 4 passes
  assert.equal(units, 1536);
  assert.equal((TRAINING_EFFICIENCY.secondsPerLaunchUnit * units).toFixed(4), '0.2203');
  const h100 = gpuById('h100-80gb')!;
  const cfg = { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true, precision: 'bfloat16' as const };
  const tps = (b: number) => trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 1024, tokensPerMicroBatch: b * 1024 }, h100, 1)!;
  for (const point of H100_LLAMA3_8B_LORA) assert.equal(Math.round(tps(point.microBatch).tokensPerSecond), point.tokensPerSecond);
  // between and beyond: 1 × 1024 → 3,062, 4 × 1024 → 6,050, 16 × 1024 → 8,004 tokens/s; never the limit
  assert.deepEqual([1, 4, 16].map((b) => Math.round(tps(b).tokensPerSecond)), [3062, 6050, 8004]);
  const big = tps(1024);
  assert.ok(big.efficiency < TRAINING_EFFICIENCY.asymptotic && big.tokensPerSecond < big.limitTokensPerSecond);
  // the physical limit: 989.4e12 / 45.22e9 = 21,880 tokens/s at 100 % of the peak
  assert.equal(Math.round(big.limitTokensPerSecond), 21_880);
  // the band: ±10 % on the Hopper GPUs the curve was fitted on, ±25 % elsewhere
  assert.equal(tps(2).band, 0.1);
  assert.equal(trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 1024, tokensPerMicroBatch: 2048 }, gpuById('h200')!, 1)!.band, 0.1);
  assert.equal(trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 1024, tokensPerMicroBatch: 2048 }, gpuById('a100-80gb')!, 1)!.band, 0.25);
});

test("held out: the seed's run on an A100 is predicted within 2.1 %", () => {
  // the seed's own utilisation on an A100: 1,838 tokens/s × 4.48e10 FLOPs = 26.4 % of 312 TFLOP/s
  assert.equal(impliedUtilisation(SEED_RUN).toFixed(4), '0.2638');
  const plan = planStage(seedSft({ resources: { gpuType: 'a100-40gb' } }));
  if (plan.details.kind !== 'sft') return assert.fail();
  // 4,665 rows × 603 tokens = 2,812,995 tokens (the log: 2,812,704)
  assert.equal(plan.details.tokens, 2_812_995);
  assert.equal(plan.details.schedule.optimizerSteps, 300);
  // micro-batch of 2 × 603 tokens: 1,206 × 44.78e9 / (0.410 × 312e12) = 0.422 s + 0.220 s → 1,877 tokens/s
  // (the log: 1,838, +2.1 %), so 1,499 s instead of 1,530 s
  assert.equal(Math.round(plan.details.tokensPerSecond ?? 0), 1877);
  assert.ok(Math.abs((plan.details.trainSeconds ?? 0) / 1530.14 - 1) < 0.025);
  // ±25 % on an Ampere GPU: the run takes 2,812,995 / (1,877 × 1.25) … / (1,877 × 0.75) seconds
  assert.deepEqual(plan.details.trainSecondsRange?.map(Math.round), [1199, 1998]);
  // the pod also starts (60 s), reads 16 GB of weights (64.2 s), tokenises (3.2 s) and saves (1.3 s), each ±50 %
  assert.equal(plan.expectedSeconds, 1628);
  assert.deepEqual(plan.secondsRange, [1284, 2256]);
  // the deadline: the slow end × 1.5 + 30 min
  assert.equal(plan.deadlineSeconds, Math.ceil(2256 * 1.5 + 1800));
  assert.ok(plan.warnings.some((w) => /stops at epoch 9\.70 of 10/.test(w)));
});

test('other GPUs: the compute shrinks with their peak, the launch overhead does not; data parallelism at 90 %', () => {
  const cfg = { rank: 8, targets: decoderLinears(LLAMA3_8B), gradientCheckpointing: true, precision: 'bfloat16' as const };
  const on = (id: string) => trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 603, tokensPerMicroBatch: 1206 }, gpuById(id)!, 1)!;
  const a100 = on('a100-40gb');
  const h100 = on('h100-80gb');
  assert.equal((a100.computeSeconds / h100.computeSeconds).toFixed(3), (989.4 / 312).toFixed(3));
  assert.equal(a100.overheadSeconds, h100.overheadSeconds);
  // so the H100 is 1.82× faster at this small batch, not 3.17×
  assert.equal((h100.tokensPerSecond / a100.tokensPerSecond).toFixed(2), '1.82');
  // tokens per second on 2 GPUs = 2 × 0.9 = 1.8 × one GPU
  const one = trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 603, tokensPerMicroBatch: 1206 }, gpuById('l40s')!, 1)!;
  const two = trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 603, tokensPerMicroBatch: 1206 }, gpuById('l40s')!, 2)!;
  assert.equal((two.tokensPerSecond / one.tokensPerSecond).toFixed(3), '1.800');
  // T4 has no bf16: with bf16 requested there is no throughput at all
  assert.equal(trainingThroughput(LLAMA3_8B, cfg, { sequenceLength: 603, tokensPerMicroBatch: 1206 }, gpuById('t4')!, 1), null);
  // fewer layers and adapters, no recompute: fewer launches
  assert.equal(launchUnits(LLAMA3_8B, { rank: 8, targets: decoderLinears(LLAMA3_8B).slice(0, 2), gradientCheckpointing: false }), 32 * 7 * 3);
});

test("GPU-hours and money per stage: GPUs × hours × price per GPU-hour, with the time's band", () => {
  const plan = planStage(seedSft());
  assert.equal(plan.gpuType, 'l4');
  // g6.xlarge: $0.8048 per hour for its one L4
  assert.equal(plan.gpuHours, plan.expectedSeconds / 3600);
  assert.equal(plan.costUsd, plan.gpuHours * 0.8048);
  assert.equal(plan.usdPerHour, 0.8048);
  // the cost over the time's band
  assert.deepEqual(plan.costUsdRange, [(plan.costUsd! * plan.secondsRange[0]) / plan.expectedSeconds, (plan.costUsd! * plan.secondsRange[1]) / plan.expectedSeconds]);
  // your own price wins
  const own = planStage(seedSft(), { prices: { l4: 1 } });
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
  // bandwidth ±50 %: [252.7 / 1.5, 252.7 / 0.5]; the deadline is the slow end × 1.5 + 30 min
  assert.deepEqual(fetch.secondsRange, [168, 506]);
  assert.equal(fetch.deadlineSeconds, deadlineSeconds(506));
  assert.equal(deadlineSeconds(506), 506 * 1.5 + 1800);
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
