import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B, QWEN2_5_7B } from '../src/model/architecture.ts';
import { catalogueModel } from '../src/model/catalogue.ts';
import {
  GiB,
  NCCL_BUS_EFFICIENCY,
  PLAN_WIDTH,
  collectiveLink,
  formatPipelinePlan,
  formatStageExplain,
  summarizePlans,
  frozenWeightBytes,
  gpuById,
  linearWeightsPerLayer,
  modelStates,
  planStage,
  queueAdmitIssues,
  resolveSft,
  sftMemory,
  stepCommunication,
  trainingFlopsPerToken,
  type ParallelLayout,
  type SftPlanArgs,
  type StagePlanInput,
  type TrainingStrategy,
} from '../src/planner/index.ts';

const LLAMA3_70B = catalogueModel('meta-llama/Llama-3.1-70B-Instruct')!.architecture;
const P8 = 8_030_261_248;
const P70 = 70_553_706_496;
/** LoRA r=16 on all seven linears of the 80 layers: 16 × (3·8192 + 1024 + 1024 + 8192 + 2·(8192 + 28672) + 28672 + 8192) × 80. */
const T70 = 207_093_760;

const FULL: SftPlanArgs = { finetuning_type: 'full', per_device_train_batch_size: 1, gradient_accumulation_steps: 8, cutoff_len: 2048, bf16: true };
const LORA70: SftPlanArgs = { lora_rank: 16, lora_target: 'all', per_device_train_batch_size: 1, gradient_accumulation_steps: 8, cutoff_len: 2048, bf16: true };
const DATA = { rows: 10_000, meanTokensPerRow: 1024 };
const config = (arch: typeof LLAMA3_8B, args: SftPlanArgs) => resolveSft(arch, args, DATA, 'stages.sft').config;
const on8 = (strategy: TrainingStrategy, nodes = 1): ParallelLayout => ({ nodes, gpusPerNode: 8, strategy });
const sft = (arch: typeof LLAMA3_8B, args: SftPlanArgs, extra: Partial<Extract<StagePlanInput, { kind: 'sft' }>> = {}): StagePlanInput => ({ kind: 'sft', name: 'sft', architecture: arch, args, data: DATA, ...extra });
const codes = (p: ReturnType<typeof planStage>) => p.issues.map((i) => i.code);

test('known fact: full fine-tuning of an 8B model in bf16 with AdamW holds 16 B per parameter, about 120 GiB, before activations', () => {
  const c = config(LLAMA3_8B, FULL);
  assert.equal(c.finetuningType, 'full');
  assert.deepEqual(c.targets, []);
  // DDP: LLaMA-Factory upcasts the trainable params to fp32: 4 (weights) + 4 (gradients) + 8 (AdamW m, v)
  const ddp = modelStates(LLAMA3_8B, c, { nodes: 1, gpusPerNode: 1, strategy: 'ddp' });
  assert.equal(ddp.modelStateBytes, 16 * P8);
  assert.equal(ddp.modelStateBytes, 128_484_179_968);
  assert.equal((ddp.modelStateBytes / GiB).toFixed(1), '119.7');
  assert.deepEqual(ddp.before.map((t) => [t.name, t.bytes / P8]), [['weights (fp32)', 4], ['gradients (fp32)', 4], ['optimizer states (adamw_torch)', 8]]);
  // DeepSpeed on one rank: 2 (bf16 weights) + 2 (bf16 gradients) + 12 (fp32 master, m, v): the same 16 B
  assert.equal(modelStates(LLAMA3_8B, c, { nodes: 1, gpusPerNode: 1, strategy: 'zero3' }).modelStateBytes, 16 * P8);
  // LLaMA-Factory logs every parameter as trainable
  const plan = planStage(sft(LLAMA3_8B, FULL, { resources: { gpuType: 'h100-80gb', gpusPerNode: 8 } }));
  assert.equal(plan.details.kind === 'sft' && plan.details.paramsLogLine, 'trainable params: 8,030,261,248 || all params: 8,030,261,248 || trainable%: 100.0000');
});

