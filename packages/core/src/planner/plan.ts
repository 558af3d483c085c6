import type { StageKind } from '../compiled.ts';
import type { ModelArchitecture } from '../model/architecture.ts';
import {
  COMMUNICATION_TIME_BAND,
  CONVERT_ROWS_PER_SECOND,
  DEFAULT_HEADROOM,
  IO_TIME_BAND,
  HUB_DOWNLOAD_BYTES_PER_SECOND,
  POD_STARTUP_SECONDS,
  SHA256_BYTES_PER_SECOND,
  TOKENIZE_ROWS_PER_SECOND,
  VOLUME_READ_BYTES_PER_SECOND,
  VOLUME_WRITE_BYTES_PER_SECOND,
  deadlineSeconds,
} from './assumptions.ts';
import { evaluateEstimate, type EvaluateData, type EvaluatedModel, type EvaluatePlanArgs } from './evaluate.ts';
import { GPUS, gpuById, instanceFor, largestInstance, offeredOn, type Cloud, type GpuId, type GpuSpec } from './gpus.ts';
import { TRAINING_STRATEGIES, worldSize, type ParallelLayout, type TrainingStrategy } from './layout.ts';
import { collectiveLink, describeLayout, exposedCommunicationSeconds, isTrainingStrategy, stepCommunication, type CommunicationTerm } from './parallel.ts';
import { LABELS } from '../labels.ts';
import { mergeEstimate, type ExportPlanArgs, type ShardPlan } from './merge.ts';
import { autoPlace, gpuOrder, isTightFit, place, type FitResult, type Placement } from './placement.ts';
import { gptqMemory, gptqOutputBytes, gptqSeconds } from './quantize.ts';
import {
  kvRefusalMessage,
  servedDtype,
  vllmMemory,
  vllmStartupSeconds,
  vllmWarnings,
  type ServedWeights,
  type ServePlanArgs,
  type VllmMemory,
} from './serve.ts';
import { loraTargets } from './shapes.ts';
import { trainingFlopsPerToken, trainingThroughput, type TrainingThroughput } from './throughput.ts';
import { OPTIMIZER_STATE_BYTES, loraParamBytes, resolveSft, sftMemory, type SftMemory, trainerSchedule, type SftPlanArgs, type TrainerSchedule, type TrainingData } from './sft.ts';
import { breakdown, type MemoryBreakdown, type PlannerIssue } from './types.ts';
import { n } from './internal.ts';
import { llamaFactoryDefault } from '../defaults.ts';
import { GB, GiB, SECONDS_PER_HOUR, formatGB, formatGiB } from './units.ts';

/** Options shared by every stage of a plan. */
export interface PlanOptions {
  /** Cloud whose GPUs and list prices are used. @default 'aws' */
  readonly cloud?: Cloud;
  /**
   * Share of GPU memory kept free beyond each estimate and its error band. The band is the
   * headroom (every memory estimate states its own); this is for spikes the planner does not
   * model. @default 0
   */
  readonly headroom?: number;
  /** Your own USD per GPU-hour by GPU id (negotiated, spot, on-prem); overrides the catalogue. */
  readonly prices?: Readonly<Partial<Record<GpuId, number>>>;
}

/** An explicit placement the user asked for (the DSL's `resources`). */
export interface ResourceOverrides {
  readonly gpuType?: string;
  /** GPUs per pod. For sft: `gpusPerNode` with one node unless `nodes` is given. */
  readonly gpus?: number;
  /** sft: pods of the training gang, one per node. Unset: the planner chooses. */
  readonly nodes?: number;
  /** sft: GPUs per pod (torchrun's NPROC_PER_NODE). Unset: the planner chooses. */
  readonly gpusPerNode?: number;
}

interface StageInputBase {
  readonly name: string;
  /** Where the stage sits in the pipeline definition, for issue paths. @default `stages.<name>` */
  readonly path?: string;
  readonly resources?: ResourceOverrides;
}

export interface QuantizePlanArgs extends ExportPlanArgs {
  readonly export_quantization_bit: number;
  /** @default 128 */
  readonly export_quantization_nsamples?: number;
  /** @default 1024 */
  readonly export_quantization_maxlen?: number;
}

/** Plain inputs for planning one stage. */
export type StagePlanInput =
  | (StageInputBase & { readonly kind: 'fetch-model'; readonly architecture: ModelArchitecture })
  | (StageInputBase & { readonly kind: 'convert'; readonly rows?: number; readonly bytes?: number })
  | (StageInputBase & {
      readonly kind: 'sft';
      readonly architecture: ModelArchitecture;
      readonly args?: SftPlanArgs;
      readonly data: TrainingData;
      /** How the ranks share the model. Unset: the planner chooses (ddp, zero2, zero3, fsdp, zero3-offload, the first that fits). */
      readonly strategy?: TrainingStrategy;
    })
  | (StageInputBase & {
      readonly kind: 'merge';
      readonly architecture: ModelArchitecture;
      /** The adapter being merged. @default { rank: 8, target: 'all' } */
      readonly adapter?: { readonly rank?: number; readonly target?: string };
      readonly args?: ExportPlanArgs;
    })
  | (StageInputBase & { readonly kind: 'quantize'; readonly architecture: ModelArchitecture; readonly args: QuantizePlanArgs })
  | (StageInputBase & {
      readonly kind: 'evaluate';
      readonly architecture: ModelArchitecture;
      readonly model: EvaluatedModel;
      readonly args?: EvaluatePlanArgs;
      readonly data: EvaluateData;
    })
  | (StageInputBase & {
      readonly kind: 'serve';
      readonly architecture: ModelArchitecture;
      readonly weights: ServedWeights;
      readonly args?: ServePlanArgs;
      /** @default 1 */
      readonly replicas?: number;
    });

export type StageDetails =
  | { readonly kind: 'fetch-model'; readonly modelBytes: number }
  | { readonly kind: 'convert'; readonly rows: number | undefined }
  | {
      readonly kind: 'sft';
      readonly trainableParams: number;
      readonly allParams: number;
      readonly trainablePercent: number;
      /** As LLaMA-Factory logs it: `trainable params: 20,971,520 || all params: 8,051,232,768 || trainable%: 0.2605`. */
      readonly paramsLogLine: string;
      readonly schedule: TrainerSchedule;
      readonly tokens: number;
      readonly tokensPerSecond: number | null;
      readonly trainSeconds: number | null;
      /** The training time's band: [fast, slow] seconds. */
      readonly trainSecondsRange: readonly [number, number] | null;
      /** Speed, FLOPs per token, efficiency and the physical limit (throughput.ts). */
      readonly throughput: TrainingThroughput | null;
      readonly flopsPerToken: number;
      /** Share of the GPU's dense peak the step reaches at this batch (per GPU). */
      readonly utilisation: number;
      /** `torch.cuda.max_memory_allocated()` and `max_memory_reserved()` predicted, per GPU. */
      readonly allocatedBytes: number;
      readonly reservedBytes: number;
      readonly peakPhase: 'loss' | 'layer';
      readonly gradientCheckpointing: boolean;
      readonly peakSequenceLength: number;
      /** Whether tokens came from cutoff_len because the mean tokens per row was unknown. */
      readonly tokensAreUpperBound: boolean;
      readonly finetuningType: 'lora' | 'full';
      /** The layout the figures are for (also `StageResourcePlan.layout`). */
      readonly layout: ParallelLayout;
      /** How the layout was decided: all of nodes, GPUs per node and strategy set, none, or some. */
      readonly layoutSource: 'auto' | 'explicit' | 'partial';
      /** What the pipeline set of the layout (the rest is the planner's choice). */
      readonly layoutSet: readonly ('nodes' | 'gpusPerNode' | 'strategy')[];
      /** Weights + gradients + optimizer states per GPU. */
      readonly modelStateBytes: number;
      /** Communication per optimizer step (null on one GPU or without a GPU). */
      readonly communication: {
        readonly link: string;
        readonly bytesPerSecond: number;
        readonly terms: readonly CommunicationTerm[];
        /** Compute of one optimizer step per GPU (gradient_accumulation_steps micro-batches). */
        readonly computeSecondsPerStep: number;
        /** What compute does not hide, per optimizer step. */
        readonly exposedSecondsPerStep: number;
      } | null;
    }
  | { readonly kind: 'merge'; readonly modelBytes: number; readonly shards: ShardPlan; readonly exportDevice: 'cpu' | 'auto' }
  | { readonly kind: 'quantize'; readonly bits: number; readonly outputBytes: number; readonly workingSetBytes: number; readonly nsamples: number; readonly maxlen: number }
  | { readonly kind: 'evaluate'; readonly rows: number }
  | {
      readonly kind: 'serve';
      readonly tensorParallel: number;
      readonly replicas: number;
      readonly dtype: string;
      readonly vllm: Omit<VllmMemory, 'gpu'> | undefined;
    };

