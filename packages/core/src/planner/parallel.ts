import type { ModelArchitecture } from '../model/architecture.ts';
import {
  COMMUNICATION_OVERLAP,
  CPU_ADAM_PARAMS_PER_SECOND,
  NCCL_BUS_EFFICIENCY,
  OFFLOAD_PCIE_BYTES_PER_SECOND,
  SFT_ACTIVATION_BAND,
  SHARDED_WORKING_SET_BAND,
  UNKNOWN_NODE_NETWORK_GBPS,
  ZERO3_MAX_LIVE_PARAMETERS,
  ZERO_REDUCE_BUCKET_ELEMENTS,
} from './assumptions.ts';
import { instanceFor, type Cloud, type GpuSpec } from './gpus.ts';
import { TRAINING_STRATEGIES, worldSize, type ParallelLayout, type TrainingStrategy } from './layout.ts';
import { n } from './internal.ts';
import { decoderLinears, linearWeightsPerLayer } from './shapes.ts';
import { OPTIMIZER_STATE_BYTES, activationBytes, loraParamBytes, trainableParamCount, type SftConfig } from './sft.ts';
import type { MemoryTerm, PlannerIssue } from './types.ts';
import { formatGiB } from './units.ts';

/**
 * Model states per GPU under a training layout — weights, gradients, optimizer states — and the
 * working buffers a sharded strategy adds. What LLaMA-Factory 0.9.4 and the libraries under it do:
 * - LLaMA-Factory upcasts trainable parameters to fp32 ("Upcasting trainable params to float32",
 *   model/adapter.py) unless `pure_bf16`, or under DeepSpeed ZeRO-3 without quantization (params
 *   stay 16-bit there). With DDP and FSDP the trainable parameters, their gradients and AdamW's m
 *   and v are then fp32: 4 + 4 + 8 = 16 B per trainable parameter.
 * - DeepSpeed (ZeRO-2/3) casts the module to bf16 and keeps an fp32 master copy with m and v in the
 *   optimizer: 2 (params) + 2 (grads) + 12 (master, m, v) = 16 B per trainable parameter, the ZeRO
 *   paper's 2Ψ + 2Ψ + 12Ψ. ZeRO-2 partitions gradients and optimizer states over the N ranks;
 *   ZeRO-3 the parameters too, gathering each layer's when it runs.
 * - FSDP (full shard) partitions all three like ZeRO-3, in the dtype the parameters have (fp32
 *   after the upcast), and gathers units (one decoder layer each, plus the root holding the
 *   embeddings and lm_head) in bf16 when they run.
 * - ZeRO-3 offload keeps the optimizer states, the fp32 gradient partitions and the 16-bit
 *   parameter partitions in host memory; the GPU holds only the gathered working set.
 * - QLoRA (bitsandbytes): the frozen decoder linears in 4 bits (0.5 B per weight plus a scale per
 *   64-weight block: fp32, or 8 bits with double quantization) or 8 bits (1 B plus an fp32 scale
 *   per output row); embeddings, norms and lm_head stay 16-bit.
 */
export interface ModelStates {
  /** Terms before the activations (weights, gradients, optimizer states). */
  readonly before: MemoryTerm[];
  /** Terms after the activation peak (DDP buckets, gathered-parameter buffers). */
  readonly after: MemoryTerm[];
  /** Per pod, in host memory (ZeRO-3 offload). */
  readonly host: MemoryTerm[];
  /** Weights + gradients + optimizer states on each GPU. */
  readonly modelStateBytes: number;
}

/** Bytes of the frozen (non-trainable) weights of a LoRA model, whole (not sharded). */
export function frozenWeightBytes(arch: ModelArchitecture, config: Pick<SftConfig, 'finetuningType' | 'quantizationBit' | 'doubleQuantization' | 'precision'>): { bytes: number; detail: string } {
  if (config.finetuningType === 'full') return { bytes: 0, detail: '' };
  const a = activationBytes(config.precision, arch);
  const P = arch.parameterCount;
  if (config.quantizationBit === undefined) return { bytes: P * a, detail: `${n(P)} params × ${a} B (${a === 2 ? 'bf16/fp16' : 'fp32'})` };
  const linear = arch.numHiddenLayers * linearWeightsPerLayer(arch);
  const rest = P - linear;
  if (config.quantizationBit === 4) {
    const scale = config.doubleQuantization ? 1 / 64 + 4 / (64 * 256) : 4 / 64;
    const bytes = linear * (0.5 + scale) + rest * a;
    return {
      bytes,
      detail: `${n(linear)} decoder-linear weights × (0.5 + ${scale.toFixed(4)} B scales per 64-weight block${config.doubleQuantization ? ', double-quantized' : ''}) + ${n(rest)} embedding/norm/lm_head params × ${a} B`,
    };
  }
  const rows = arch.numHiddenLayers * decoderLinears(arch).reduce((s, l) => s + l.outFeatures, 0);
  return { bytes: linear + rows * 4 + rest * a, detail: `${n(linear)} decoder-linear weights × 1 B + ${n(rows)} output rows × 4 B scales + ${n(rest)} embedding/norm/lm_head params × ${a} B` };
}

