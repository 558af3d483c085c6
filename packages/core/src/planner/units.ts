/**
 * Units. Memory is counted in bytes and shown in GiB (2^30), because that is how GPUs, nvidia-smi
 * and PyTorch report it. Files on disk and shard sizes are shown in GB (10^9), because that is how
 * `export_size` and `max_shard_size="4GB"` (huggingface_hub `parse_size_to_int`) count.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const GB = 1e9;
export const MB = 1e6;
export const TFLOP = 1e12;

export const SECONDS_PER_HOUR = 3600;

/** Bytes of one element of a tensor dtype. */
export const DTYPE_BYTES = {
  float32: 4,
  bfloat16: 2,
  float16: 2,
  fp8: 1,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;

/** `14.96 GiB` — memory, binary units. */
export function formatGiB(bytes: number, digits = 2): string {
  if (bytes < GiB) return `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`;
  return `${(bytes / GiB).toFixed(digits)} GiB`;
}

/** `16.06 GB` — files and shards, decimal units. */
export function formatGB(bytes: number, digits = 2): string {
  if (bytes < GB) return `${(bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0)} MB`;
  return `${(bytes / GB).toFixed(digits)} GB`;
}

/** `$1.23` (or `$0.004` below a cent, `—` when unknown). */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return '—';
  if (usd !== 0 && Math.abs(usd) < 0.01) return `$${usd.toFixed(3)}`;
  return `$${usd.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** `25m 30s`, `1h 02m`, `45s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h === 0) return `${m}m ${String(rest).padStart(2, '0')}s`;
  return `${h}h ${String(m).padStart(2, '0')}m`;
}

/** `20,971,520` — exact integers as LLaMA-Factory logs them. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
