import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { isLabelValue } from '../src/names.ts';
import { LABELS } from '../src/labels.ts';
import { GPUS, GPU_IDS, GiB, gpuById, gpuOrder, instanceFor, isTightFit, place, planStage, type SftPlanArgs, type StagePlanInput } from '../src/planner/index.ts';

const SEED_ARGS: SftPlanArgs = { lora_rank: 8, lora_target: 'all', per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 };
const seedSft = (extra: Partial<StagePlanInput> = {}): StagePlanInput => ({ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: SEED_ARGS, data: { rows: 481, meanTokensPerRow: 603 }, ...extra }) as StagePlanInput;

test('the catalogue: ids are node label values, memory and prices are consistent', () => {
  assert.deepEqual(GPUS.map((g) => g.id), [...GPU_IDS]);
  for (const g of GPUS) {
    assert.ok(isLabelValue(g.id), g.id);
    assert.ok(g.memoryBytes > 14 * GiB && g.memoryBytes < 141 * GiB, g.id);
    for (const price of Object.values(g.prices)) {
      assert.ok(price.usdPerGpuHour > 0);
      assert.equal(price.usdPerGpuHour, price.instanceUsdPerHour / price.gpusPerInstance);
      // the priced machine is one of the machines listed for the GPU
      assert.ok(Object.values(g.instances).flat().some((o) => o.instanceType === price.instanceType && o.gpus === price.gpusPerInstance), `${g.id}: ${price.instanceType}`);
    }
  }
  // T4 has no bf16; memory is what nvidia-smi shows: 15360 MiB (16 GB marketed)
  assert.equal(gpuById('t4')!.bf16DenseFlops, null);
  assert.equal(gpuById('t4')!.memoryBytes, 15360 * 2 ** 20);
  // p4d.24xlarge $21.957642 / 8 = $2.7447 per A100-40GB hour
  assert.equal(gpuById('a100-40gb')!.prices.aws!.usdPerGpuHour.toFixed(4), '2.7447');
  assert.equal(instanceFor(gpuById('a100-40gb')!, 'aws', 1)!.instanceType, 'p4d.24xlarge');
  // L40S and A10G are AWS-only
  assert.deepEqual(gpuById('l40s')!.instances.gcp, []);
});

test('candidate order: memory class, then price on the cloud', () => {
  // A10G and L4 are both 22.5 GiB: the cheaper L4 ($0.8048) goes first on AWS
  assert.deepEqual(gpuOrder('aws').map((g) => g.id), ['t4', 'l4', 'a10g', 'a100-40gb', 'l40s', 'a100-80gb', 'h100-80gb', 'h200']);
});

test("the seed's SFT goes to the smallest GPU that fits with its error band to spare", () => {
  // needs 20.28 GiB ± 0.74 (its band): 21.02 GiB fits the L4's 22.49 GiB (g6.xlarge, the cheapest 24 GB class)
  const aws = planStage(seedSft());
  assert.equal(aws.gpuType, 'l4');
  assert.equal(aws.gpus, 1);
  assert.equal(aws.placement, 'auto');
  assert.deepEqual(aws.nodeSelector, { [LABELS.gpuType]: 'l4' });
  // the whole GPU is usable: the band is the headroom
  assert.equal(aws.usableGpuBytes, gpuById('l4')!.memoryBytes);
  assert.equal((aws.requiredGpuBytes! / GiB).toFixed(2), '20.28');
  assert.equal((aws.requiredGpuBandBytes! / GiB).toFixed(2), '0.74');
  assert.deepEqual(aws.issues, []);
  assert.equal(planStage(seedSft(), { cloud: 'gcp' }).gpuType, 'l4');
  // extra headroom on top of the band: 10 % of the L4 leaves 20.24 GiB, too little. AWS sells the
  // A100-40GB only as 8-GPU p4d nodes, so the 45 GiB L40S (g6e.xlarge) is next
  assert.equal(planStage(seedSft(), { headroom: 0.1 }).gpuType, 'l40s');
});

test('a GPU that fits by less than the error band is a warning naming the next GPU up', () => {
  // The estimate fits, the estimate plus its band does not.
  const fit = { fits: true, requiredBytes: 91, bandBytes: 10, usableBytes: 100 };
  assert.equal(isTightFit(fit), true, '91 + 10 = 101 > 100');
  assert.equal(isTightFit({ ...fit, bandBytes: 9 }), false, '91 + 9 = 100 ≤ 100');
  assert.equal(isTightFit({ ...fit, fits: false, requiredBytes: 120 }), false, 'a stage that does not fit is not a tight fit');

  // 2 × 1400 tokens: 21.93 GiB ± 0.91 fits the L4's 22.49 GiB; with its band (22.84) it does not.
  const args = { ...SEED_ARGS, cutoff_len: 1400 };
  const explicit = planStage(seedSft({ args, resources: { gpuType: 'l4', gpus: 1 } }));
  assert.equal(explicit.gpuType, 'l4');
  assert.equal(explicit.issues.length, 1);
  const issue = explicit.issues[0]!;
  assert.deepEqual([issue.code, issue.severity, issue.path, issue.value], ['planner.tight-fit', 'warning', 'stages.sft.resources.gpuType', 'l4']);
  assert.match(issue.message, /fits, but not with its error band to spare: needs 21\.93 ± 0\.91 of 22\.49 GiB per GPU/);
  // AWS sells the A100-40GB only as 8-GPU nodes: the next GPU up for one stage is the L40S.
  assert.match(issue.fix ?? '', /^if it runs out of memory, the next GPU up is gpuType 'l40s' \(45\.0 GiB\); or lower per_device_train_batch_size/);
  assert.match(planStage(seedSft({ args, resources: { gpuType: 'l4', gpus: 1 } }), { cloud: 'gcp' }).issues[0]!.fix ?? '', /next GPU up is gpuType 'a100-40gb'/);
  // With the count left open the planner spreads the stage instead: 2 L4s under ZeRO-3 fit with the band to spare.
  const spread = planStage(seedSft({ args, resources: { gpuType: 'l4' } }));
  assert.deepEqual([spread.gpuType, spread.layout, spread.issues], ['l4', { nodes: 1, gpusPerNode: 2, strategy: 'zero3' }, []]);
  // Automatic placement never takes a GPU without the band to spare: it goes one up, without a warning.
  const auto = planStage(seedSft({ args }));
  assert.deepEqual([auto.gpuType, auto.issues], ['l40s', []]);
});