const isDeepSpeed = (s: TrainingStrategy) => s === 'zero2' || s === 'zero3' || s === 'zero3-offload';
const isAdamW = (optim: string) => optim === 'adamw_torch' || optim === 'adamw_torch_fused';

/** Parameters of one decoder layer (linears and the two norms): an FSDP unit. */
const layerParams = (arch: ModelArchitecture) => linearWeightsPerLayer(arch) + 2 * arch.hiddenSize;
/** Parameters outside the decoder layers: embeddings, final norm, lm_head (FSDP's root unit). */
const rootParams = (arch: ModelArchitecture) => arch.vocabSize * arch.hiddenSize * (arch.tieWordEmbeddings ? 1 : 2) + arch.hiddenSize;

export function modelStates(arch: ModelArchitecture, config: SftConfig, layout: ParallelLayout): ModelStates {
  const N = worldSize(layout);
  const strategy = layout.strategy;
  const T = trainableParamCount(arch, config).trainable;
  const full = config.finetuningType === 'full';
  const frozen = frozenWeightBytes(arch, config);
  const shard = N > 1 ? `, 1/${N} shard` : '';
  const per = (x: number) => x / N;
  const what = full ? '' : 'LoRA ';

  if (strategy === 'ddp' || strategy === 'fsdp') {
    const pb = loraParamBytes(config);
    const optimPerParam = (OPTIMIZER_STATE_BYTES[config.optim] ?? 8) * (pb === 2 && isAdamW(config.optim) ? 0.5 : 1);
    const dt = pb === 4 ? 'fp32' : 'bf16';
    const sharded = strategy === 'fsdp';
    const div = (x: number) => (sharded ? per(x) : x);
    const over = sharded && N > 1 ? ` / ${N} ranks` : '';
    const before: MemoryTerm[] = [
      ...(full ? [] : [{ name: `frozen weights${sharded ? shard : ''}`, bytes: div(frozen.bytes), detail: `${frozen.detail}${over}` }]),
      { name: `${what}weights (${dt})${sharded ? shard : ''}`, bytes: div(T * pb), detail: `${n(T)} trainable params × ${pb} B${pb === 4 ? ' (upcast to fp32)' : ''}${over}` },
      { name: `${what}gradients (${dt})${sharded ? shard : ''}`, bytes: div(T * pb), detail: `${n(T)} × ${pb} B, kept from the first backward on${over}` },
      { name: `optimizer states (${config.optim})${sharded ? shard : ''}`, bytes: div(T * optimPerParam), detail: `${n(T)} × ${optimPerParam} B${optimPerParam === 8 ? ' (AdamW m and v in fp32)' : ''}${over}` },
    ];
    // QLoRA keeps the frozen weights as named terms of their own when full precision is not used.
    if (!full && config.quantizationBit !== undefined) before[0] = { ...before[0]!, name: `frozen weights (${config.quantizationBit}-bit decoder linears)${sharded ? shard : ''}` };
    const modelStateBytes = before.reduce((s, t) => s + t.bytes, 0);
    const after: MemoryTerm[] = [];
    if (strategy === 'ddp') {
      if (N > 1) after.push({ name: 'DDP gradient buckets', bytes: T * pb, detail: `${n(T)} × ${pb} B` });
      if (full && pb === 4) {
        // Autocast casts each fp32 weight to bf16 once per forward and caches the copy; autograd
        // keeps it for the backward. With checkpointing only lm_head's (never recomputed) and the
        // recomputed layer's copies live at the peak.
        const copies = config.gradientCheckpointing ? arch.vocabSize * arch.hiddenSize + linearWeightsPerLayer(arch) : arch.parameterCount;
        after.push({
          name: 'autocast bf16 weight copies',
          bytes: copies * 2,
          detail: config.gradientCheckpointing ? `(lm_head ${n(arch.vocabSize * arch.hiddenSize)} + one layer's linears ${n(linearWeightsPerLayer(arch))}) × 2 B` : `${n(arch.parameterCount)} params × 2 B, kept for the backward`,
          band: SFT_ACTIVATION_BAND,
        });
      }
    } else {
      const units = 2 * layerParams(arch) + rootParams(arch);
      after.push({
        name: 'gathered FSDP units (bf16)',
        bytes: units * 2,
        detail: `(2 decoder layers × ${n(layerParams(arch))}, the running one and the prefetched one, + root unit ${n(rootParams(arch))} embeddings/lm_head) × 2 B`,
        band: SHARDED_WORKING_SET_BAND,
      });
      const unitTrainable = full ? layerParams(arch) : T / arch.numHiddenLayers;
      after.push({ name: "unsharded gradients of one unit (bf16)", bytes: unitTrainable * 2, detail: `${n(unitTrainable)} trainable params of a layer × 2 B before the reduce-scatter`, band: SHARDED_WORKING_SET_BAND });
    }
    return { before, after, host: [], modelStateBytes };
  }

  // DeepSpeed: 16-bit module, fp32 master copy and optimizer states in the ZeRO optimizer.
  const offload = strategy === 'zero3-offload';
  const zero3 = strategy !== 'zero2';
  const optimPerParam = 4 + (OPTIMIZER_STATE_BYTES[config.optim] ?? 8);
  const optimDetail = isAdamW(config.optim) ? 'fp32 master copy + AdamW m, v' : `fp32 master copy + ${config.optim} state`;
  const params16 = frozen.bytes + T * 2;
  const paramsDetail = full ? `${n(T)} params × 2 B (DeepSpeed casts the module to bf16)` : `frozen ${formatGiB(frozen.bytes)} + ${n(T)} LoRA params × 2 B`;
  const before: MemoryTerm[] = offload
    ? []
    : [
        zero3
          ? { name: `weights (bf16)${shard}`, bytes: per(params16), detail: `${paramsDetail} / ${N} ranks` }
          : { name: 'weights (bf16, replicated)', bytes: params16, detail: paramsDetail },
        { name: `${what}gradients (bf16)${shard}`, bytes: per(T * 2), detail: `${n(T)} × 2 B / ${N} ranks` },
        { name: `optimizer states (${optimDetail})${shard}`, bytes: per(T * optimPerParam), detail: `${n(T)} × ${optimPerParam} B / ${N} ranks` },
      ];
  const modelStateBytes = before.reduce((s, t) => s + t.bytes, 0);
  // reduce_bucket_size: 5e8 in the ZeRO-2 config, `auto` (hidden²) in the ZeRO-3 ones.
  const bucketSize = zero3 ? arch.hiddenSize ** 2 : ZERO_REDUCE_BUCKET_ELEMENTS;
  const bucket = Math.min(T, bucketSize);
  const after: MemoryTerm[] = [
    { name: 'ZeRO gradient reduce bucket', bytes: bucket * 2, detail: `min(${n(T)} trainable, reduce_bucket_size ${zero3 ? `auto = hidden² = ${n(bucketSize)}` : n(bucketSize)}) × 2 B`, band: SHARDED_WORKING_SET_BAND },
  ];
  if (zero3) {
    const largestModule = arch.vocabSize * arch.hiddenSize;
    const live = Math.min(arch.parameterCount + (full ? 0 : T), Math.max(ZERO3_MAX_LIVE_PARAMETERS, largestModule));
    const bytesPerParam = params16 / (arch.parameterCount + (full ? 0 : T));
    after.push({
      name: 'gathered parameters (ZeRO-3 live + prefetch)',
      bytes: live * bytesPerParam,
      detail: `max(stage3_max_live_parameters ${n(ZERO3_MAX_LIVE_PARAMETERS)}, the embedding ${n(largestModule)}) params × ${bytesPerParam.toFixed(2)} B`,
      band: SHARDED_WORKING_SET_BAND,
    });
  }
  const host: MemoryTerm[] = [];
  if (offload) {
    const g = layout.gpusPerNode;
    host.push(
      { name: 'offloaded 16-bit parameter partitions', bytes: (params16 * g) / N, detail: `${g} ranks × ${formatGiB(params16)} / ${N}` },
      { name: 'offloaded fp32 gradient partitions', bytes: (T * 4 * g) / N, detail: `${g} ranks × ${n(T)} × 4 B / ${N}` },
      { name: `offloaded optimizer states (${optimDetail})`, bytes: (T * optimPerParam * g) / N, detail: `${g} ranks × ${n(T)} × ${optimPerParam} B / ${N}` },
    );
  }
  return { before, after, host, modelStateBytes };
}