test('known fact: ZeRO-3 over 8 GPUs divides the model states by 8', () => {
  const c = config(LLAMA3_8B, FULL);
  const zero3 = modelStates(LLAMA3_8B, c, on8('zero3'));
  assert.equal(zero3.modelStateBytes, (16 * P8) / 8);
  assert.equal((zero3.modelStateBytes / GiB).toFixed(2), '14.96');
});

test('8B full fine-tuning on 8 GPUs: model states per GPU under each strategy', () => {
  const c = config(LLAMA3_8B, FULL);
  const states = (s: TrainingStrategy) => modelStates(LLAMA3_8B, c, on8(s));
  assert.equal(states('ddp').modelStateBytes, 16 * P8); // replicated
  assert.equal(states('zero2').modelStateBytes, 2 * P8 + (14 * P8) / 8); // bf16 weights replicated; gradients and fp32 master/m/v split
  assert.equal(states('zero3').modelStateBytes, (16 * P8) / 8);
  assert.equal(states('fsdp').modelStateBytes, (16 * P8) / 8); // fp32 params (upcast), grads, m, v, all sharded
  assert.equal(states('zero3-offload').modelStateBytes, 0); // the GPU keeps the working set only …
  // … the host keeps 2 + 4 + 12 B per parameter of its ranks
  assert.equal(states('zero3-offload').host.reduce((a, t) => a + t.bytes, 0), 18 * P8);
  // DDP adds fp32 gradient buckets (a copy of the gradients) and, with checkpointing, autocast's
  // bf16 copies of lm_head and the recomputed layer
  assert.deepEqual(states('ddp').after.map((t) => [t.name, t.bytes]), [
    ['DDP gradient buckets', 4 * P8],
    ['autocast bf16 weight copies', 2 * (128_256 * 4096 + linearWeightsPerLayer(LLAMA3_8B))],
  ]);
  // ZeRO-3 gathers at most stage3_max_live_parameters (1e9) params in bf16
  assert.equal(states('zero3').after.find((t) => t.name.startsWith('gathered parameters'))!.bytes, 2e9);
});

test('70B LoRA (r=16, all linears) on 8 GPUs: model states per GPU under each strategy', () => {
  const c = config(LLAMA3_70B, LORA70);
  assert.equal(resolveSft(LLAMA3_70B, LORA70, DATA, 's').lora.trainable, T70);
  const states = (s: TrainingStrategy) => modelStates(LLAMA3_70B, c, on8(s)).modelStateBytes;
  assert.equal(states('ddp'), 2 * P70 + 16 * T70); // bf16 frozen weights + fp32 LoRA weights, gradients, m, v
  assert.equal((states('ddp') / GiB).toFixed(1), '134.5'); // more than an 80 GB GPU
  assert.equal(states('zero2'), 2 * P70 + 2 * T70 + (14 * T70) / 8); // the frozen weights stay whole
  assert.equal(states('zero3'), (2 * P70 + 2 * T70) / 8 + (14 * T70) / 8);
  assert.equal((states('zero3') / GiB).toFixed(2), '16.81');
  assert.equal(states('fsdp'), (2 * P70 + 16 * T70) / 8);
  assert.equal(states('zero3-offload'), 0);
});