/** What the planner says about one stage. */
export interface StageResourcePlan {
  readonly name: string;
  readonly kind: StageKind;
  /** GPU catalogue id, the value of the `tunepipe.dev/gpu` node label. */
  readonly gpuType: GpuId | undefined;
  /** GPUs per pod (`nvidia.com/gpu`). */
  readonly gpus: number;
  /** sft: nodes × GPUs per node and the strategy; gpuHours and cost count every node. */
  readonly layout?: ParallelLayout;
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly placement: 'auto' | 'explicit' | 'cpu';
  /** Per GPU. */
  readonly gpuMemory: MemoryBreakdown | undefined;
  /** GPU memory the stage needs per GPU, as placement compared it (serve: weights, activations and one sequence of KV cache). */
  readonly requiredGpuBytes: number | undefined;
  /** How far `requiredGpuBytes` may be off (its error band, bytes): kept free as headroom. */
  readonly requiredGpuBandBytes: number | undefined;
  /** GPU memory the stage may use per GPU (after headroom, or vLLM's budget). */
  readonly usableGpuBytes: number | undefined;
  readonly hostMemory: MemoryBreakdown | undefined;
  readonly disk: MemoryBreakdown | undefined;
  readonly expectedSeconds: number;
  /** The time's band, [fast, slow] seconds: every step's time with its own band. */
  readonly secondsRange: readonly [number, number];
  readonly secondsBreakdown: Readonly<Record<string, number>>;
  /** Job activeDeadlineSeconds / Pulumi and Flux timeouts: the slow end × 1.5 + 30 min. */
  readonly deadlineSeconds: number;
  /** Batch stages: GPUs × expected hours. Serve: 0 (see usdPerHour). */
  readonly gpuHours: number;
  /** Batch stages: gpuHours × price; null without a price. Serve: null. */
  readonly costUsd: number | null;
  /** The cost over the time's band, [fast, slow]; null when costUsd is. */
  readonly costUsdRange: readonly [number, number] | null;
  /** Price of the stage's GPUs per hour (serve: × replicas); null for CPU stages or without a price. */
  readonly usdPerHour: number | null;
  readonly expectedOutputs: readonly string[];
  readonly details: StageDetails;
  readonly warnings: readonly string[];
  readonly issues: readonly PlannerIssue[];
}

interface Resolved {
  readonly cloud: Cloud;
  readonly headroom: number;
  readonly prices: Readonly<Partial<Record<GpuId, number>>>;
}

const resolveOptions = (o: PlanOptions = {}): Resolved => ({ cloud: o.cloud ?? 'aws', headroom: o.headroom ?? DEFAULT_HEADROOM, prices: o.prices ?? {} });
const sum = (r: Readonly<Record<string, number>>) => Object.values(r).reduce((a, b) => a + b, 0);

/** Whether an estimate fits a GPU: its bytes within the GPU's memory (less any extra headroom); the band is checked by placement. */
function memoryFit(estimate: Pick<MemoryBreakdown, 'totalBytes' | 'bandBytes'>, gpu: GpuSpec, headroom: number, extra: Partial<FitResult> = {}): FitResult {
  const usable = gpu.memoryBytes * (1 - headroom);
  return { fits: estimate.totalBytes <= usable, requiredBytes: estimate.totalBytes, bandBytes: estimate.bandBytes, usableBytes: usable, ...extra };
}

/** Each step's time may be off by its band (a share of the rate): together they give [fast, slow]. */
function secondsRange(steps: Readonly<Record<string, number>>, bands: Readonly<Record<string, number>> = {}): [number, number] {
  let fast = 0;
  let slow = 0;
  for (const [step, seconds] of Object.entries(steps)) {
    const band = bands[step] ?? IO_TIME_BAND;
    fast += seconds / (1 + band);
    slow += seconds / (1 - band);
  }
  return [Math.floor(fast), Math.ceil(slow)];
}

/** Price per GPU-hour on the cloud (user override first); null when there is none. */
export function gpuPrice(gpu: GpuSpec, options: PlanOptions = {}): number | null {
  const o = resolveOptions(options);
  return o.prices[gpu.id] ?? gpu.prices[o.cloud]?.usdPerGpuHour ?? null;
}

function costing(
  placement: Placement,
  seconds: number,
  o: Resolved,
  warnings: string[],
  serveReplicas?: number,
  nodes = 1,
): { gpuHours: number; costUsd: number | null; usdPerHour: number | null } {
  const gpu = placement.gpu;
  if (!gpu || placement.gpus === 0) return { gpuHours: 0, costUsd: null, usdPerHour: null };
  const price = o.prices[gpu.id] ?? gpu.prices[o.cloud]?.usdPerGpuHour ?? null;
  if (price === null) warnings.push(`no ${o.cloud} list price for ${gpu.id}: cost not computed (pass prices: { '${gpu.id}': <USD per GPU-hour> })`);
  const smallest = instanceFor(gpu, o.cloud, placement.gpus);
  if (nodes === 1 && smallest && smallest.gpus > placement.gpus) {
    warnings.push(`the smallest ${o.cloud} machine with ${placement.gpus} ${gpu.id} is ${smallest.instanceType} with ${smallest.gpus} GPUs; cost counts the ${placement.gpus} used, the node costs ${smallest.gpus}× unless other work shares it`);
  }
  if (serveReplicas !== undefined) {
    return { gpuHours: 0, costUsd: null, usdPerHour: price === null ? null : price * placement.gpus * serveReplicas };
  }
  const gpuHours = (nodes * placement.gpus * seconds) / SECONDS_PER_HOUR;
  return { gpuHours, costUsd: price === null ? null : gpuHours * price, usdPerHour: price === null ? null : price * nodes * placement.gpus };
}

function cpuPlacementIssues(input: StagePlanInput, path: string): PlannerIssue[] {
  const r = input.resources;
  if (r?.gpuType === undefined && (r?.gpus === undefined || r.gpus === 0)) return [];
  return [{ code: 'planner.cpu-stage', path: `${path}.resources`, value: r, message: `a ${input.kind} stage runs on CPU and uses no GPU`, fix: input.kind === 'merge' ? "remove gpuType/gpus, or set args.export_device: 'auto' to merge on a GPU" : 'remove gpuType/gpus', severity: 'warning' }];
}

