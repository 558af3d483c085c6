import { MiB, MB } from './units.ts';

/**
 * Every constant the planner assumes, in one place, with the reason. Changing one changes plans
 * (and stage hashes only through expectedSeconds/placement, which the compiler writes out).
 */

/**
 * CUDA context, the kernels PyTorch loads and NCCL/cuBLAS handles, present before any tensor and
 * outside PyTorch's allocator (`nvidia-smi` counts it, `torch.cuda.max_memory_reserved` does not):
 * 300-800 MiB depending on driver, lazy module loading and GPU. 512 MiB assumed, ±50 %.
 */
export const CUDA_CONTEXT_BYTES = 512 * MiB;
/** The CUDA context's band: 300-800 MiB around the 512 assumed. */
export const CUDA_CONTEXT_BAND = 0.5;

/**
 * Inference stages (GPTQ, evaluate): PyTorch's caching allocator keeps freed blocks of varying
 * sizes, charged as a share of the transient bytes. Training has its own, measured, reserve
 * (`sft.ts`, ALLOCATOR_RESERVE_FACTOR).
 */
export const ALLOCATOR_FRAGMENTATION = 0.1;
/** The inference fragmentation share is a guess: ±50 % of it. */
export const ALLOCATOR_FRAGMENTATION_BAND = 0.5;

/**
 * SFT activation, logits and gradient terms are counted tensor by tensor from what autograd keeps
 * (sft.ts); they reproduce the H100 measurements to 0.1 %. The band covers library versions that
 * keep a tensor more or less (an older transformers upcast the whole logits in the model, a newer
 * one may fuse the loss) and shapes not measured.
 */
export const SFT_ACTIVATION_BAND = 0.05;

/**
 * The caching allocator's reserve is fitted on a single measured reserved peak (sft.ts,
 * ALLOCATOR_RESERVE_FACTOR): ±30 % of it.
 */
export const ALLOCATOR_RESERVE_BAND = 0.3;

/**
 * Inference working sets (GPTQ's per-layer buffers, HF `generate`'s prefill) are counted from the
 * library's algorithm, not measured: ±25 % (optimum/gptqmodel and transformers versions differ).
 */
export const INFERENCE_ACTIVATION_BAND = 0.25;

/**
 * vLLM's profiling peak and its memory outside PyTorch (0.5-1 GiB) are estimated: ±50 % of them.
 * The KV cache is what vLLM leaves, so its size moves by the same bytes the other way.
 */
export const VLLM_PROFILE_BAND = 0.5;

/** NCCL communicator buffers per GPU when a stage uses more than one GPU (DDP or tensor parallel). */
export const NCCL_BUFFER_BYTES = 512 * MiB;

/**
 * Share of GPU memory kept free beyond an estimate and its error band. The band itself is the
 * headroom: each estimate states how far it may be off (README, "Error bands"), and placement
 * keeps that much free. Raise this only for spikes the planner does not model (e.g. a custom
 * callback that holds tensors).
 * @default 0
 */
export const DEFAULT_HEADROOM = 0;

/**
 * Share of ideal linear scaling that data parallelism (DDP, one node) keeps: gradient all-reduce
 * of LoRA weights is small, but the slowest rank sets the pace.
 */
export const DATA_PARALLEL_EFFICIENCY = 0.9;

/**
 * Launch work of one layer pass without adapters, in adapters' worth (throughput.ts, launchUnits):
 * norms, RoPE, attention and the MLP's elementwise ops launch about 40 kernels, an adapter about 8.
 */
export const LAYER_BASE_LAUNCH_UNITS = 5;

/**
 * Training speed band on the GPU architecture the curve was fitted on (Hopper): the fit is exact
 * at its two points; other batch shapes and sequence lengths extrapolate the same two constants.
 */
export const TRAINING_TIME_BAND_CALIBRATED = 0.1;
/**
 * Training speed band on other GPUs: η∞ and the launch overhead carried over from the H100. Held
 * out, the seed's A100 run comes within 2 %; bandwidth-poor cards (L4, A10G) may fall further.
 */