test('QLoRA: frozen decoder linears at bits/8 B plus bitsandbytes scales; embeddings, norms and lm_head 16-bit', () => {
  const linears = 32 * linearWeightsPerLayer(LLAMA3_8B);
  const rest = P8 - linears;
  const q = (bits: 4 | 8, doubleQuantization = true) => frozenWeightBytes(LLAMA3_8B, { finetuningType: 'lora', quantizationBit: bits, doubleQuantization, precision: 'bfloat16' }).bytes;
  // 4-bit NF4: 0.5 B + per 64-weight block an 8-bit scale (double quantization) and per 256 blocks an fp32 one
  assert.equal(q(4), linears * (0.5 + 1 / 64 + 4 / (64 * 256)) + rest * 2);
  assert.equal((q(4) / 1e9).toFixed(2), '5.70');
  assert.equal(q(4, false), linears * (0.5 + 4 / 64) + rest * 2);
  // LLM.int8: 1 B per weight and an fp32 scale per output row
  assert.equal(q(8), linears + 32 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096) * 4 + rest * 2);
  // 70B QLoRA fits one 80 GB GPU
  const plan = planStage(sft(LLAMA3_70B, { ...LORA70, quantization_bit: 4 }, { resources: { gpuType: 'h100-80gb' } }));
  assert.deepEqual(plan.layout, { nodes: 1, gpusPerNode: 1, strategy: 'ddp' });
  assert.ok(plan.gpuMemory!.terms.some((t) => t.name === 'frozen weights (4-bit decoder linears)'));
  // a quantized model trains adapters only (model/adapter.py); bitsandbytes has 4 and 8 bits only
  const bad = resolveSft(LLAMA3_8B, { finetuning_type: 'full', quantization_bit: 4 }, DATA, 'stages.sft');
  assert.deepEqual(bad.issues.map((i) => i.path), ['stages.sft.args.quantization_bit']);
  assert.deepEqual(resolveSft(LLAMA3_8B, { quantization_bit: 3 }, DATA, 'stages.sft').issues.map((i) => i.path), ['stages.sft.args.quantization_bit']);
});

test('full fine-tuning keeps the linear inputs for the weight gradients and adds the weight-gradient FLOPs', () => {
  const lora = config(LLAMA3_8B, { ...FULL, finetuning_type: 'lora' });
  const full = config(LLAMA3_8B, FULL);
  const m = sftMemory(LLAMA3_8B, full, 1);
  // 2·a·h (attention input) + a·I (down_proj input) + 2·a·h (normalised RMSNorm inputs) per token per layer
  assert.equal(m.layerActivationBytesPerToken - sftMemory(LLAMA3_8B, { ...lora, targets: [] }, 1).layerActivationBytesPerToken, 4 * 2 * 4096 + 2 * 14336);
  const decoder = 32 * linearWeightsPerLayer(LLAMA3_8B);
  // forward 2P + backward 4P + recompute 2P = 8P for the decoder linears, 6·V·h for lm_head
  const f = trainingFlopsPerToken(LLAMA3_8B, full, 1024);
  assert.equal(f.frozenLinears, 8 * decoder);
  assert.equal(f.lmHead, 6 * 128_256 * 4096);
  assert.equal(f.lora, 0);
});

