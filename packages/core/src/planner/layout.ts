/**
 * How a training stage is spread over GPUs: the contract between the DSL, the planner (which picks
 * or checks a layout) and the compiler (which turns it into one pod, or an Indexed Job / JobSet
 * gang with a headless Service).
 */

/**
 * - `ddp`: every rank holds the whole model, gradients are all-reduced (torchrun, no DeepSpeed).
 * - `zero2`: DeepSpeed ZeRO stage 2, optimizer states and gradients partitioned over the ranks.
 * - `zero3`: DeepSpeed ZeRO stage 3, parameters partitioned too (gathered layer by layer).
 * - `zero3-offload`: ZeRO-3 with optimizer states and parameters offloaded to host memory.
 * - `fsdp`: PyTorch FSDP full sharding (the Trainer's `fsdp` arguments).
 */
export const TRAINING_STRATEGIES = ['ddp', 'zero2', 'zero3', 'zero3-offload', 'fsdp'] as const;
export type TrainingStrategy = (typeof TRAINING_STRATEGIES)[number];

/** The layout a training stage runs with. `nodes × gpusPerNode` ranks in all. */
export interface ParallelLayout {
  /** Pods of the gang, one per node (1: a single pod, no Service). */
  readonly nodes: number;
  /** GPUs per pod (`nvidia.com/gpu`), one training process each (torchrun's NPROC_PER_NODE). */
  readonly gpusPerNode: number;
  readonly strategy: TrainingStrategy;
}

export const worldSize = (layout: ParallelLayout): number => layout.nodes * layout.gpusPerNode;