/** One collective (or copy) of a training step: bytes each GPU moves and the time it takes. */
export interface CommunicationTerm {
  readonly name: string;
  /** Bytes through each GPU's bottleneck link per optimizer step. */
  readonly bytes: number;
  readonly seconds: number;
  /** The formula with its numbers. */
  readonly detail: string;
  /** Whether it can run under compute (collectives) or blocks the step (offload copies, CPU Adam). */
  readonly overlaps: boolean;
}

export interface StepCommunication {
  readonly terms: readonly CommunicationTerm[];
  /** The link that limits the collectives, e.g. `NVLink 4 (18 links)` or `node network 3200 Gbit/s / 8 GPUs`. */
  readonly link: string;
  /** Bytes per second per GPU the collectives reach (link × NCCL_BUS_EFFICIENCY). */
  readonly bytesPerSecond: number;
  readonly overlappableSeconds: number;
  readonly blockingSeconds: number;
}

/**
 * The bandwidth each GPU's collectives get. In one node: its NVLink or PCIe link per direction.
 * Across nodes NCCL runs several rings, one per network interface; each ring leaves and enters
 * every node once, so a node's network carries each GPU's whole share once: the limit is the
 * node's network (not divided by its GPUs) when it is below the GPU's own link. Both × NCCL's
 * achieved share (NCCL_BUS_EFFICIENCY).
 */
