import type { EnvVar } from 'kubernetes-types/core/v1.js';
import { worldSize, type ParallelLayout, type TrainingStrategy } from '../planner/layout.ts';

/**
 * What a training stage spread over several GPUs needs besides its YAML: torchrun's environment
 * (LLaMA-Factory's launcher reads it), NCCL's, and the DeepSpeed / FSDP settings of each strategy.
 * The compiler turns these into one pod (one node) or a gang (an Indexed Job or a JobSet).
 */

/**
 * torchrun's rendezvous port on the master. Pinned: LLaMA-Factory otherwise picks a free port on
 * each node, and the ranks of a gang would never meet. 29500 is torch.distributed's own default.
 */
export const MASTER_PORT = 29500;

/** Where the stage's pods see the DeepSpeed config (a key of the stage's ConfigMap). */
export const DEEPSPEED_CONFIG_FILE = 'deepspeed.json';

/** The environment variables the compiled pods set, by their names (LLaMA-Factory's launcher and NCCL read them). */
export const TORCHRUN_ENV = {
  force: 'FORCE_TORCHRUN',
  nodes: 'NNODES',
  nodeRank: 'NODE_RANK',
  procsPerNode: 'NPROC_PER_NODE',
  masterAddr: 'MASTER_ADDR',
  masterPort: 'MASTER_PORT',
} as const;

/** The Job controller's annotation on each pod of an Indexed Job: its index, 0…completions-1. */
export const COMPLETION_INDEX_ANNOTATION = 'batch.kubernetes.io/job-completion-index';

/**
 * torch.distributed's collective timeout (`ddp_timeout`, seconds) written into a distributed
 * stage's YAML unless the pipeline sets it. The longest stretch one rank spends outside a
 * collective is loading or saving a gathered 70B model on the shared volume (140 GB at ~300 MB/s,
 * about 8 minutes); an hour covers a slow volume, and a hung rank still fails the gang within it.
 */
export const DISTRIBUTED_DDP_TIMEOUT_SECONDS = 3600;

/**
 * How long torchrun's static rendezvous waits for every node (`PET_RDZV_CONF`, torchrun's
 * environment form of `--rdzv-conf`; its default is 600 s). Node 0 opens the rendezvous only after
 * its wrapper has verified the checkpoint to resume from, which for a full fine-tune of a large
 * model is a read of its optimizer state (about an hour for a terabyte at ~300 MB/s); the other
 * nodes must still be waiting then.
 */
export const RENDEZVOUS_TIMEOUT_SECONDS = 3600;

/** Whether the stage runs under torchrun: more than one rank, or a strategy that needs the launcher (DeepSpeed, FSDP). */
export function usesTorchrun(layout: ParallelLayout | undefined): layout is ParallelLayout {
  return layout !== undefined && (worldSize(layout) > 1 || layout.strategy !== 'ddp');
}

/** Whether the stage runs as a gang of pods (several nodes). */
export function isGang(layout: ParallelLayout | undefined): layout is ParallelLayout {
  return layout !== undefined && layout.nodes > 1;
}

export const usesDeepSpeed = (strategy: TrainingStrategy): boolean => strategy === 'zero2' || strategy === 'zero3' || strategy === 'zero3-offload';

/**
 * The environment of every rank: torchrun's (one pod: the loopback master) and NCCL's. `nodeRank`
 * is the gang's completion-index reference; `masterAddr` the index-0 pod's stable DNS name.
 */
