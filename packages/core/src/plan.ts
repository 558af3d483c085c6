import type { ResolvedContext } from './context.ts';
import type { ResolvedStage } from './kinds/types.ts';
import type { StageResourcePlan, PlanOptions } from './planner/plan.ts';
import type { ParallelLayout } from './planner/layout.ts';

/** Placement, size and timing of one stage: what the compiler writes into its pod spec. */
export interface StagePlan {
  /** GPUs per pod. */
  readonly gpus: number;
  /** Training stages: nodes × GPUs per node and the strategy (1 × 1 `ddp`: one pod, as any stage). */
  readonly layout?: ParallelLayout;
  readonly gpuType?: string;
  readonly cpu: string;
  readonly memory: string;
  /** Size of the memory-backed /dev/shm (NCCL and vLLM workers need more than the 64 MiB default). */
  readonly shmSize: string;
  readonly expectedSeconds: number;
  /** Job `activeDeadlineSeconds` / Deployment `progressDeadlineSeconds`. */
  readonly deadlineSeconds: number;
  readonly expectedOutputs: readonly string[];
  /** The planner's full answer: memory terms, GPU-hours, cost, warnings. */
  readonly resources: StageResourcePlan;
}

const GiB = 2 ** 30;

function cpuFor(stage: ResolvedStage, gpus: number): string {
  if (stage.resources.cpu) return stage.resources.cpu;
  if (stage.kind === 'convert' || stage.kind === 'fetch-model') return '1';
  return gpus > 0 ? String(4 * gpus) : '4';
}

function memoryFor(stage: ResolvedStage, plan: StageResourcePlan): string {
  if (stage.resources.memory) return stage.resources.memory;
  const bytes = plan.hostMemory?.totalBytes ?? 0;
  // Requests below these floors starve the Python process of page cache and tokenizer memory.
  const floor = stage.kind === 'convert' ? 0.5 : stage.kind === 'fetch-model' ? 2 : 8;
  return `${Math.max(floor, Math.ceil(bytes / GiB))}Gi`;
}

const QUANTITY_FACTORS: Readonly<Record<string, number>> = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
};

/** Bytes of a Kubernetes memory quantity (`8Gi`, `16000Mi`, `2e9`); undefined when it is not one. */
export function memoryQuantityBytes(quantity: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(quantity.trim());
  if (!m) return undefined;
  return Number(m[1]) * QUANTITY_FACTORS[m[2] ?? '']!;
}

/**
 * Only GPU pods mount a memory-backed /dev/shm (NCCL, vLLM workers, DataLoader workers): 8 GiB per
 * GPU, but at most half the container's memory limit. Pages written to a memory-backed emptyDir
 * are charged to the pod's memory cgroup, so a size limit at or above the memory limit caps
 * nothing (the OOM killer strikes first); half leaves the other half to the process itself.
 */
export function shmFor(gpus: number, memoryLimit: string): string {
  const limitBytes = memoryQuantityBytes(memoryLimit);
  const wantedMi = Math.max(2, 8 * gpus) * 1024;
  const halfMi = limitBytes === undefined ? 1024 : Math.floor(limitBytes / 2 / 1024 ** 2);
  const mi = Math.max(1, Math.min(wantedMi, halfMi));
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
}

export function planOptions(ctx: ResolvedContext): PlanOptions {
  return { cloud: ctx.cloud };
}

/**
 * The layout a training stage runs with: the planner's (which honours what the user set), else
 * the user's own `nodes` and `strategy` around the planner's GPU count.
 */
export function stageLayout(stage: ResolvedStage, resources: StageResourcePlan): ParallelLayout | undefined {
  if (stage.kind !== 'sft') return undefined;
  const planned = resources.layout;
  if (planned) return planned;
  if (resources.gpus === 0) return undefined;
  return { nodes: stage.resources.nodes ?? 1, gpusPerNode: Math.max(1, resources.gpus), strategy: stage.resources.strategy ?? 'ddp' };
}

/** Placement, size and timing of a resolved stage from the planner's answer; placement the user chose explicitly wins. */
export function stagePlan(stage: ResolvedStage, resources: StageResourcePlan): StagePlan {
  const memory = memoryFor(stage, resources);
  const layout = stageLayout(stage, resources);
  return {
    gpus: layout ? layout.gpusPerNode : resources.gpus,
    ...(layout ? { layout } : {}),
    ...(resources.gpuType ? { gpuType: resources.gpuType } : {}),
    cpu: cpuFor(stage, layout ? layout.gpusPerNode : resources.gpus),
    memory,
    shmSize: shmFor(layout ? layout.gpusPerNode : resources.gpus, memory),
    expectedSeconds: Math.ceil(resources.expectedSeconds),
    deadlineSeconds: Math.ceil(resources.deadlineSeconds),
    expectedOutputs: resources.expectedOutputs,
    resources,
  };
}