export function collectiveLink(gpu: GpuSpec, layout: ParallelLayout, cloud: Cloud): { link: string; bytesPerSecond: number; gpuDirect: boolean | undefined } {
  const intra = gpu.interconnect.bytesPerSecond;
  const own = `${gpu.interconnect.generation}, ${intra / 1e9} GB/s per direction`;
  if (layout.nodes <= 1) return { link: own, bytesPerSecond: intra * NCCL_BUS_EFFICIENCY, gpuDirect: undefined };
  const network = instanceFor(gpu, cloud, layout.gpusPerNode)?.network;
  const gbps = network?.gbps ?? UNKNOWN_NODE_NETWORK_GBPS;
  const node = (gbps * 1e9) / 8;
  const link = node < intra ? `node network ${gbps} Gbit/s${network ? '' : ' (assumed)'} = ${node / 1e9} GB/s, crossed once by every GPU's share` : own;
  return { link, bytesPerSecond: Math.min(intra, node) * NCCL_BUS_EFFICIENCY, gpuDirect: network?.gpuDirect };
}

/**
 * Communication of one optimizer step (`microBatches` = gradient_accumulation_steps), per GPU, with
 * ring collectives over N ranks: an all-reduce moves 2(N−1)/N × bytes through each GPU's link,
 * an all-gather or reduce-scatter (N−1)/N × bytes.
 * - ddp: one all-reduce of the gradients per optimizer step (the Trainer skips it while
 *   accumulating).
 * - zero2: a reduce-scatter of the 16-bit gradients every micro-batch, an all-gather of the
 *   updated 16-bit parameters after the step.
 * - zero3 / fsdp: every micro-batch all-gathers the 16-bit parameters for the forward, again for
 *   the backward and, with gradient checkpointing, for the recompute; and reduce-scatters the
 *   gradients.
 * - zero3-offload: as zero3, plus each GPU copies its gradient partition to the host and its
 *   updated parameter partition back over PCIe, and the node's CPU runs Adam on its ranks' share.
 */