/** Plans one stage: memory, placement, time and cost. Never throws on bad input; it returns issues. */
export function planStage(input: StagePlanInput, options: PlanOptions = {}): StageResourcePlan {
  const o = resolveOptions(options);
  const path = input.path ?? `stages.${input.name}`;
  switch (input.kind) {
    case 'fetch-model':
      return planFetch(input, path, o);
    case 'convert':
      return planConvert(input, path);
    case 'sft':
      return planSft(input, path, o);
    case 'merge':
      return planMerge(input, path, o);
    case 'quantize':
      return planQuantize(input, path, o);
    case 'evaluate':
      return planEvaluate(input, path, o);
    case 'serve':
      return planServe(input, path, o);
  }
}

function cpuStage(
  input: StagePlanInput,
  path: string,
  rest: Pick<StageResourcePlan, 'hostMemory' | 'disk' | 'secondsBreakdown' | 'expectedOutputs' | 'details'> & { warnings?: string[]; issues?: PlannerIssue[] },
): StageResourcePlan {
  const expectedSeconds = Math.ceil(sum(rest.secondsBreakdown));
  const range = secondsRange(rest.secondsBreakdown);
  return {
    name: input.name,
    kind: input.kind,
    gpuType: undefined,
    gpus: 0,
    nodeSelector: {},
    placement: 'cpu',
    gpuMemory: undefined,
    requiredGpuBytes: undefined,
    requiredGpuBandBytes: undefined,
    usableGpuBytes: undefined,
    hostMemory: rest.hostMemory,
    disk: rest.disk,
    expectedSeconds,
    secondsRange: range,
    secondsBreakdown: rest.secondsBreakdown,
    deadlineSeconds: deadlineSeconds(range[1]),
    gpuHours: 0,
    costUsd: null,
    costUsdRange: null,
    usdPerHour: null,
    expectedOutputs: rest.expectedOutputs,
    details: rest.details,
    warnings: rest.warnings ?? [],
    issues: [...(rest.issues ?? []), ...cpuPlacementIssues(input, path)],
  };
}

function gpuStage(
  input: StagePlanInput,
  placement: Placement,
  o: Resolved,
  rest: Pick<StageResourcePlan, 'gpuMemory' | 'hostMemory' | 'disk' | 'secondsBreakdown' | 'expectedOutputs' | 'details'> & {
    warnings: string[];
    issues: readonly PlannerIssue[];
    serveReplicas?: number;
    /** Bands of steps whose rate is not an I/O assumption (sft's `train`). */
    secondsBands?: Readonly<Record<string, number>>;
    layout?: ParallelLayout;
  },
): StageResourcePlan {
  const expectedSeconds = Math.ceil(sum(rest.secondsBreakdown));
  const range = secondsRange(rest.secondsBreakdown, rest.secondsBands);
  const warnings = [...rest.warnings];
  const cost = costing(placement, expectedSeconds, o, warnings, rest.serveReplicas, rest.layout?.nodes ?? 1);
  const perSecond = cost.costUsd !== null && expectedSeconds > 0 ? cost.costUsd / expectedSeconds : null;
  return {
    name: input.name,
    kind: input.kind,
    gpuType: placement.gpu?.id,
    gpus: placement.gpus,
    ...(rest.layout ? { layout: rest.layout } : {}),
    nodeSelector: placement.nodeSelector,
    placement: placement.source,
    gpuMemory: rest.gpuMemory,
    requiredGpuBytes: placement.fit?.requiredBytes,
    requiredGpuBandBytes: placement.fit?.bandBytes,
    usableGpuBytes: placement.fit?.usableBytes,
    hostMemory: rest.hostMemory,
    disk: rest.disk,
    expectedSeconds,
    secondsRange: range,
    secondsBreakdown: rest.secondsBreakdown,
    deadlineSeconds: deadlineSeconds(range[1]),
    ...cost,
    costUsdRange: perSecond === null ? null : [perSecond * range[0], perSecond * range[1]],
    expectedOutputs: rest.expectedOutputs,
    details: rest.details,
    warnings,
    issues: [...rest.issues, ...placement.issues],
  };
}

function planFetch(input: Extract<StagePlanInput, { kind: 'fetch-model' }>, path: string, _o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const bytes = arch.parameterCount * (arch.torchDtype === 'float32' ? 4 : 2);
  return cpuStage(input, path, {
    hostMemory: breakdown('host', [{ name: 'download client', bytes: 1 * GiB, detail: 'streams files to the volume' }]),
    disk: breakdown('disk', [{ name: 'model files', bytes, detail: `${n(arch.parameterCount)} params × ${bytes / arch.parameterCount} B (${arch.torchDtype}) + tokenizer` }]),
    secondsBreakdown: { startup: POD_STARTUP_SECONDS, download: bytes / HUB_DOWNLOAD_BYTES_PER_SECOND, SHA256SUMS: bytes / SHA256_BYTES_PER_SECOND },
    expectedOutputs: [`model weights, ${formatGB(bytes)} (${arch.torchDtype})`],
    details: { kind: 'fetch-model', modelBytes: bytes },
  });
}

function planConvert(input: Extract<StagePlanInput, { kind: 'convert' }>, path: string): StageResourcePlan {
  const rows = input.rows;
  const bytes = input.bytes ?? 0;
  return cpuStage(input, path, {
    hostMemory: breakdown('host', [{ name: 'converter', bytes: 256 * 1024 * 1024 + bytes * 3, detail: 'Node.js plus the dataset parsed in memory (≈ 3 × its bytes)' }]),
    disk: breakdown('disk', [{ name: 'dataset files', bytes: bytes * 2, detail: 'LLaMA-Factory JSONL, roughly the source size twice over (train/validation/test + quarantine)' }]),
    secondsBreakdown: { startup: 10, convert: (rows ?? 0) / CONVERT_ROWS_PER_SECOND, read: bytes / VOLUME_READ_BYTES_PER_SECOND },
    expectedOutputs: ['dataset_info.json', 'train/validation/test JSONL'],
    details: { kind: 'convert', rows },
    warnings: rows === undefined ? ['row count unknown: conversion time assumes a small dataset'] : [],
  });
}

/**
 * A preempted or failed SFT pod resumes from its last `checkpoint-N`: a warning, naming the step
 * count, when no checkpoint would be written before the end (the pod would start over), with a fix
 * that gives one per quarter of the run. Sparser checkpoints (Hugging Face's default of every 500
 * steps on a run of, say, 1,200) are the author's trade of disk and save time against repeated
 * work, so they are not flagged; the examples use `save_steps: 0.25`.
 */
export function checkpointCadenceIssues(saveSteps: number, optimizerSteps: number, trainRows: number, path: string): PlannerIssue[] {
  if (optimizerSteps < 2) return [];
  const quarter = Math.max(1, Math.ceil(optimizerSteps / 4));
  const fix = `set save_steps to at most ${quarter} (a quarter of the ${optimizerSteps} steps), or to 0.25 (a quarter of any run)`;
  const run = `the run has ${optimizerSteps} optimizer steps (${n(trainRows)} training rows)`;
  // save_steps below 1 is a fraction of the run (Hugging Face's Trainer rounds it up to whole steps).
  const interval = saveSteps < 1 ? Math.max(1, Math.ceil(saveSteps * optimizerSteps)) : saveSteps;
  const before = Math.floor((optimizerSteps - 1) / interval);
  if (before === 0) {
    return [{ code: 'sft.no-checkpoint', path: `${path}.args.save_steps`, value: saveSteps, message: `${run}, so no checkpoint is written before the end: a preempted or failed pod starts over`, fix, severity: 'warning' }];
  }
  return [];
}

