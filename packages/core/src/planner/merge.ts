import { llamaFactoryDefault } from '../defaults.ts';
import type { ModelArchitecture } from '../model/architecture.ts';
import {
  CPU_MERGE_ELEMENTS_PER_SECOND,
  CUDA_CONTEXT_BAND,
  CUDA_CONTEXT_BYTES,
  INFERENCE_ACTIVATION_BAND,
  POD_STARTUP_SECONDS,
  SHA256_BYTES_PER_SECOND,
  VOLUME_READ_BYTES_PER_SECOND,
  VOLUME_WRITE_BYTES_PER_SECOND,
} from './assumptions.ts';
import { decoderLinears, stateDictTensors, tensorLayoutIsExact, type LinearShape, loraParamCount } from './shapes.ts';
import { breakdown, type MemoryBreakdown, type PlannerIssue } from './types.ts';
import { n } from './internal.ts';
import { GB, GiB, formatGB } from './units.ts';

/** `llamafactory-cli export` arguments the planner reads (a superset of the DSL's ExportArgs). */
export interface ExportPlanArgs {
  /** Shard size in GB (10^9 bytes). @default 5 */
  readonly export_size?: number;
  /** @default 'cpu' */
  readonly export_device?: string;
  /** `.bin` files instead of safetensors (torch.save shards split the same way). @default false */
  readonly export_legacy_format?: boolean;
  /** dtype written: `auto` keeps the model's (fp32 becomes bf16). @default 'auto' */
  readonly infer_dtype?: string;
}

/** Python, torch and tokenizer of the export process itself (host RAM). */
export const EXPORT_PROCESS_BYTES = 2 * GiB;

/**
 * Bytes per parameter the export writes. With `infer_dtype: auto`, 16-bit models keep their dtype;
 * a float32 model is converted to bf16 (or fp16) only where LLaMA-Factory finds an accelerator that
 * supports it (`infer_optim_dtype`): a merge on the CPU (`export_device: cpu`, a CPU pod) writes
 * float32, twice the bytes (measured with LLaMA-Factory 0.9.4 in test/real/llamafactory).
 */
export function exportBytesPerParam(inferDtype: string | undefined, modelDtype: ModelArchitecture['torchDtype'] = 'bfloat16', onGpu = true): number {
  if (inferDtype === 'float32') return 4;
  if (inferDtype === 'float16' || inferDtype === 'bfloat16') return 2;
  return modelDtype === 'float32' && !onGpu ? 4 : 2;
}

export interface ShardPlan {
  /** The count, from the tensor-by-tensor split when the layout is known, else the lower bound. */
  readonly count: number;
  /** ceil(total / max_shard_size): the count if shards could split tensors. */
  readonly lowerBound: number;
  /** The most shards a greedy split at tensor boundaries can produce. */
  readonly upperBound: number;
  /** Whether `count` comes from splitting the model's actual tensor list. */
  readonly exact: boolean;
  /** Bytes of each shard (exact split only). */
  readonly shardBytes: readonly number[];
  readonly fileNames: readonly string[];
  readonly note: string;
}

/**
 * Greedy split as huggingface_hub's `split_torch_state_dict_into_shards` does it (what
 * save_pretrained calls): tensors in state-dict order; a shard closes when the next tensor would
 * take it past `maxShardBytes`; a tensor larger than the limit gets a shard of its own.
 */
export function splitIntoShards(tensorBytes: readonly number[], maxShardBytes: number): number[] {
  const shards: number[] = [];
  let current = 0;
  let currentCount = 0;
  for (const size of tensorBytes) {
    if (size > maxShardBytes) {
      shards.push(size);
      continue;
    }
    if (currentCount > 0 && current + size > maxShardBytes) {
      shards.push(current);
      current = 0;
      currentCount = 0;
    }
    current += size;
    currentCount++;
  }
  if (currentCount > 0) shards.push(current);
  return shards;
}