test('communication per optimizer step: NVLink, PCIe, and the node network across 2 nodes', () => {
  const c = config(LLAMA3_8B, FULL);
  const allReduce = (gpu: string, nodes: number) => stepCommunication(LLAMA3_8B, c, { nodes, gpusPerNode: 8, strategy: 'ddp' }, gpuById(gpu)!, 'aws');
  // ring all-reduce: 2(N−1)/N × the fp32 gradients
  const nvlink = allReduce('h100-80gb', 1);
  assert.equal(nvlink.terms[0]!.bytes, 2 * (7 / 8) * P8 * 4);
  assert.equal(nvlink.bytesPerSecond, 450e9 * NCCL_BUS_EFFICIENCY); // NVLink 4: 900 GB/s both ways
  assert.equal(nvlink.terms[0]!.seconds.toFixed(3), '0.178');
  const pcie = allReduce('l40s', 1);
  assert.equal(pcie.bytesPerSecond, 32e9 * NCCL_BUS_EFFICIENCY); // PCIe Gen4 x16
  assert.equal(pcie.terms[0]!.seconds.toFixed(2), '2.51');
  // 2 × p5.48xlarge: 3200 Gbit/s EFA = 400 GB/s per node, below NVLink's 450: the network limits
  const twoNodes = allReduce('h100-80gb', 2);
  assert.equal(twoNodes.terms[0]!.bytes, 2 * (15 / 16) * P8 * 4);
  assert.equal(twoNodes.bytesPerSecond, 400e9 * NCCL_BUS_EFFICIENCY);
  assert.match(twoNodes.link, /node network 3200 Gbit\/s/);
  // 2 × p4d.24xlarge: 400 Gbit/s = 50 GB/s per node against NVLink 3's 300
  assert.equal(collectiveLink(gpuById('a100-40gb')!, on8('ddp', 2), 'aws').bytesPerSecond, 50e9 * NCCL_BUS_EFFICIENCY);
  assert.ok(twoNodes.terms[0]!.seconds > nvlink.terms[0]!.seconds && pcie.terms[0]!.seconds > twoNodes.terms[0]!.seconds);

  // ZeRO-3 gathers the bf16 parameters 3 times per micro-batch (forward, backward, recompute)
  const z3 = stepCommunication(LLAMA3_8B, c, on8('zero3'), gpuById('h100-80gb')!, 'aws');
  assert.deepEqual(z3.terms.map((t) => t.name), ['parameter all-gathers', 'gradient reduce-scatter']);
  assert.equal(z3.terms[0]!.bytes, 8 * 3 * (7 / 8) * P8 * 2);
  // offload adds PCIe copies and CPU Adam, which block the step
  const off = stepCommunication(LLAMA3_8B, c, on8('zero3-offload'), gpuById('h100-80gb')!, 'aws');
  assert.deepEqual(off.terms.filter((t) => !t.overlaps).map((t) => t.name), ['host↔device gradient and parameter copies', 'CPU Adam']);
  assert.equal(off.terms.find((t) => t.name === 'CPU Adam')!.seconds, P8 / 1e9);
});

test('training time = compute + exposed communication; GPU-hours count every node', () => {
  const one = planStage(sft(LLAMA3_70B, LORA70, { strategy: 'zero3', resources: { gpuType: 'h100-80gb', nodes: 1, gpusPerNode: 8 } }));
  const two = planStage(sft(LLAMA3_70B, LORA70, { strategy: 'zero3', resources: { gpuType: 'h100-80gb', nodes: 2, gpusPerNode: 8 } }));
  for (const p of [one, two]) {
    assert.ok(p.details.kind === 'sft' && p.details.communication);
    const c = p.details.communication;
    const overlapping = c.terms.reduce((a, t) => a + t.seconds, 0);
    assert.equal(c.exposedSecondsPerStep, Math.max(0, overlapping - 0.5 * c.computeSecondsPerStep));
    assert.equal(p.secondsBreakdown.communication, c.exposedSecondsPerStep * p.details.schedule.optimizerSteps);
  }
  assert.ok(two.secondsBreakdown.communication! > one.secondsBreakdown.communication! / 2, 'the network is slower than NVLink');
  assert.equal(two.gpus, 8);
  assert.equal(two.gpuHours, (16 * two.expectedSeconds) / 3600);
  // one GPU: no communication step (the calibrated single-GPU plans are unchanged)
  const single = planStage(sft(LLAMA3_8B, { ...LORA70, lora_rank: 8 }, { resources: { gpus: 1 } }));
  assert.equal(single.secondsBreakdown.communication, undefined);
  assert.deepEqual(single.layout, { nodes: 1, gpusPerNode: 1, strategy: 'ddp' });
});