test('an explicit GPU that is too small is an issue with path, value and fix', () => {
  const args = { ...SEED_ARGS, per_device_train_batch_size: 4 };
  const plan = planStage(seedSft({ args, resources: { gpuType: 'l4', gpus: 1 } }));
  assert.equal(plan.gpuType, 'l4');
  assert.equal(plan.placement, 'explicit');
  assert.equal(plan.issues.length, 1);
  const issue = plan.issues[0]!;
  assert.equal(issue.code, 'planner.does-not-fit');
  assert.equal(issue.path, 'stages.sft.resources.gpuType');
  assert.equal(issue.value, 'l4');
  assert.match(issue.message, /needs 24\.79 GiB ± 1\.\d\d GiB per GPU, 22\.49 GiB usable/);
  assert.match(issue.fix ?? '', /use gpuType 'l40s'/);
  assert.match(issue.fix ?? '', /per_device_train_batch_size \(now 4\)/);

  // an explicit choice that fits is kept, even when larger than needed
  const h100 = planStage(seedSft({ resources: { gpuType: 'h100-80gb' } }));
  assert.deepEqual([h100.gpuType, h100.placement, h100.issues.length], ['h100-80gb', 'explicit', 0]);
});

test('unknown GPU ids, GPUs a cloud lacks, impossible counts and bf16 on a T4 are issues', () => {
  const unknown = planStage(seedSft({ resources: { gpuType: 'a100' } }));
  assert.equal(unknown.issues[0]!.code, 'planner.gpu-type');
  assert.match(unknown.issues[0]!.fix ?? '', /a100-40gb/);
  assert.equal(unknown.gpuType, 'l4'); // still planned, on the automatic choice

  const gcp = planStage(seedSft({ resources: { gpuType: 'l40s' } }), { cloud: 'gcp' });
  assert.ok(gcp.issues.some((i) => i.code === 'planner.not-offered' && i.path === 'stages.sft.resources.gpuType'));

  const sixteen = planStage(seedSft({ resources: { gpuType: 'l40s', gpus: 16 } }));
  assert.ok(sixteen.issues.some((i) => i.code === 'planner.not-offered' && i.path === 'stages.sft.resources.gpus' && /at most 8/.test(i.message)));

  const t4 = planStage({ ...seedSft(), args: { ...SEED_ARGS, per_device_train_batch_size: 1, cutoff_len: 256 }, resources: { gpuType: 't4' } } as StagePlanInput);
  const bf16 = t4.issues.find((i) => i.code === 'planner.unsupported-gpu');
  assert.ok(bf16);
  assert.match(bf16.message, /no bf16/);
  assert.match(bf16.message, /fp16: true/);

  const zero = planStage(seedSft({ resources: { gpus: 0 } }));
  assert.equal(zero.issues[0]!.code, 'planner.gpus');
});

test('when nothing fits the stage is an issue, not a crash', () => {
  const plan = planStage({ ...seedSft(), args: { ...SEED_ARGS, per_device_train_batch_size: 64, cutoff_len: 8192, disable_gradient_checkpointing: true } } as StagePlanInput);
  assert.equal(plan.gpuType, undefined);
  assert.equal(plan.issues[0]!.code, 'planner.no-gpu-fits');
  assert.equal(plan.issues[0]!.path, 'stages.sft');
  assert.match(plan.issues[0]!.fix ?? '', /remove disable_gradient_checkpointing/);
});

test('place() is generic: counts are tried in order, smallest GPU first', () => {
  // a stage needing 60 GiB in total that splits evenly across GPUs
  const need = 60 * GiB;
  const p = place({ path: 'stages.x', cloud: 'gcp', counts: [1, 2, 4], fit: (gpu, n) => ({ fits: need / n <= gpu.memoryBytes * 0.9, requiredBytes: need / n, bandBytes: 0, usableBytes: gpu.memoryBytes * 0.9 }) });
  // one GPU: A100-80GB (72 GiB usable) is the first that holds 60 GiB
  assert.deepEqual([p.gpu?.id, p.gpus], ['a100-80gb', 1]);
  const two = place({ path: 'stages.x', cloud: 'gcp', counts: [1, 2], gpus: 2, fit: (gpu, n) => ({ fits: need / n <= gpu.memoryBytes * 0.9, requiredBytes: need / n, bandBytes: 0, usableBytes: gpu.memoryBytes * 0.9 }) });
  // two GPUs: 30 GiB each → A100-40GB (36 GiB usable, a2-highgpu-2g)
  assert.deepEqual([two.gpu?.id, two.gpus, two.source], ['a100-40gb', 2, 'auto']);
});
