import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { RunnerError } from './types.ts';

/** Which stages a run covers, from `--only` and `--force`. */
export interface RunSelection {
  /** Stages this run may start (all of them without `--only`). */
  readonly selected: ReadonlySet<string>;
  /** Stages re-run even if their artifact is complete: the forced ones and their descendants. */
  readonly forced: ReadonlySet<string>;
}

export interface SelectionOptions {
  /** Run only these stages; their upstream stages must already be complete. */
  readonly only?: readonly string[];
  /** Re-run these stages and everything downstream of them. */
  readonly force?: readonly string[];
}

/** The stages and every stage downstream of them: one pass, since compiled stages are in topological order. */
export function descendantsOf(pipeline: CompiledPipeline, names: Iterable<string>): Set<string> {
  const out = new Set(names);
  for (const stage of pipeline.stages) if (stage.dependsOn.some((d) => out.has(d))) out.add(stage.name);
  return out;
}

/**
 * Checks the flags against the pipeline and resolves them; every bad name is reported at once.
 * The graph itself is compile()'s: valid, in topological order.
 */
export function selectStages(pipeline: CompiledPipeline, options: SelectionOptions = {}): RunSelection {
  const known = new Set(pipeline.stages.map((s) => s.name));
  const problems: string[] = [];
  const check = (flag: string, names: readonly string[] | undefined) => {
    for (const name of names ?? []) {
      if (!known.has(name)) {
        problems.push(`${flag} ${JSON.stringify(name)}: no such stage in ${pipeline.pipeline}; stages are ${[...known].join(', ')}`);
      }
    }
  };
  check('--only', options.only);
  check('--force', options.force);
  if (problems.length > 0) throw new RunnerError(`cannot run ${pipeline.pipeline}:`, problems);

  const selected = options.only && options.only.length > 0 ? new Set(options.only) : new Set(known);
  const forced = new Set([...descendantsOf(pipeline, options.force ?? [])].filter((n) => selected.has(n)));
  return { selected, forced };
}
