import type { Issue } from '../issues.ts';

/** Planner problems use core's Issue shape: path, bad value, fix, code (`planner.*`). */
export type PlannerIssue = Issue;

/** One named term of a memory estimate, with what it is made of. */
export interface MemoryTerm {
  readonly name: string;
  readonly bytes: number;
  /** The formula with its numbers, e.g. `8,030,261,248 params × 2 B (bf16)`. */
  readonly detail: string;
}

/** A memory estimate: named terms and their sum. `perGpu` when each of `gpus` GPUs holds this much. */
export interface MemoryBreakdown {
  readonly device: 'gpu' | 'host' | 'disk';
  readonly terms: readonly MemoryTerm[];
  readonly totalBytes: number;
}

export function breakdown(device: MemoryBreakdown['device'], terms: readonly MemoryTerm[]): MemoryBreakdown {
  const kept = terms.filter((t) => t.bytes !== 0);
  return { device, terms: kept, totalBytes: kept.reduce((s, t) => s + t.bytes, 0) };
}