/** Shard file names as save_pretrained writes them. */
export function shardFileNames(count: number, legacy = false): string[] {
  const ext = legacy ? 'bin' : 'safetensors';
  const stem = legacy ? 'pytorch_model' : 'model';
  if (count === 1) return [`${stem}.${ext}`];
  const pad = (i: number) => String(i).padStart(5, '0');
  return Array.from({ length: count }, (_, i) => `${stem}-${pad(i + 1)}-of-${pad(count)}.${ext}`);
}

/**
 * How many shards `export_size` gives. The simple answer is ceil(bytes / (export_size × 10^9)), but
 * shards split only at tensor boundaries, so a shard can close short of the limit and the count can
 * be one (or, with large tensors and small shards, more) higher. Llama-3-8B in bf16 is
 * 16,060,522,496 bytes: 16.06 / 4 = 4.02, so at export_size 4 it is 5 shards, not 4.
 */
export function shardPlan(arch: ModelArchitecture, bytesPerParam: number, exportSizeGb: number, legacy = false): ShardPlan {
  const maxShardBytes = exportSizeGb * GB;
  const tensors = stateDictTensors(arch).map((t) => t.elements * bytesPerParam);
  const total = arch.parameterCount * bytesPerParam;
  const largest = Math.max(...tensors);
  if (maxShardBytes === 0) {
    // A limit of 0 bytes: save_pretrained gives every tensor a shard of its own.
    const shardBytes = tensors;
    const count = tensors.length;
    const note = `export_size 0: one shard per tensor, ${count} shards`;
    return { count, lowerBound: count, upperBound: count, exact: tensorLayoutIsExact(arch), shardBytes: tensorLayoutIsExact(arch) ? shardBytes : [], fileNames: shardFileNames(count, legacy), note };
  }
  const lowerBound = Math.ceil(total / maxShardBytes);
  // Every closed shard holds more than (limit − largest tensor), or it would have taken the next one.
  const upperBound = largest >= maxShardBytes ? tensors.length : Math.ceil(total / (maxShardBytes - largest));
  if (tensorLayoutIsExact(arch)) {
    const shardBytes = splitIntoShards(tensors, maxShardBytes);
    const count = shardBytes.length;
    const note =
      count > lowerBound
        ? `${formatGB(total)} / ${exportSizeGb} GB = ${(total / maxShardBytes).toFixed(2)} → ${lowerBound}, but tensor boundaries leave shards short of ${exportSizeGb} GB: ${count} shards`
        : `${formatGB(total)} / ${exportSizeGb} GB = ${(total / maxShardBytes).toFixed(2)} → ${count} shard${count === 1 ? '' : 's'}`;
    return { count, lowerBound, upperBound, exact: true, shardBytes, fileNames: shardFileNames(count, legacy), note };
  }
  const note =
    upperBound > lowerBound
      ? `${lowerBound} shards (ceil(${formatGB(total)} / ${exportSizeGb} GB)); can be up to ${upperBound}: shards split at tensor boundaries (largest tensor ${formatGB(largest)})`
      : `${lowerBound} shards`;
  return { count: lowerBound, lowerBound, upperBound, exact: false, shardBytes: [], fileNames: shardFileNames(lowerBound, legacy), note };
}

export interface MergeEstimate {
  readonly modelBytes: number;
  readonly shards: ShardPlan;
  readonly onGpu: boolean;
  readonly host: MemoryBreakdown;
  /** GPU memory when `export_device: auto` (device_map=auto puts the model on the GPU). */
  readonly gpu: MemoryBreakdown | undefined;
  readonly disk: MemoryBreakdown;
  readonly seconds: number;
  readonly secondsBreakdown: Readonly<Record<string, number>>;
  readonly issues: readonly PlannerIssue[];
}

/**
 * Merge and export: load the base in its dtype, add s·B·A into each targeted weight, write shards.
 * `targets`/`rank` describe the adapter (for the merge arithmetic and its size).
 */