export const TRAINING_TIME_BAND = 0.25;

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
 * Share by which the rates behind stage times that come from assumed bandwidths (downloads, volume
 * reads and writes, CPU merge, GPTQ, start-up) may be off either way: storage and network vary
 * several-fold between clusters. A rate ±50 % puts such a time within [2t/3, 2t].
 */
export const IO_TIME_BAND = 0.5;

/**
 * Job `activeDeadlineSeconds` and Pulumi/Flux timeouts: the slow end of the time band × factor +
 * allowance. The band already covers the model's error; the factor covers what no model of the
 * stage can know (a throttled node, a noisy neighbour, a step repeated after a resume); the
 * allowance covers GPU node scale-up from zero (5-15 min) and pulling a 10-20 GB image.
 */
export const DEADLINE_SAFETY_FACTOR = 1.5;
export const DEADLINE_ALLOWANCE_SECONDS = 1800;

/** The deadline for a stage whose time band ends at `slowSeconds`. */
export function deadlineSeconds(slowSeconds: number): number {
  return Math.ceil(slowSeconds * DEADLINE_SAFETY_FACTOR + DEADLINE_ALLOWANCE_SECONDS);
}

/**
 * Share of a link's bandwidth NCCL's ring collectives reach on large messages (its "bus bandwidth"
 * in nccl-tests over the link's per-direction rate): about 0.7-0.85 on NVLink and EFA, lower on
 * PCIe through the host. 0.7 assumed; the communication band covers the rest.
 */
export const NCCL_BUS_EFFICIENCY = 0.7;

/**
 * Share of a step's compute that hides its communication: DDP all-reduces gradient buckets while
 * the backward runs, ZeRO-3 and FSDP prefetch the next layer's parameters during the current
 * one's compute. LLaMA-Factory's example DeepSpeed configs set `overlap_comm: false`, so ZeRO's
 * gradient reduction waits; 0.5 assumed, with COMMUNICATION_TIME_BAND around the exposed time.
 * Training time = compute + max(0, communication − COMMUNICATION_OVERLAP × compute) + what cannot
 * overlap at all (host↔device copies and CPU Adam under offload).
 */
export const COMMUNICATION_OVERLAP = 0.5;
/** The exposed communication time may be off by ±60 % (overlap 0.2-0.8, NCCL 0.5-0.85 of the link). */
export const COMMUNICATION_TIME_BAND = 0.6;

/** Node network when the cloud publishes none for the machine type (25 Gbit/s Ethernet class). */
export const UNKNOWN_NODE_NETWORK_GBPS = 25;

/**
 * DeepSpeed's CPU Adam (AVX-512, all cores of the node) updates about 1e9 fp32 parameters per
 * second per node (the ZeRO-Offload paper's CPU-Adam measures 0.5-2e9 on 2-socket hosts): ±50 %.
 */
export const CPU_ADAM_PARAMS_PER_SECOND = 1e9;

/** Host↔device copies under ZeRO offload: pinned memory over PCIe Gen4/5 x16, about 20 GB/s per GPU. */
export const OFFLOAD_PCIE_BYTES_PER_SECOND = 20e9;

/**
 * The DeepSpeed settings the planner assumes, those of LLaMA-Factory's examples/deepspeed configs
 * (which kinds/distributed.ts generates): ZeRO-2 reduces gradients through a 5e8-element bucket
 * (ZeRO-3's `reduce_bucket_size: auto` is hidden²); ZeRO-3 keeps at most 1e9 gathered parameters
 * live (`stage3_max_live_parameters`).
 */
export const ZERO_REDUCE_BUCKET_ELEMENTS = 5e8;
export const ZERO3_MAX_LIVE_PARAMETERS = 1e9;
/** Gathered-parameter working buffers (ZeRO-3 live parameters, FSDP units) depend on the config: ±30 %. */
export const SHARDED_WORKING_SET_BAND = 0.3;