/** GPUs per pod the layout search tries on one node, in order; then LAYOUT_NODES whole nodes. */
export const LAYOUT_GPUS_PER_NODE: readonly number[] = [1, 2, 4, 8];
export const LAYOUT_NODES: readonly number[] = [2, 4, 8, 16];
/**
 * Strategies in the order the search tries them: by how much they communicate (and DeepSpeed
 * before FSDP at equal traffic, offload last as the slowest), so the first that fits is the fastest.
 */
export const STRATEGY_SEARCH_ORDER: readonly TrainingStrategy[] = ['ddp', 'zero2', 'zero3', 'fsdp', 'zero3-offload'];

/** Strategies LLaMA-Factory refuses with 8-bit (or other non-4-bit) quantization (model_utils/quantization.py). */
const SHARDS_PARAMETERS = new Set<TrainingStrategy>(['zero3', 'zero3-offload', 'fsdp']);

interface LayoutChoice {
  readonly gpu: GpuSpec;
  readonly layout: ParallelLayout;
  readonly fit: FitResult;
}

interface LayoutTier {
  readonly nodes: number;
  /** GPUs per pod, or `full`: the GPU's largest machine. */
  readonly perPod: number | 'full';
}

function planSft(input: Extract<StagePlanInput, { kind: 'sft' }>, path: string, o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const resolved = resolveSft(arch, input.args ?? {}, input.data, path);
  const config = resolved.config;
  const warnings = [...resolved.warnings];
  const issues: PlannerIssue[] = [...resolved.issues];
  const fixes: string[] = [`lower per_device_train_batch_size (now ${config.microBatch}) and raise gradient_accumulation_steps to keep the effective batch`, `or lower cutoff_len (now ${config.cutoffLen})`];
  if (!config.gradientCheckpointing) fixes.unshift('remove disable_gradient_checkpointing');

  // The layout the user fixed; the rest is the planner's to choose.
  const r = input.resources ?? {};
  const whole = (key: 'nodes' | 'gpusPerNode'): number | undefined => {
    const v = r[key];
    if (v === undefined) return undefined;
    if (Number.isInteger(v) && v >= 1) return v;
    issues.push({ code: 'planner.gpus', path: `${path}.resources.${key}`, value: v, message: `must be a whole number, at least 1`, fix: key === 'nodes' ? 'use 1, 2, 4 …' : 'use 1, 2, 4 or 8' });
    return undefined;
  };
  const nodesArg = whole('nodes');
  const perPodArg = whole('gpusPerNode');
  if (r.gpus !== undefined && perPodArg !== undefined && r.gpus !== perPodArg) {
    issues.push({ code: 'planner.gpus', path: `${path}.resources.gpus`, value: r.gpus, message: `differs from gpusPerNode ${perPodArg}; both are GPUs per pod`, fix: 'keep gpusPerNode and remove gpus' });
  }
  let strategyArg: TrainingStrategy | undefined;
  if (input.strategy !== undefined) {
    if (isTrainingStrategy(input.strategy)) strategyArg = input.strategy;
    else issues.push({ code: 'planner.strategy', path: `${path}.strategy`, value: input.strategy, message: 'is not a training strategy', fix: `use one of ${TRAINING_STRATEGIES.join(', ')}, or leave it out to let the planner choose` });
  }
  const perPodSet = perPodArg ?? (Number.isInteger(r.gpus) && (r.gpus as number) >= 1 ? r.gpus : undefined);
  const nodesSet = nodesArg ?? (r.gpus !== undefined && perPodArg === undefined ? 1 : undefined);
  const layoutFixedByUser = nodesArg !== undefined || perPodArg !== undefined || strategyArg !== undefined;
  const layoutSet = [...(nodesSet !== undefined ? (['nodes'] as const) : []), ...(perPodSet !== undefined ? (['gpusPerNode'] as const) : []), ...(strategyArg !== undefined ? (['strategy'] as const) : [])];
  const perPodKey = perPodArg !== undefined ? 'gpusPerNode' : 'gpus';

  const memoryFor = (layout: ParallelLayout) => sftMemory(arch, config, worldSize(layout), layout);
  /** ZeRO-3 offload: what a pod keeps in host memory beyond what its machine has, or undefined. */
  const hostShortfall = (layout: ParallelLayout, m: SftMemory, gpu: GpuSpec): string | undefined => {
    if (m.hostTerms.length === 0) return undefined;
    const machine = instanceFor(gpu, o.cloud, layout.gpusPerNode);
    const needed = m.hostTerms.reduce((a, t) => a + t.bytes, 0) + layout.gpusPerNode * 4 * GiB;
    if (machine?.hostMemoryGiB === undefined || needed <= machine.hostMemoryGiB * GiB) return undefined;
    return `ZeRO-3 offload keeps ${formatGiB(needed)} per pod in host memory (the states of its ${layout.gpusPerNode} ranks and their processes); ${machine.instanceType} has ${machine.hostMemoryGiB} GiB`;
  };
  const fitFor = (nodes: number, strategy: TrainingStrategy) => (gpu: GpuSpec, count: number): FitResult => {
    const layout = { nodes, gpusPerNode: count, strategy };
    const m = memoryFor(layout);
    const f = memoryFit(
      m,
      gpu,
      o.headroom,
      config.requiresBf16 && gpu.bf16DenseFlops === null ? { unsupported: `${gpu.name} has no bf16 (compute capability ${gpu.computeCapability}); training with bf16: true fails there — use fp16: true instead` } : {},
    );
    const host = f.fits ? hostShortfall(layout, m, gpu) : undefined;
    return host ? { ...f, fits: false, reason: host } : f;
  };
  const usable = (f: FitResult) => f.fits && f.unsupported === undefined;
  // bitsandbytes' 8-bit weights cannot be sharded (LLaMA-Factory raises): the search skips those.
  const searchable = (s: TrainingStrategy) => !(config.quantizationBit === 8 && SHARDS_PARAMETERS.has(s));

  /** The smallest layout that fits within what is fixed: fewest GPUs, then the cheapest GPU, then the first strategy. */
  const search = (fixed: { nodes?: number | undefined; perPod?: number | undefined; strategy?: TrainingStrategy | undefined }, explicit: GpuSpec | undefined): LayoutChoice | undefined => {
    const tiers: LayoutTier[] = [];
    if (fixed.nodes === undefined || fixed.nodes === 1) for (const c of fixed.perPod !== undefined ? [fixed.perPod] : LAYOUT_GPUS_PER_NODE) tiers.push({ nodes: 1, perPod: c });
    for (const nodes of fixed.nodes === undefined ? LAYOUT_NODES : fixed.nodes > 1 ? [fixed.nodes] : []) tiers.push({ nodes, perPod: fixed.perPod ?? 'full' });
    const strategies = (world: number) => (fixed.strategy ? [fixed.strategy] : world === 1 ? (['ddp'] as TrainingStrategy[]) : STRATEGY_SEARCH_ORDER.filter(searchable));
    const largest = (gpu: GpuSpec) => largestInstance(gpu, o.cloud)?.gpus ?? 0;
    const worldOf = (tier: LayoutTier) => tier.nodes * (tier.perPod === 'full' ? 8 : tier.perPod);
    for (const tight of explicit ? [false, true] : [false]) {
      for (const tier of tiers) {
        for (const strategy of strategies(worldOf(tier))) {
          const fit = fitFor(tier.nodes, strategy);
          if (explicit) {
            const count = tier.perPod === 'full' ? largest(explicit) : tier.perPod;
            if (count < 1 || !offeredOn(explicit, o.cloud, count)) continue;
            const f = fit(explicit, count);
            if (usable(f) && (tight || !isTightFit(f))) return { gpu: explicit, layout: { nodes: tier.nodes, gpusPerNode: count, strategy }, fit: f };
          } else if (tier.perPod !== 'full') {
            const found = autoPlace(o.cloud, [tier.perPod], fit);
            if (found) return { gpu: found.gpu, layout: { nodes: tier.nodes, gpusPerNode: found.gpus, strategy }, fit: found.fit };
          } else {
            for (const gpu of gpuOrder(o.cloud)) {
              const count = largest(gpu);
              if (count < 1 || !offeredOn(gpu, o.cloud, count)) continue;
              const f = fit(gpu, count);
              if (usable(f) && !isTightFit(f)) return { gpu, layout: { nodes: tier.nodes, gpusPerNode: count, strategy }, fit: f };
            }
          }
        }
      }
    }
    return undefined;
  };

  const explicitGpu = r.gpuType !== undefined ? gpuById(r.gpuType) : undefined;
  const chosen = search({ nodes: nodesSet, perPod: perPodSet, strategy: strategyArg }, explicitGpu);
  let layout: ParallelLayout = chosen?.layout ?? { nodes: nodesSet ?? 1, gpusPerNode: perPodSet ?? 1, strategy: strategyArg ?? 'ddp' };
  let dropFitIssues = false;
  let nextHint: string | undefined;
  if (!chosen) {
    const next = search({}, explicitGpu) ?? (explicitGpu ? search({}, undefined) : undefined);
    const nextText = next ? `${describeLayout(next.layout, next.gpu.id)} (nodes: ${next.layout.nodes}, gpusPerNode: ${next.layout.gpusPerNode}, strategy: '${next.layout.strategy}'), needing ${formatGiB(next.fit.requiredBytes)} ± ${formatGiB(next.fit.bandBytes)} of ${formatGiB(next.fit.usableBytes)} per GPU` : undefined;
    const gpu = explicitGpu ?? gpuOrder(o.cloud).filter((g) => offeredOn(g, o.cloud)).at(-1);
    const f = gpu ? fitFor(layout.nodes, layout.strategy)(gpu, layout.gpusPerNode) : undefined;
    const mostPerNode = Math.max(0, ...GPUS.filter((g) => offeredOn(g, o.cloud)).map((g) => largestInstance(g, o.cloud)?.gpus ?? 0));
    if (r.gpuType === undefined && perPodSet !== undefined && perPodSet > mostPerNode) {
      // No GPU type comes with that many per node: say so, not "nothing fits".
      dropFitIssues = true;
      issues.push({
        code: 'planner.not-offered',
        path: `${path}.resources.${perPodKey}`,
        value: perPodSet,
        message: `no ${o.cloud} machine type has ${perPodSet} GPUs of one type on one node (at most ${mostPerNode})`,
        fix: `use at most ${mostPerNode} GPUs per node, and more nodes`,
      });
    }
    // A layout whose memory fits but whose machine does not exist is placement's issue (not-offered).
    else if (layoutFixedByUser && !(f && usable(f))) {
      dropFitIssues = true;
      issues.push({
        code: f?.reason?.startsWith('ZeRO-3 offload keeps') ? 'planner.host-memory' : 'planner.layout-does-not-fit',
        path: `${path}.resources`,
        value: describeLayout(layout, gpu?.id),
        message: f
          ? f.unsupported ?? f.reason ?? `does not fit: needs ${formatGiB(f.requiredBytes)} ± ${formatGiB(f.bandBytes)} per GPU, ${formatGiB(f.usableBytes)} usable on ${gpu!.id}`
          : 'does not fit any GPU',
        fix: nextText ? `use ${nextText}; or ${fixes.join(', ')}` : fixes.join(', '),
      });
    } else if (nextText) nextHint = `; or spread it: ${nextText}`;
  }

  let placement: Placement;
  if (chosen && r.gpuType === undefined && chosen.layout.nodes > 1) {
    placement = { gpu: chosen.gpu, gpus: chosen.layout.gpusPerNode, source: 'auto', fit: chosen.fit, nodeSelector: { [LABELS.gpuType]: chosen.gpu.id }, issues: [] };
  } else {
    placement = place({
      path,
      cloud: o.cloud,
      gpuType: r.gpuType,
      gpus: perPodArg ?? r.gpus ?? (chosen && chosen.layout.gpusPerNode !== 1 ? chosen.layout.gpusPerNode : undefined),
      counts: [layout.gpusPerNode],
      fixHint: fixes.join(', '),
      fit: fitFor(layout.nodes, layout.strategy),
    });
    placement = {
      ...placement,
      issues: placement.issues
        .filter((i) => !(dropFitIssues && (i.code === 'planner.does-not-fit' || i.code === 'planner.no-gpu-fits')))
        .map((i) => {
          let out = i;
          if (nextHint && (i.code === 'planner.does-not-fit' || i.code === 'planner.no-gpu-fits')) out = { ...out, fix: `${out.fix ?? ''}${nextHint}` };
          if (perPodKey === 'gpusPerNode' && out.path === `${path}.resources.gpus`) out = { ...out, path: `${path}.resources.gpusPerNode` };
          return out;
        }),
    };
  }
  const gpus = Math.max(1, placement.gpus);
  layout = { ...layout, gpusPerNode: gpus };
  const world = worldSize(layout);
  const memory = memoryFor(layout);
  const gpu = placement.gpu;

  // Layout rules that are not about memory.
  if (strategyArg !== undefined && config.quantizationBit !== undefined && config.quantizationBit !== 4 && SHARDS_PARAMETERS.has(strategyArg)) {
    issues.push({
      code: 'planner.zero3-quantization',
      path: `${path}.args.quantization_bit`,
      value: config.quantizationBit,
      message: `${strategyArg} shards the parameters, which works with 4-bit bitsandbytes weights only: LLaMA-Factory raises 'Only 4-bit quantized model can use fsdp+qlora or auto device map' (model/model_utils/quantization.py)`,
      fix: `use quantization_bit: 4, or strategy 'ddp' or 'zero2'`,
    });
  }
  if (strategyArg !== undefined && strategyArg !== 'ddp' && strategyArg !== 'zero3-offload' && world === 1) {
    issues.push({ code: 'planner.nothing-to-shard', path: `${path}.strategy`, value: strategyArg, severity: 'warning', message: `${strategyArg} on 1 GPU has nothing to shard: the states stay whole and DeepSpeed/FSDP only add overhead`, fix: "remove strategy (or use 'ddp'), or use more GPUs" });
  }
  if (gpu && layout.nodes > 1) {
    const link = collectiveLink(gpu, layout, o.cloud);
    if (link.gpuDirect !== true) {
      const machine = instanceFor(gpu, o.cloud, layout.gpusPerNode);
      issues.push({
        code: 'planner.slow-network',
        path: `${path}.resources.nodes`,
        value: layout.nodes,
        severity: 'warning',
        message: `${machine ? machine.instanceType : `${o.cloud} ${gpu.id} machines`} ${machine?.network ? `has ${machine.network.gbps} Gbit/s without GPUDirect RDMA` : 'publish no fast network'}: gradients and parameters cross nodes through host memory at ${link.link}, so training across nodes is slow`,
        fix: `use one node (nodes: 1) with more GPUs, or a GPU whose machines have EFA/GPUDirect (h100-80gb, h200, a100 on AWS p4d/p5)`,
      });
    }
  }
  const meanKnown = input.data.meanTokensPerRow !== undefined && input.data.meanTokensPerRow > 0;
  const meanTokens = Math.min(config.cutoffLen, meanKnown ? (input.data.meanTokensPerRow as number) : config.cutoffLen);
  if (!meanKnown) warnings.push(`mean tokens per row unknown: training time assumes every row is cutoff_len (${config.cutoffLen}) tokens, an upper bound`);
  const rows = Math.max(1, Math.floor(input.data.rows) || 1);
  const schedule = trainerSchedule(rows, config, world, meanTokens);
  if (world > 1 && world * config.microBatch > schedule.sequencesPerEpoch) {
    issues.push({
      code: 'planner.ranks-without-data',
      path: `${path}.resources`,
      value: describeLayout(layout, gpu?.id),
      message: `${world} ranks × micro-batch ${config.microBatch} = ${world * config.microBatch} sequences per step, but the epoch has ${n(schedule.sequencesPerEpoch)}: some ranks would get no rows of their own (the sampler repeats rows to fill them)`,
      fix: `use at most ${Math.max(1, Math.floor(schedule.sequencesPerEpoch / config.microBatch))} GPUs in all, or more training rows`,
    });
  }
  const tokensPerSequence = config.packing ? config.cutoffLen : meanTokens;
  const attentionLength = config.packing && !config.neatPacking ? config.cutoffLen : meanTokens;
  const tokens = schedule.sequencesRun * tokensPerSequence;
  const throughput = gpu ? trainingThroughput(arch, config, { sequenceLength: attentionLength, tokensPerMicroBatch: config.microBatch * tokensPerSequence }, gpu, world) : null;
  const tps = throughput?.tokensPerSecond ?? null;
  const trainSeconds = tps ? tokens / tps : null;
  if (schedule.epochsRun + 1e-9 < config.epochs && config.maxSteps === undefined) {
    warnings.push(`the Trainer plans ${schedule.optimizerSteps} steps but runs ${Math.ceil(schedule.microBatchesPerEpoch / config.gradientAccumulation)} updates per epoch, so it stops at epoch ${schedule.epochsRun.toFixed(2)} of ${config.epochs}`);
  }
  let communication: Extract<StageDetails, { kind: 'sft' }>['communication'] = null;
  if (gpu && throughput && world > 1) {
    const comm = stepCommunication(arch, config, layout, gpu, o.cloud);
    const computeSecondsPerStep = config.gradientAccumulation * (throughput.computeSeconds + throughput.overheadSeconds);
    communication = { link: comm.link, bytesPerSecond: comm.bytesPerSecond, terms: comm.terms, computeSecondsPerStep, exposedSecondsPerStep: exposedCommunicationSeconds(comm, computeSecondsPerStep) };
  }

  const full = config.finetuningType === 'full';
  const deepSpeed = layout.strategy !== 'ddp' && layout.strategy !== 'fsdp';
  const lora = resolved.lora;
  const optimBytes = OPTIMIZER_STATE_BYTES[config.optim] ?? 8;
  // A full fine-tune saves the model in the dtype it trains in (fp32 after the upcast, 16-bit
  // under DeepSpeed) and its optimizer state (DeepSpeed: fp32 master, m and v).
  const savedParamBytes = full ? (deepSpeed ? 2 : loraParamBytes(config)) : 4;
  const checkpointBytes = full ? lora.trainable * (savedParamBytes + (deepSpeed ? 12 : optimBytes)) + 1e6 : lora.trainable * (4 + optimBytes) + 1e6;
  const outputBytes = lora.trainable * savedParamBytes;
  const saves = Math.floor(schedule.optimizerSteps / (config.saveSteps < 1 ? Math.max(1, Math.round(config.saveSteps * schedule.optimizerSteps)) : config.saveSteps));
  const keptCheckpoints = config.saveTotalLimit !== undefined ? Math.min(saves, config.saveTotalLimit) : saves;
  const modelBytes = arch.parameterCount * 2;
  const secondsBreakdown: Record<string, number> = {
    startup: POD_STARTUP_SECONDS,
    'read base': modelBytes / VOLUME_READ_BYTES_PER_SECOND,
    tokenize: rows / TOKENIZE_ROWS_PER_SECOND,
    train: trainSeconds ?? 0,
    checkpoints: ((saves + 1) * checkpointBytes) / VOLUME_WRITE_BYTES_PER_SECOND,
  };
  const communicationSeconds = communication ? communication.exposedSecondsPerStep * schedule.optimizerSteps : 0;
  if (communicationSeconds > 0) secondsBreakdown.communication = communicationSeconds;
  const secondsBands: Record<string, number> = {
    ...(throughput ? { train: throughput.band } : {}),
    ...(communicationSeconds > 0 ? { communication: COMMUNICATION_TIME_BAND } : {}),
  };
  const pct = lora.trainablePercent.toFixed(4);
  return gpuStage(input, placement, o, {
    gpuMemory: memory,
    hostMemory: breakdown('host', [
      // torchrun starts one training process per GPU, each loading shards and the dataset itself.
      { name: 'training processes', bytes: placement.gpus * 4 * GiB, detail: `${placement.gpus} × 4 GiB: Python, torch, dataloader workers (assumed)` },
      { name: 'checkpoint shards while loading', bytes: placement.gpus * Math.min(modelBytes, 5 * GB), detail: `${placement.gpus} × one safetensors shard at a time` },
      { name: 'tokenised dataset', bytes: placement.gpus * rows * config.cutoffLen * 3 * 8, detail: `${placement.gpus} × ${n(rows)} rows × ≤ ${n(config.cutoffLen)} tokens × 3 int64 columns` },
      ...memory.hostTerms,
    ]),
    disk: breakdown('disk', [
      { name: `${keptCheckpoints} checkpoint-N folders`, bytes: keptCheckpoints * checkpointBytes, detail: `${full ? `model (${savedParamBytes === 4 ? 'fp32' : 'bf16'})` : 'adapter (fp32)'} + optimizer state, ${formatGB(checkpointBytes)} each, every ${config.saveSteps < 1 ? `${Math.round(config.saveSteps * 100)} % of the steps` : `${config.saveSteps} steps`}` },
      { name: full ? 'final model' : 'final adapter', bytes: outputBytes, detail: `${n(lora.trainable)} × ${savedParamBytes} B` },
    ]),
    secondsBreakdown,
    ...(Object.keys(secondsBands).length > 0 ? { secondsBands } : {}),
    expectedOutputs: [full ? `model.safetensors shards (${formatGB(outputBytes)})` : `adapter_model.safetensors (${formatGB(outputBytes)})`, `${schedule.optimizerSteps} optimizer steps`, ...(keptCheckpoints > 0 ? [`${keptCheckpoints} checkpoint-N/`] : [])],
    details: {
      kind: 'sft',
      trainableParams: lora.trainable,
      allParams: lora.all,
      trainablePercent: lora.trainablePercent,
      paramsLogLine: `trainable params: ${n(lora.trainable)} || all params: ${n(lora.all)} || trainable%: ${pct}`,
      schedule,
      tokens,
      tokensPerSecond: tps,
      trainSeconds,
      trainSecondsRange: throughput ? [tokens / throughput.high, tokens / throughput.low] : null,
      throughput,
      flopsPerToken: trainingFlopsPerToken(arch, config, attentionLength).total,
      utilisation: throughput?.efficiency ?? 0,
      allocatedBytes: memory.allocatedBytes,
      reservedBytes: memory.reservedBytes,
      peakPhase: memory.peakPhase,
      gradientCheckpointing: config.gradientCheckpointing,
      peakSequenceLength: config.peakSequenceLength,
      tokensAreUpperBound: !meanKnown,
      finetuningType: config.finetuningType,
      layout,
      layoutSource: layoutSet.length === 3 ? 'explicit' : layoutSet.length === 0 ? 'auto' : 'partial',
      layoutSet,
      modelStateBytes: memory.modelStateBytes,
      communication,
    },
    warnings,
    issues,
    layout,
  });
}