export function torchrunEnv(layout: ParallelLayout, gang?: { readonly masterAddr: string }): EnvVar[] {
  return [
    { name: TORCHRUN_ENV.force, value: '1' },
    { name: TORCHRUN_ENV.nodes, value: String(layout.nodes) },
    gang
      ? { name: TORCHRUN_ENV.nodeRank, valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${COMPLETION_INDEX_ANNOTATION}']` } } }
      : { name: TORCHRUN_ENV.nodeRank, value: '0' },
    { name: TORCHRUN_ENV.procsPerNode, value: String(layout.gpusPerNode) },
    { name: TORCHRUN_ENV.masterAddr, value: gang ? gang.masterAddr : '127.0.0.1' },
    { name: TORCHRUN_ENV.masterPort, value: String(MASTER_PORT) },
    ...(gang ? [{ name: 'PET_RDZV_CONF', value: `timeout=${RENDEZVOUS_TIMEOUT_SECONDS}` }] : []),
    // The pod network's interface: NCCL would otherwise probe every interface, loopback included.
    { name: 'NCCL_SOCKET_IFNAME', value: 'eth0' },
    { name: 'NCCL_DEBUG', value: 'WARN' },
    // A failed or timed-out collective aborts the process instead of hanging the gang.
    { name: 'TORCH_NCCL_ASYNC_ERROR_HANDLING', value: '1' },
  ];
}

/**
 * A DeepSpeed config for a ZeRO strategy, with the keys LLaMA-Factory's own examples use:
 * batch sizes, accumulation, clipping and precision are `auto` (the Trainer fills them in from the
 * YAML, so the two cannot disagree).
 */
export function deepSpeedConfig(strategy: TrainingStrategy): Record<string, unknown> | undefined {
  if (!usesDeepSpeed(strategy)) return undefined;
  const common = {
    train_batch_size: 'auto',
    train_micro_batch_size_per_gpu: 'auto',
    gradient_accumulation_steps: 'auto',
    gradient_clipping: 'auto',
    zero_allow_untested_optimizer: true,
    fp16: { enabled: 'auto', loss_scale: 0, loss_scale_window: 1000, initial_scale_power: 16, hysteresis: 2, min_loss_scale: 1 },
    bf16: { enabled: 'auto' },
  };
  if (strategy === 'zero2') {
    return {
      ...common,
      zero_optimization: {
        stage: 2,
        allgather_partitions: true,
        allgather_bucket_size: 5e8,
        overlap_comm: false,
        reduce_scatter: true,
        reduce_bucket_size: 5e8,
        contiguous_gradients: true,
        round_robin_gradients: true,
      },
    };
  }
  const offload = strategy === 'zero3-offload'
    ? { offload_optimizer: { device: 'cpu', pin_memory: true }, offload_param: { device: 'cpu', pin_memory: true } }
    : {};
  return {
    ...common,
    zero_optimization: {
      stage: 3,
      ...offload,
      overlap_comm: false,
      contiguous_gradients: true,
      sub_group_size: 1e9,
      reduce_bucket_size: 'auto',
      stage3_prefetch_bucket_size: 'auto',
      stage3_param_persistence_threshold: 'auto',
      stage3_max_live_parameters: 1e9,
      stage3_max_reuse_distance: 1e9,
      // The final save writes whole 16-bit weights (an adapter or a model vLLM can load), not shards.
      stage3_gather_16bit_weights_on_model_save: true,
    },
  };
}

/**
 * The training YAML's keys for a strategy. FSDP goes through the Trainer's own `fsdp` arguments:
 * full sharding wrapped at the model's decoder layers (`_no_split_modules`, so no class name to
 * keep in step with the model), original parameters kept (LoRA freezes most of each layer).
 */
export function strategyArgs(layout: ParallelLayout | undefined, configDir: string): Record<string, unknown> {
  if (!usesTorchrun(layout)) return {};
  if (usesDeepSpeed(layout.strategy)) return { deepspeed: `${configDir}/${DEEPSPEED_CONFIG_FILE}` };
  if (layout.strategy === 'fsdp') {
    return {
      fsdp: 'full_shard auto_wrap',
      fsdp_config: { backward_prefetch: 'backward_pre', use_orig_params: true, sync_module_states: true, cpu_ram_efficient_loading: true },
    };
  }
  return {};
}
