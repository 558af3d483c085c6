import type { Issue } from '../issues.ts';

/** Planner problems use core's Issue shape: path, bad value, fix, code (`planner.*`). */
export type PlannerIssue = Issue;

/** One named term of a memory estimate, with what it is made of. */
export interface MemoryTerm {
  readonly name: string;
  readonly bytes: number;
  /** The formula with its numbers, e.g. `8,030,261,248 params × 2 B (bf16)`. */
  readonly detail: string;
  /**
   * How far the term may be off, as a share of its bytes (0.3: ±30 %). Absent or 0: exact (counted
   * from shapes). The README's error table gives each term's band and where it comes from.
   */
  readonly band?: number;
}

/** A memory estimate: named terms and their sum. `perGpu` when each of `gpus` GPUs holds this much. */
export interface MemoryBreakdown {
  readonly device: 'gpu' | 'host' | 'disk';
  readonly terms: readonly MemoryTerm[];
  readonly totalBytes: number;
  /**
   * The estimate's error band in bytes: every term's band added up (they are not independent: a
   * newer library that keeps one more tensor moves several terms the same way).
   */
  readonly bandBytes: number;
}

export function breakdown(device: MemoryBreakdown['device'], terms: readonly MemoryTerm[]): MemoryBreakdown {
  const kept = terms.filter((t) => t.bytes !== 0);
  return {
    device,
    terms: kept,
    totalBytes: kept.reduce((s, t) => s + t.bytes, 0),
    bandBytes: kept.reduce((s, t) => s + Math.abs(t.bytes) * (t.band ?? 0), 0),
  };
}
