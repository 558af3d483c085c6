import type { CompiledPipeline, CompiledStage } from '@tunepipe/core/compiled';
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

/** Stage name → names of the stages that read its artifacts. */
export function dependents(pipeline: CompiledPipeline): Map<string, string[]> {
  const out = new Map<string, string[]>(pipeline.stages.map((s) => [s.name, []]));
  for (const stage of pipeline.stages) for (const dep of stage.dependsOn) out.get(dep)?.push(stage.name);
  return out;
}

/** The stage and every stage downstream of it. */
export function descendantsOf(pipeline: CompiledPipeline, names: Iterable<string>): Set<string> {
  const down = dependents(pipeline);
  const out = new Set<string>();
  const stack = [...names];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (out.has(name)) continue;
    out.add(name);
    stack.push(...(down.get(name) ?? []));
  }
  return out;
}

/** Checks the flags against the pipeline and resolves them; every bad name is reported at once. */
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
  for (const stage of pipeline.stages) {
    for (const dep of stage.dependsOn) {
      if (!known.has(dep)) problems.push(`stage ${stage.name} depends on ${JSON.stringify(dep)}, which is not in the pipeline`);
    }
  }
  if (problems.length > 0) throw new RunnerError(`cannot run ${pipeline.pipeline}:`, problems);

  const selected = options.only && options.only.length > 0 ? new Set(options.only) : new Set(known);
  const forced = new Set([...descendantsOf(pipeline, options.force ?? [])].filter((n) => selected.has(n)));
  return { selected, forced };
}

/** Stages in the pipeline's (topological) order, by name. */
export function stageMap(pipeline: CompiledPipeline): Map<string, CompiledStage> {
  return new Map(pipeline.stages.map((s) => [s.name, s]));
}