function planMerge(input: Extract<StagePlanInput, { kind: 'merge' }>, path: string, o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const targets = loraTargets(arch, input.adapter?.target ?? llamaFactoryDefault<string>('lora_target'), `${path}.adapter`).modules;
  const estimate = mergeEstimate(arch, { rank: input.adapter?.rank ?? llamaFactoryDefault<number>('lora_rank'), targets }, input.args ?? {}, path);
  const outputs = [`${estimate.shards.count} shard${estimate.shards.count === 1 ? '' : 's'} (${estimate.shards.fileNames[0]}${estimate.shards.count > 1 ? ` … ${estimate.shards.fileNames.at(-1)}` : ''}), ${formatGB(estimate.modelBytes)}`];
  const details: StageDetails = { kind: 'merge', modelBytes: estimate.modelBytes, shards: estimate.shards, exportDevice: estimate.onGpu ? 'auto' : 'cpu' };
  const warnings = estimate.shards.exact || estimate.shards.upperBound === estimate.shards.lowerBound ? [] : [estimate.shards.note];
  if (!estimate.onGpu || !estimate.gpu) {
    return cpuStage(input, path, { hostMemory: estimate.host, disk: estimate.disk, secondsBreakdown: estimate.secondsBreakdown, expectedOutputs: outputs, details, warnings, issues: [...estimate.issues] });
  }
  const gpuEstimate = estimate.gpu;
  const placement = place({ path, cloud: o.cloud, gpuType: input.resources?.gpuType, gpus: input.resources?.gpus, counts: [1], fixHint: "set export_device: 'cpu' (merging needs no GPU)", fit: (gpu, count) => memoryFit({ totalBytes: gpuEstimate.totalBytes / count, bandBytes: gpuEstimate.bandBytes / count }, gpu, o.headroom) });
  return gpuStage(input, placement, o, { gpuMemory: estimate.gpu, hostMemory: estimate.host, disk: estimate.disk, secondsBreakdown: estimate.secondsBreakdown, expectedOutputs: outputs, details, warnings, issues: estimate.issues });
}