test('layout search: the fewest GPUs that fit, then the smallest GPU, then ddp, zero2, zero3, fsdp, zero3-offload', () => {
  // 70B LoRA on H100s: ddp and zero2 keep the 141 GB of frozen weights whole on every GPU; ZeRO-3
  // on 2 GPUs holds half (65.7 GiB) plus the working set, 77.29 ± 1.92 of 79.65 GiB
  const h100 = planStage(sft(LLAMA3_70B, LORA70, { resources: { gpuType: 'h100-80gb' } }));
  assert.deepEqual(h100.layout, { nodes: 1, gpusPerNode: 2, strategy: 'zero3' });
  assert.equal((h100.requiredGpuBytes! / GiB).toFixed(2), '77.29');
  assert.deepEqual(h100.issues, []);
  // with a whole node asked for, ZeRO-3 is still the first strategy that fits
  const node = planStage(sft(LLAMA3_70B, LORA70, { resources: { gpuType: 'h100-80gb', gpusPerNode: 8 } }));
  assert.deepEqual(node.layout, { nodes: 1, gpusPerNode: 8, strategy: 'zero3' });
  assert.ok(node.details.kind === 'sft' && node.details.layoutSource === 'partial');
  assert.deepEqual(node.details.layoutSet, ['gpusPerNode']);
  assert.match(formatStageExplain(node, { headroom: 0, wide: true }), /^layout: 1 node × 8 GPUs = 8 ranks, strategy zero3 \(GPUs per node set in the pipeline, the rest chosen by the planner: the fewest GPUs/m);
  // full fine-tuning of a 7B model on 1 × 8: ddp needs 16 B × 7.6 B params per GPU; ZeRO-2 fits
  const full7 = planStage(sft(QWEN2_5_7B, FULL, { resources: { gpuType: 'h100-80gb', gpusPerNode: 8 } }));
  assert.deepEqual(full7.layout, { nodes: 1, gpusPerNode: 8, strategy: 'zero2' });
  // left open, the 8B full fine-tune takes 2 H100s under ZeRO-2, or one H200 (140 GiB) with ddp
  assert.deepEqual(planStage(sft(LLAMA3_8B, FULL, { resources: { gpuType: 'h100-80gb' } })).layout, { nodes: 1, gpusPerNode: 2, strategy: 'zero2' });
  const auto = planStage(sft(LLAMA3_8B, FULL));
  assert.deepEqual([auto.gpuType, auto.layout], ['h200', { nodes: 1, gpusPerNode: 1, strategy: 'ddp' }]);
  // nodes and strategy fixed: a multi-node layout, priced per node
  const gang = planStage(sft(LLAMA3_70B, LORA70, { strategy: 'fsdp', resources: { gpuType: 'h100-80gb', nodes: 2 } }));
  assert.deepEqual(gang.layout, { nodes: 2, gpusPerNode: 8, strategy: 'fsdp' });
});

test('explicit layouts are checked, never changed: a layout that does not fit names the next one that does', () => {
  const ddp = planStage(sft(LLAMA3_70B, LORA70, { strategy: 'ddp', resources: { gpuType: 'h100-80gb', gpusPerNode: 8 } }));
  assert.deepEqual(ddp.layout, { nodes: 1, gpusPerNode: 8, strategy: 'ddp' });
  assert.deepEqual(codes(ddp), ['planner.layout-does-not-fit']);
  const issue = ddp.issues[0]!;
  assert.equal(issue.path, 'stages.sft.resources');
  assert.match(issue.message, /needs 143\.23 GiB ± 1\.21 GiB per GPU, 79\.65 GiB usable on h100-80gb/);
  assert.match(issue.fix ?? '', /^use 2× h100-80gb, zero3 \(nodes: 1, gpusPerNode: 2, strategy: 'zero3'\)/);
  assert.deepEqual(codes(planStage(sft(LLAMA3_70B, LORA70, { strategy: 'zero3', resources: { gpuType: 'h100-80gb', gpusPerNode: 8 } }))), []);
});

test('planner issues: each fires when it should and not otherwise', () => {
  const h100 = (extra: Partial<Extract<StagePlanInput, { kind: 'sft' }>>, args: SftPlanArgs = LORA70, arch = LLAMA3_70B) => planStage(sft(arch, args, extra));
  const node8 = { gpuType: 'h100-80gb', gpusPerNode: 8 };

  // ZeRO-3 / FSDP with 8-bit weights: LLaMA-Factory raises (model_utils/quantization.py)
  const q8 = h100({ strategy: 'zero3', resources: node8 }, { ...LORA70, quantization_bit: 8 });
  assert.deepEqual(codes(q8), ['planner.zero3-quantization']);
  assert.equal(q8.issues[0]!.path, 'stages.sft.args.quantization_bit');
  assert.match(q8.issues[0]!.message, /quantization\.py/);
  assert.deepEqual(codes(h100({ strategy: 'fsdp', resources: node8 }, { ...LORA70, quantization_bit: 4 })), []);
  assert.deepEqual(codes(h100({ strategy: 'zero2', resources: node8 }, { ...LORA70, quantization_bit: 8 })), []);
  // the search never picks a sharding strategy for 8-bit weights
  assert.notEqual(planStage(sft(LLAMA3_70B, { ...LORA70, quantization_bit: 8 }, { resources: node8 })).layout?.strategy, 'zero3');

  // more ranks than the epoch has rows for
  const small = (rows: number) => planStage({ ...sft(LLAMA3_8B, { bf16: true, per_device_train_batch_size: 2 }, { resources: { gpuType: 'h100-80gb', nodes: 2, gpusPerNode: 8 } }), data: { rows, meanTokensPerRow: 100 } } as StagePlanInput);
  assert.deepEqual(codes(small(20)), ['planner.ranks-without-data']);
  assert.match(small(20).issues[0]!.message, /16 ranks × micro-batch 2 = 32 sequences per step, but the epoch has 20/);
  assert.deepEqual(codes(small(32)), []);

  // more GPUs per node than the cloud's largest machine
  const sixteen = h100({ strategy: 'zero3', resources: { gpuType: 'h100-80gb', gpusPerNode: 16 } });
  assert.deepEqual(codes(sixteen), ['planner.not-offered']);
  assert.equal(sixteen.issues[0]!.path, 'stages.sft.resources.gpusPerNode');
  assert.match(sixteen.issues[0]!.message, /at most 8/);
  const anyGpu = planStage(sft(LLAMA3_8B, { bf16: true }, { resources: { gpusPerNode: 16 } }));
  assert.deepEqual(codes(anyGpu), ['planner.not-offered']);
  assert.equal(anyGpu.issues[0]!.path, 'stages.sft.resources.gpusPerNode');
  assert.match(anyGpu.issues[0]!.message, /no aws machine type has 16 GPUs of one type on one node \(at most 8\)/);

  // nodes > 1 on GPUs whose machines have no GPUDirect network: a warning
  const l40s = planStage(sft(LLAMA3_8B, { bf16: true, per_device_train_batch_size: 1 }, { resources: { gpuType: 'l40s', nodes: 2, gpusPerNode: 8 } }));
  assert.deepEqual(codes(l40s), ['planner.slow-network']);
  assert.equal(l40s.issues[0]!.severity, 'warning');
  assert.match(l40s.issues[0]!.message, /g6e\.48xlarge has 400 Gbit\/s without GPUDirect RDMA/);
  assert.deepEqual(codes(h100({ strategy: 'zero3', resources: { gpuType: 'h100-80gb', nodes: 2, gpusPerNode: 8 } })), []);

  // a sharding strategy on 1 GPU: nothing to shard
  const one = planStage(sft(LLAMA3_8B, { bf16: true, per_device_train_batch_size: 1 }, { strategy: 'zero3', resources: { gpuType: 'h100-80gb', gpus: 1 } }));
  assert.deepEqual(codes(one), ['planner.nothing-to-shard']);
  assert.equal(one.issues[0]!.severity, 'warning');
  assert.deepEqual(codes(planStage(sft(LLAMA3_8B, { bf16: true, per_device_train_batch_size: 1 }, { strategy: 'ddp', resources: { gpuType: 'h100-80gb', gpus: 1 } }))), []);

  // ZeRO-3 offload of a 70B full fine-tune: 18 B per parameter in host memory, more than a p4de has
  const offload = (gpuType: string) => planStage(sft(LLAMA3_70B, FULL, { strategy: 'zero3-offload', resources: { gpuType, nodes: 1, gpusPerNode: 8 } }));
  assert.deepEqual(codes(offload('a100-80gb')), ['planner.host-memory']);
  assert.match(offload('a100-80gb').issues[0]!.message, /1214\.75 GiB per pod in host memory .*p4de\.24xlarge has 1152 GiB/);
  assert.match(offload('a100-80gb').issues[0]!.fix ?? '', /^use 2 nodes × 8× a100-80gb, zero3 \(nodes: 2, gpusPerNode: 8, strategy: 'zero3'\)/);
  assert.deepEqual(codes(offload('h100-80gb')), []); // p5.48xlarge: 2048 GiB

  // a strategy that is not one
  const typo = planStage(sft(LLAMA3_8B, { bf16: true }, { strategy: 'zero4' as TrainingStrategy }));
  assert.deepEqual(codes(typo), ['planner.strategy']);
});

test('queueAdmitIssues: a gang larger than the queue can ever admit', () => {
  assert.deepEqual(queueAdmitIssues(on8('zero3', 2), 'h100-80gb', 16, 'stages.sft'), []);
  assert.deepEqual(queueAdmitIssues(on8('zero3', 2), 'h100-80gb', undefined, 'stages.sft'), []);
  const [issue, ...rest] = queueAdmitIssues(on8('zero3', 2), 'h100-80gb', 8, 'stages.sft');
  assert.deepEqual(rest, []);
  assert.equal(issue!.code, 'planner.queue-capacity');
  assert.equal(issue!.path, 'stages.sft.resources');
  assert.match(issue!.message, /needs 2 × 8 = 16 h100-80gb at once, but the queue's quota is 8/);
  assert.match(issue!.fix ?? '', /at least 16/);
});

test('--explain shows the layout, the strategy, and each communication term with its formula, within the plan width', () => {
  const p = planStage(sft(LLAMA3_70B, LORA70, { strategy: 'zero3', resources: { gpuType: 'h100-80gb', nodes: 2, gpusPerNode: 8 } }));
  const text = formatStageExplain(p, { headroom: 0 });
  const lines = text.split('\n');
  assert.equal(lines[0], 'sft (sft) on 2 nodes × 8× h100-80gb (set in the pipeline)');
  assert.equal(lines[2], 'layout: 2 nodes × 8 GPUs = 16 ranks, strategy zero3 (set in the pipeline)');
  assert.match(text, /LoRA: weights \+ gradients \+ optimizer states 8\.41 GiB per GPU/);
  assert.match(text, /^weights \(bf16\), 1\/16 shard\s+8\.24 GiB\s+exact\s+frozen 131\.42 GiB \+ 207,093,760 LoRA/m);
  assert.match(text, /^communication per optimizer step, over node network 3200 Gbit\/s/m);
  assert.match(text, /^parameter all-gathers\s+[\d.]+\s+[\d.]+ s\s+8 micro-batches × 3 gathers \(forward, backward,/m);
  assert.match(text, /exposed = max\(0, overlapping terms − 50% × [\d.]+ s compute\) \+ blocking terms = [\d.]+ s per step/);
  assert.match(text, /^communication\s+\d+m \d\ds$/m);
  assert.match(text, /^cost: 16 GPU × /m);
  assert.ok(lines.every((l) => [...l].length <= PLAN_WIDTH), lines.find((l) => [...l].length > PLAN_WIDTH));
  // the summary table names the gang and the strategy
  const table = formatPipelinePlan(summarizePlans([p]));
  assert.match(table, /^sft +2×8×/m);
  assert.ok(table.split('\n').every((l) => [...l].length <= PLAN_WIDTH), table);
});
