import { MiB, MB } from './units.ts';

/**
 * Every constant the planner assumes, in one place, with the reason. Changing one changes plans
 * (and stage hashes only through expectedSeconds/placement, which the compiler writes out).
 */

/**
 * CUDA context, kernels PyTorch loads and cuBLAS/cuDNN workspaces, present before any tensor:
 * 300-800 MiB depending on driver, lazy module loading and GPU. 512 MiB assumed.
 */
export const CUDA_CONTEXT_BYTES = 512 * MiB;

/**
 * PyTorch's caching allocator rounds and splits blocks; activations of varying sequence length
 * fragment it. Charged on the transient (activation, logits, gradient) bytes only: weights and
 * optimizer states are allocated once in large blocks.
 */
export const ALLOCATOR_FRAGMENTATION = 0.1;

/** NCCL communicator buffers per GPU when a stage uses more than one GPU (DDP or tensor parallel). */
export const NCCL_BUFFER_BYTES = 512 * MiB;

/**
 * Free memory the planner keeps on a GPU beyond its estimate: covers the estimate's error
 * (see README, ±10-15% on training peaks) and spikes it does not model.
 * @default 0.10
 */
export const DEFAULT_HEADROOM = 0.1;

/**
 * Share of ideal linear scaling that data parallelism (DDP, one node) keeps: gradient all-reduce
 * of LoRA weights is small, but the slowest rank sets the pace.
 */
export const DATA_PARALLEL_EFFICIENCY = 0.9;

/** Download speed from Hugging Face / ModelScope into the cluster (20-500 MB/s observed; 100 assumed). */
export const HUB_DOWNLOAD_BYTES_PER_SECOND = 100 * MB;
/** Sequential read from the ReadWriteMany artifacts volume (NFS/EFS/Filestore class). */
export const VOLUME_READ_BYTES_PER_SECOND = 250 * MB;
/** Sequential write to the artifacts volume. */
export const VOLUME_WRITE_BYTES_PER_SECOND = 200 * MB;
/** SHA-256 on one core, for the `SHA256SUMS` every batch stage writes. */
export const SHA256_BYTES_PER_SECOND = 500 * MB;
/** Container start and Python imports (torch, transformers); image pulls are in the deadline allowance. */
export const POD_STARTUP_SECONDS = 60;
/** LLaMA-Factory tokenisation, rows per second (the seed: 491 rows in ~3.3 s with 16 processes). */
export const TOKENIZE_ROWS_PER_SECOND = 150;
/** The TypeScript converter: rows validated and written per second. */
export const CONVERT_ROWS_PER_SECOND = 5000;
/** CPU merge `W += s·B·A`: weight elements updated per second (bf16 on a few cores). */
export const CPU_MERGE_ELEMENTS_PER_SECOND = 0.5e9;

/** Share of the HBM bandwidth a decode step reaches when it streams the weights. */
export const DECODE_BANDWIDTH_EFFICIENCY = 0.6;
/**
 * HF `generate` (evaluate stage) pays Python and kernel-launch overhead per step whatever the GPU:
 * ~25 ms per token for a 32-layer model.
 */
export const HF_GENERATE_STEP_FLOOR_SECONDS = 0.025;
/** Prefill (prompt) utilisation of the bf16 peak in inference. */
export const PREFILL_UTILISATION = 0.4;

/** GPTQ calibration forwards (fp16, batch 1 per sample) reach this share of the fp16 peak. */
export const GPTQ_FORWARD_UTILISATION = 0.3;
/** Hessian accumulation X·Xᵀ and the GPTQ solve run in fp32 without tensor cores. */
export const GPTQ_FP32_UTILISATION = 0.5;
/** Python-loop cost of GPTQ's column-by-column solve, per weight column (input feature): ~50 µs. */
export const GPTQ_SECONDS_PER_COLUMN = 50e-6;
/** Packing quantized weights into int32 (on CPU in optimum), weight elements per second. */
export const GPTQ_PACK_ELEMENTS_PER_SECOND = 50e6;

/** vLLM torch.compile + CUDA-graph capture on first start (cached on the volume afterwards). */
export const VLLM_STARTUP_COMPILE_SECONDS = 120;
/** Memory vLLM sees grow outside PyTorch during profiling (cuBLAS workspace, custom all-reduce). */
export const VLLM_NON_TORCH_BYTES = 256 * MiB;
/** Outside gpu_memory_utilization vLLM still needs the CUDA context and its CUDA graphs. */
export const VLLM_OUTSIDE_BUDGET_BYTES = 1024 * MiB;

/**
 * Job `activeDeadlineSeconds` and Pulumi/Flux timeouts: expected × factor + allowance. The factor
 * covers the time estimate's error (±30%, see README) with margin; the allowance covers GPU node
 * scale-up from zero (5-15 min) and pulling a 10-20 GB image.
 */
export const DEADLINE_SAFETY_FACTOR = 3;
export const DEADLINE_ALLOWANCE_SECONDS = 1800;

/** The deadline for a stage expected to take `expectedSeconds`. */
export function deadlineSeconds(expectedSeconds: number): number {
  return Math.ceil(expectedSeconds * DEADLINE_SAFETY_FACTOR + DEADLINE_ALLOWANCE_SECONDS);
}