function planQuantize(input: Extract<StagePlanInput, { kind: 'quantize' }>, path: string, o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const args = input.args;
  const issues: PlannerIssue[] = [];
  let bits = args.export_quantization_bit;
  if (![2, 3, 4, 8].includes(bits)) {
    issues.push({ code: 'planner.gptq-bits', path: `${path}.args.export_quantization_bit`, value: bits, message: 'GPTQ supports 2, 3, 4 or 8 bits', fix: 'use 4' });
    bits = 4;
  }
  const nsamples = args.export_quantization_nsamples ?? llamaFactoryDefault<number>('export_quantization_nsamples');
  const maxlen = args.export_quantization_maxlen ?? llamaFactoryDefault<number>('export_quantization_maxlen');
  const memoryFor = (count: number) => gptqMemory(arch, nsamples, maxlen, count);
  const placement = place({
    path,
    cloud: o.cloud,
    gpuType: input.resources?.gpuType,
    gpus: input.resources?.gpus,
    counts: [1],
    fixHint: `lower export_quantization_nsamples (${nsamples}) or export_quantization_maxlen (${maxlen}), or use more GPUs (device_map=auto spreads the weights)`,
    fit: (gpu, count) => {
      const m = memoryFor(count);
      const fit = memoryFit(m, gpu, o.headroom);
      return fit.fits ? fit : { ...fit, reason: `needs ${formatGiB(m.totalBytes)} per GPU (${formatGiB(m.workingSetBytes)} layer-by-layer working set next to the fp16 weights device_map=auto loads first), ${formatGiB(fit.usableBytes)} usable` };
    },
  });
  const gpus = Math.max(1, placement.gpus);
  const memory = memoryFor(gpus);
  const out = gptqOutputBytes(arch, bits);
  const secondsBreakdown = placement.gpu ? gptqSeconds(arch, bits, nsamples, maxlen, placement.gpu) : {};
  return gpuStage(input, placement, o, {
    gpuMemory: memory,
    hostMemory: breakdown('host', [
      { name: 'fp16 weights while packing', bytes: arch.parameterCount * 2, detail: 'quantized layers are packed on the CPU' },
      { name: 'export process', bytes: 2 * GiB, detail: 'Python, torch, optimum, gptqmodel' },
    ]),
    disk: breakdown('disk', out.terms),
    secondsBreakdown,
    expectedOutputs: [`GPTQ ${bits}-bit model (group size 128), ${formatGB(out.bytes)}`],
    details: { kind: 'quantize', bits, outputBytes: out.bytes, workingSetBytes: memory.workingSetBytes, nsamples, maxlen },
    warnings: [],
    issues,
  });
}