export function mergeEstimate(
  arch: ModelArchitecture,
  adapter: { readonly rank: number; readonly targets: readonly LinearShape[] },
  args: ExportPlanArgs,
  path: string,
): MergeEstimate {
  const issues: PlannerIssue[] = [];
  let exportSize = args.export_size ?? llamaFactoryDefault<number>('export_size');
  if (!(Number.isInteger(exportSize) && exportSize >= 0)) {
    issues.push({ code: 'planner.export-size', path: `${path}.args.export_size`, value: exportSize, message: 'must be a positive whole number of GB (LLaMA-Factory types it int)', fix: `use ${Math.max(1, Math.round(exportSize) || 5)}` });
    exportSize = Math.max(1, Math.round(exportSize) || 5);
  }
  const bytesPerParam = exportBytesPerParam(args.infer_dtype, arch.torchDtype, args.export_device === 'auto');
  const modelBytes = arch.parameterCount * bytesPerParam;
  const shards = shardPlan(arch, bytesPerParam, exportSize, args.export_legacy_format === true);
  const lora = loraParamCount(arch, adapter.rank, adapter.targets);
  const adapterBytes = lora.trainable * 4; // adapters are saved as trained: fp32
  const largestShard = shards.exact ? Math.max(...shards.shardBytes) : Math.min(modelBytes, exportSize * GB);
  const onGpu = args.export_device === 'auto';
  const widest = adapter.targets.reduce((w, t) => (t.inFeatures * t.outFeatures > w.inFeatures * w.outFeatures ? t : w), adapter.targets[0] ?? decoderLinears(arch)[0]!);

  const host = breakdown('host', [
    ...(onGpu ? [] : [{ name: 'model weights', bytes: modelBytes, detail: `${n(arch.parameterCount)} params × ${bytesPerParam} B, materialised in RAM to be merged` }]),
    { name: 'LoRA adapter', bytes: adapterBytes, detail: `${n(lora.trainable)} params × 4 B (fp32)` },
    { name: 'shard being serialised', bytes: largestShard, detail: `safetensors builds one shard (≤ ${exportSize} GB) in memory before writing` },
    { name: 'export process', bytes: EXPORT_PROCESS_BYTES, detail: 'Python, torch, transformers, tokenizer' },
  ]);
  const gpu = onGpu
    ? breakdown('gpu', [
        { name: 'model weights', bytes: modelBytes, detail: `${n(arch.parameterCount)} params × ${bytesPerParam} B` },
        { name: 'LoRA adapter', bytes: adapterBytes, detail: `${n(lora.trainable)} params × 4 B` },
        // PEFT merges one weight at a time: B·A in the adapter's fp32, then cast to the weight's dtype.
        { name: `delta of the largest weight (${widest.name})`, bytes: widest.outFeatures * widest.inFeatures * (4 + bytesPerParam), detail: `${n(widest.outFeatures)} × ${n(widest.inFeatures)} × (4 + ${bytesPerParam}) B: fp32 B·A and its cast`, band: INFERENCE_ACTIVATION_BAND },
        { name: 'CUDA context + workspaces', bytes: CUDA_CONTEXT_BYTES, detail: 'assumed (300-800 MiB)', band: CUDA_CONTEXT_BAND },
      ])
    : undefined;
  const disk = breakdown('disk', [{ name: `${shards.count} shards`, bytes: modelBytes, detail: `${shards.note}; plus tokenizer and config files (tens of MB)` }]);

  const mergedElements = arch.numHiddenLayers * adapter.targets.reduce((s, t) => s + t.inFeatures * t.outFeatures, 0);
  const secondsBreakdown = {
    startup: POD_STARTUP_SECONDS,
    'read base': modelBytes / VOLUME_READ_BYTES_PER_SECOND,
    merge: onGpu ? 5 : mergedElements / CPU_MERGE_ELEMENTS_PER_SECOND,
    'write shards': modelBytes / VOLUME_WRITE_BYTES_PER_SECOND,
    SHA256SUMS: modelBytes / SHA256_BYTES_PER_SECOND,
  };
  const seconds = Object.values(secondsBreakdown).reduce((a, b) => a + b, 0);
  return { modelBytes, shards, onGpu, host, gpu, disk, seconds, secondsBreakdown, issues };
}