export function stepCommunication(arch: ModelArchitecture, config: SftConfig, layout: ParallelLayout, gpu: GpuSpec, cloud: Cloud): StepCommunication {
  const N = worldSize(layout);
  const { link, bytesPerSecond } = collectiveLink(gpu, layout, cloud);
  if (N <= 1) return { terms: [], link, bytesPerSecond, overlappableSeconds: 0, blockingSeconds: 0 };
  const T = trainableParamCount(arch, config).trainable;
  const ga = config.gradientAccumulation;
  const ring = (N - 1) / N;
  const frac = `${N - 1}/${N}`;
  const terms: CommunicationTerm[] = [];
  const collective = (name: string, bytes: number, detail: string, overlaps = true) => terms.push({ name, bytes, seconds: bytes / bytesPerSecond, detail, overlaps });
  const s = layout.strategy;
  if (s === 'ddp') {
    const pb = loraParamBytes(config);
    collective('gradient all-reduce', 2 * ring * T * pb, `2 × ${frac} × ${n(T)} × ${pb} B, once per optimizer step`);
  } else if (s === 'zero2') {
    collective('gradient reduce-scatter', ga * ring * T * 2, `${ga} micro-batches × ${frac} × ${n(T)} × 2 B`);
    collective('updated-parameter all-gather', ring * T * 2, `${frac} × ${n(T)} × 2 B after the step`, false);
  } else {
    const frozen = frozenWeightBytes(arch, config).bytes;
    // FSDP gathers in its mixed-precision param_dtype (bf16), ZeRO-3 its 16-bit module: 2 B either way.
    const params16 = frozen + T * 2;
    const gathers = 2 + (config.gradientCheckpointing ? 1 : 0);
    collective('parameter all-gathers', ga * gathers * ring * params16, `${ga} micro-batches × ${gathers} gathers (forward, backward${config.gradientCheckpointing ? ', recompute' : ''}) × ${frac} × ${formatGiB(params16)}`);
    collective('gradient reduce-scatter', ga * ring * T * 2, `${ga} micro-batches × ${frac} × ${n(T)} × 2 B`);
    if (s === 'zero3-offload') {
      const copy = (T * 4) / N;
      terms.push({ name: 'host↔device gradient and parameter copies', bytes: copy, seconds: copy / OFFLOAD_PCIE_BYTES_PER_SECOND, detail: `${n(T)} / ${N} × (2 B down + 2 B up) over PCIe at ${OFFLOAD_PCIE_BYTES_PER_SECOND / 1e9} GB/s`, overlaps: false });
      const fetch = (ga * gathers * params16) / N;
      terms.push({ name: 'parameter partitions fetched from host', bytes: fetch, seconds: fetch / OFFLOAD_PCIE_BYTES_PER_SECOND, detail: `${ga} × ${gathers} gathers × ${formatGiB(params16)} / ${N} over PCIe`, overlaps: true });
      const adam = (T * layout.gpusPerNode) / N;
      terms.push({ name: 'CPU Adam', bytes: 0, seconds: adam / CPU_ADAM_PARAMS_PER_SECOND, detail: `${n(adam)} params per node (its ${layout.gpusPerNode} ranks' partitions) at ${n(CPU_ADAM_PARAMS_PER_SECOND)} params/s`, overlaps: false });
    }
  }
  return {
    terms,
    link,
    bytesPerSecond,
    overlappableSeconds: terms.filter((t) => t.overlaps).reduce((a, t) => a + t.seconds, 0),
    blockingSeconds: terms.filter((t) => !t.overlaps).reduce((a, t) => a + t.seconds, 0),
  };
}

/** Communication time an optimizer step adds to its compute: what compute does not hide, and what cannot overlap at all. */
export function exposedCommunicationSeconds(comm: Pick<StepCommunication, 'overlappableSeconds' | 'blockingSeconds'>, computeSecondsPerStep: number): number {
  return Math.max(0, comm.overlappableSeconds - COMMUNICATION_OVERLAP * computeSecondsPerStep) + comm.blockingSeconds;
}

/** `2× 8 h100-80gb, zero3` (1 node: `8× h100-80gb, zero3`). */
export function describeLayout(layout: ParallelLayout, gpuType?: string): string {
  const gpus = `${layout.gpusPerNode}×${gpuType ? ` ${gpuType}` : ' GPUs'}`;
  return `${layout.nodes > 1 ? `${layout.nodes} nodes × ${gpus}` : gpus}, ${layout.strategy}`;
}

export const isTrainingStrategy = (s: unknown): s is TrainingStrategy => typeof s === 'string' && (TRAINING_STRATEGIES as readonly string[]).includes(s);

/**
 * Whether a queue can ever admit the gang: Kueue admits a workload only when its whole pod set fits
 * the ClusterQueue's nominal quota (plus what it may borrow), so a gang asking for more GPUs than
 * the queue has waits forever. `queueGpus` is the queue's GPU quota for the gang's GPU type
 * (undefined: unknown, nothing to check).
 */
export function queueAdmitIssues(layout: ParallelLayout, gpuType: string | undefined, queueGpus: number | undefined, path: string): PlannerIssue[] {
  if (queueGpus === undefined) return [];
  const world = worldSize(layout);
  if (world <= queueGpus) return [];
  return [
    {
      code: 'planner.queue-capacity',
      path: `${path}.resources`,
      value: { nodes: layout.nodes, gpusPerNode: layout.gpusPerNode },
      message: `the gang needs ${layout.nodes} × ${layout.gpusPerNode} = ${world} ${gpuType ?? 'GPUs'} at once, but the queue's quota is ${queueGpus}: Kueue admits a gang whole or not at all, so it would never start`,
      fix: `raise the queue's nominalQuota for ${gpuType ?? 'the GPU'} to at least ${world}${queueGpus >= 1 ? `, or use a layout of at most ${queueGpus} GPUs in all (nodes × gpusPerNode)` : ''}`,
    },
  ];
}