function planEvaluate(input: Extract<StagePlanInput, { kind: 'evaluate' }>, path: string, o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const args = input.args ?? {};
  const estimateOn = (gpu: GpuSpec) => evaluateEstimate(arch, input.model, args, input.data, gpu);
  const placement = place({
    path,
    cloud: o.cloud,
    gpuType: input.resources?.gpuType,
    gpus: input.resources?.gpus,
    counts: [1],
    fixHint: 'lower per_device_eval_batch_size or max_new_tokens',
    fit: (gpu) => memoryFit(estimateOn(gpu).gpu, gpu, o.headroom),
  });
  const estimate = placement.gpu ? estimateOn(placement.gpu) : undefined;
  const warnings = ['evaluate time is an upper bound: every row is assumed to generate max_new_tokens'];
  if (input.data.meanPromptTokens === undefined) warnings.push('mean prompt tokens unknown: prefill assumes cutoff_len per row');
  return gpuStage(input, placement, o, {
    gpuMemory: estimate?.gpu,
    hostMemory: breakdown('host', [{ name: 'predict process', bytes: 4 * GiB, detail: 'Python, torch, tokenizer (assumed)' }]),
    disk: breakdown('disk', [{ name: 'predictions', bytes: (estimate?.rows ?? input.data.rows) * 8 * 1024, detail: '≈ 8 KB per row of generated_predictions.jsonl' }]),
    secondsBreakdown: estimate?.seconds ?? {},
    expectedOutputs: ['generated_predictions.jsonl', 'predict_results.json'],
    details: { kind: 'evaluate', rows: estimate?.rows ?? input.data.rows },
    warnings,
    issues: [],
  });
}

function planServe(input: Extract<StagePlanInput, { kind: 'serve' }>, path: string, o: Resolved): StageResourcePlan {
  const arch = input.architecture;
  const args = input.args ?? {};
  const issues: PlannerIssue[] = [];
  const replicas = input.replicas ?? 1;
  const tpArg = args.tensor_parallel_size;
  const explicitGpus = input.resources?.gpus;
  if (tpArg !== undefined && explicitGpus !== undefined && tpArg !== explicitGpus) {
    issues.push({ code: 'planner.tensor-parallel', path: `${path}.resources.gpus`, value: explicitGpus, message: `differs from tensor_parallel_size ${tpArg}: vLLM uses exactly tensor_parallel_size GPUs per pod`, fix: `set gpus: ${tpArg}` });
  }
  const positiveInt = (key: 'max_model_len' | 'max_num_seqs' | 'max_num_batched_tokens', at: string) => {
    const v = args[key];
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) issues.push({ code: 'planner.serve-arg', path: at, value: v, message: 'must be a positive whole number', fix: `remove it to use vLLM's default` });
  };
  positiveInt('max_model_len', `${path}.maxModelLen`);
  positiveInt('max_num_seqs', `${path}.maxNumSeqs`);
  positiveInt('max_num_batched_tokens', `${path}.args.max_num_batched_tokens`);
  const util = args.gpu_memory_utilization;
  if (util !== undefined && !(util > 0 && util <= 1)) {
    issues.push({ code: 'planner.serve-arg', path: `${path}.gpuMemoryUtilization`, value: util, message: 'is a fraction of GPU memory in (0, 1]', fix: 'use 0.9 (the default) or lower' });
  }
  if (issues.length > 0) {
    return gpuStage(input, { gpu: undefined, gpus: 0, source: 'auto', fit: undefined, nodeSelector: {}, issues: [] }, o, {
      gpuMemory: undefined,
      hostMemory: undefined,
      disk: undefined,
      secondsBreakdown: {},
      expectedOutputs: ['OpenAI-compatible API on /v1'],
      details: { kind: 'serve', tensorParallel: 0, replicas, dtype: args.dtype ?? 'auto', vllm: undefined },
      warnings: [],
      issues,
      serveReplicas: replicas,
    });
  }
  const divides = (tp: number) => Number.isInteger(tp) && tp > 0 && arch.numAttentionHeads % tp === 0;
  const requested = tpArg ?? explicitGpus;
  if (requested !== undefined && !divides(requested)) {
    issues.push({ code: 'planner.tensor-parallel', path: `${path}.args.tensor_parallel_size`, value: requested, message: `must divide the ${arch.numAttentionHeads} attention heads`, fix: `use one of ${[1, 2, 4, 8].filter(divides).join(', ')}` });
  }
  const memoryOn = (gpu: GpuSpec, tp: number) => {
    const d = servedDtype(arch, input.weights, args.dtype, gpu);
    return 'error' in d ? { error: d.error } : { dtype: d.dtype, m: vllmMemory(arch, input.weights, args, gpu, tp, d.dtype) };
  };
  const placement = place({
    path,
    cloud: o.cloud,
    gpuType: input.resources?.gpuType,
    gpus: requested,
    counts: [1, 2, 4, 8].filter(divides),
    fixHint: 'lower maxModelLen, raise gpuMemoryUtilization, or use tensor_parallel_size > 1',
    autoEligible: (gpu) => gpu.computeCapability >= 8,
    fit: (gpu, tp) => {
      const r = memoryOn(gpu, tp);
      if ('error' in r) return { fits: false, requiredBytes: 0, bandBytes: 0, usableBytes: 0, unsupported: r.error ?? 'unsupported' };
      const m = r.m;
      // The band covers what the estimate can get wrong (activations, memory outside PyTorch); the
      // KV cache is vLLM's own measure of what is left.
      const requiredBytes = m.nonKvBytes + m.oneSequenceBytes;
      const bandBytes = m.gpu.bandBytes + m.nonKvBytes * o.headroom;
      const fits = m.startsUp && requiredBytes <= m.budgetBytes;
      return fits ? { fits, requiredBytes, bandBytes, usableBytes: m.budgetBytes } : { fits, requiredBytes, bandBytes, usableBytes: m.budgetBytes, reason: m.startsUp ? `weights and activations leave too little of the ${formatGiB(m.budgetBytes)} budget (${formatGiB(m.kvCacheBytes)} KV cache)` : kvRefusalMessage(m, gpu, tp) };
    },
  });
  const tp = Math.max(1, placement.gpus);
  const warnings: string[] = [];
  const r = placement.gpu ? memoryOn(placement.gpu, tp) : undefined;
  const vllm = r && 'm' in r ? r.m : undefined;
  const dtype = r && 'dtype' in r && r.dtype ? r.dtype : 'float16';
  if (placement.gpu && placement.gpu.computeCapability < 8) {
    warnings.push(`vLLM's V1 engine has no FlashAttention on ${placement.gpu.name} (compute capability ${placement.gpu.computeCapability}) and falls back to slower Triton kernels; automatic placement never picks it`);
  }
  if (vllm && placement.gpu) {
    if (!vllm.startsUp) warnings.push(kvRefusalMessage(vllm, placement.gpu, tp));
    warnings.push(...vllmWarnings(vllm, placement.gpu));
  }
  const dtypeBytes = dtype === 'float32' ? 4 : 2;
  const vllmDetails = vllm ? (({ gpu: _gpu, ...rest }) => rest)(vllm) : undefined;
  return gpuStage(input, placement, o, {
    gpuMemory: vllm?.gpu,
    hostMemory: breakdown('host', [{ name: 'vLLM process', bytes: 8 * GiB, detail: 'API server, tokenizer, swap-space check (4 GiB per GPU by default)' }]),
    disk: undefined,
    secondsBreakdown: vllmStartupSeconds(arch, input.weights, dtypeBytes),
    expectedOutputs: ['OpenAI-compatible API on /v1'],
    details: { kind: 'serve', tensorParallel: tp, replicas, dtype, vllm: vllmDetails },
    warnings,
    issues,
    serveReplicas: replicas,
  });
}

/** The plan of a whole pipeline: stages in order and the totals. */
export interface PipelineResourcePlan {
  readonly stages: readonly StageResourcePlan[];
  readonly totals: {
    /** Sum over batch stages (they run one after another in topological order). */
    readonly expectedSeconds: number;
    readonly gpuHours: number;
    /** Sum over batch stages with a price; `costComplete` says whether every GPU stage had one. */
    readonly costUsd: number;
    readonly costComplete: boolean;
    /** What the serving stages cost per hour while up. */
    readonly servingUsdPerHour: number;
  };
  readonly issues: readonly PlannerIssue[];
  readonly cloud: Cloud;
  readonly headroom: number;
}

/** Plans every stage and adds up time, GPU-hours and cost. */
export function planPipeline(stages: readonly StagePlanInput[], options: PlanOptions = {}): PipelineResourcePlan {
  return summarizePlans(stages.map((s) => planStage(s, options)), options);
}

/** Adds up stage plans already made (e.g. the estimates `compile()` attaches to each stage). */
export function summarizePlans(plans: readonly StageResourcePlan[], options: PlanOptions = {}): PipelineResourcePlan {
  const o = resolveOptions(options);
  const batch = plans.filter((p) => p.kind !== 'serve');
  return {
    stages: plans,
    totals: {
      expectedSeconds: batch.reduce((s, p) => s + p.expectedSeconds, 0),
      gpuHours: batch.reduce((s, p) => s + p.gpuHours, 0),
      costUsd: batch.reduce((s, p) => s + (p.costUsd ?? 0), 0),
      costComplete: batch.every((p) => p.gpus === 0 || p.costUsd !== null),
      servingUsdPerHour: plans.filter((p) => p.kind === 'serve').reduce((s, p) => s + (p.usdPerHour ?? 0), 0),
    },
    issues: plans.flatMap((p) => p.issues),
    cloud: o.cloud,
    headroom: o.headroom,
  };
}
