import type { CompiledPipeline, CompiledStage } from '@tunepipe/core/compiled';
import type { RunSelection } from './graph.ts';
import {
  RunnerError,
  TERMINAL_STATUSES,
  type RunReporter,
  type RunResult,
  type RunTarget,
  type StageState,
} from './types.ts';

export type StageOutcome = 'done' | 'failed' | 'detached' | 'stopped';

/** Fields to change; `undefined` clears one. */
export type StagePatch = {
  [K in Exclude<keyof StageState, 'stage' | 'kind' | 'hash' | 'expectedSeconds'>]?: StageState[K] | undefined;
};

/** What a target's stage executor gets: its stage's state to update, and the run's signal. */
export interface StageContext {
  readonly forced: boolean;
  /** Aborted when the user detaches (Ctrl-C). */
  readonly signal: AbortSignal;
  readonly state: () => StageState;
  update(patch: StagePatch): void;
  note(message: string): void;
}

export interface GraphRunOptions {
  readonly pipeline: CompiledPipeline;
  readonly selection: RunSelection;
  readonly target: RunTarget;
  readonly where: string;
  readonly reporter: RunReporter;
  readonly signal?: AbortSignal;
  /** Says which stages already have a complete artifact for their hash (value: a detail line). */
  readonly findCached: (stages: readonly CompiledStage[]) => Promise<ReadonlyMap<string, string>>;
  /** Runs before anything starts, with the stages that will run; throw a RunnerError to refuse. */
  readonly preflight?: (toRun: readonly CompiledStage[]) => Promise<void>;
  readonly execute: (stage: CompiledStage, ctx: StageContext) => Promise<StageOutcome>;
  /** How many GPU stages may run at once. @default Infinity (the cluster queues them) */
  readonly gpuSlots?: number;
  readonly now?: () => number;
}

const SATISFIED = new Set(['done', 'cached']);

/**
 * Runs the selected stages in graph order: each starts as soon as every stage it depends on is
 * done or cached, so independent branches run in parallel. A failed stage blocks its
 * descendants and lets the other branches finish.
 */
export async function runGraph(options: GraphRunOptions): Promise<RunResult> {
  const { pipeline, selection, reporter } = options;
  const now = options.now ?? Date.now;
  const startedAt = now();
  const signal = options.signal ?? new AbortController().signal;
  const states = new Map<string, StageState>();
  for (const stage of pipeline.stages) {
    states.set(stage.name, {
      stage: stage.name,
      kind: stage.kind,
      hash: stage.hash,
      status: selection.selected.has(stage.name) ? 'waiting' : 'skipped',
      attempts: 0,
      preemptions: 0,
      expectedSeconds: stage.expectedSeconds,
      ...(selection.forced.has(stage.name) ? { forced: true } : {}),
    });
  }

  const candidates = pipeline.stages.filter((s) => !selection.forced.has(s.name));
  const cached = await options.findCached(candidates);
  for (const [name, detail] of cached) {
    const state = states.get(name);
    if (state) states.set(name, { ...state, status: 'cached', detail });
  }

  const problems: string[] = [];
  for (const stage of pipeline.stages) {
    if (!selection.selected.has(stage.name)) continue;
    for (const dep of stage.dependsOn) {
      if (!selection.selected.has(dep) && states.get(dep)?.status !== 'cached') {
        problems.push(`${stage.name} reads the artifacts of ${dep}, which has not completed for hash ${pipeline.stages.find((s) => s.name === dep)?.hash.slice(0, 8)}; run ${dep} too (add --only ${dep}) or drop --only`);
      }
    }
  }
  if (problems.length > 0) throw new RunnerError(`cannot run ${pipeline.pipeline}:`, problems);

  const toRun = pipeline.stages.filter((s) => states.get(s.name)?.status === 'waiting');
  await options.preflight?.(toRun);

  reporter.start({ pipeline: pipeline.pipeline, target: options.target, where: options.where, stages: [...states.values()] });
  for (const stage of pipeline.stages) {
    const state = states.get(stage.name)!;
    if (state.status === 'cached') reporter.update(state);
  }

  const set = (name: string, patch: StagePatch) => {
    const next: Record<string, unknown> = { ...states.get(name)!, ...patch };
    for (const key of Object.keys(next)) if (next[key] === undefined) delete next[key];
    states.set(name, next as unknown as StageState);
    reporter.update(next as unknown as StageState);
  };

  const gpuSlots = options.gpuSlots ?? Number.POSITIVE_INFINITY;
  let gpusBusy = 0;
  const running = new Map<string, Promise<void>>();

  const launch = (stage: CompiledStage) => {
    const usesGpu = stage.gpus > 0;
    if (usesGpu) gpusBusy++;
    set(stage.name, { status: 'starting', startedAt: now() });
    const ctx: StageContext = {
      forced: selection.forced.has(stage.name),
      signal,
      state: () => states.get(stage.name)!,
      update: (patch) => set(stage.name, patch),
      note: (message) => reporter.note(stage.name, message),
    };
    const task = options
      .execute(stage, ctx)
      // Any error (a full disk, a permission, an API failure) fails this stage and lets the others
      // finish and clean up; rethrowing would strand running tasks and leak their processes.
      .catch((error: unknown): StageOutcome => {
        const message = error instanceof RunnerError ? error.message : `${error instanceof Error ? error.message : String(error)} (unexpected: please report it)`;
        set(stage.name, { failure: { reason: 'error', message, logTail: [] } });
        return 'failed';
      })
      .then((outcome) => {
        if (usesGpu) gpusBusy--;
        running.delete(stage.name);
        const status = outcome === 'detached' ? states.get(stage.name)!.status : outcome;
        set(stage.name, {
          status,
          ...(outcome === 'detached' ? {} : { finishedAt: now() }),
          ...(outcome === 'done' ? { detail: undefined } : {}),
        });
      });
    running.set(stage.name, task);
  };

  for (;;) {
    if (!signal.aborted) {
      for (const stage of pipeline.stages) {
        const state = states.get(stage.name)!;
        if (state.status !== 'waiting') continue;
        const deps = stage.dependsOn.map((d) => states.get(d)!);
        const broken = deps.find((d) => d.status === 'failed' || d.status === 'blocked' || d.status === 'stopped');
        if (broken) {
          set(stage.name, { status: 'blocked', detail: `${broken.stage} ${broken.status === 'failed' ? 'failed' : `is ${broken.status}`}` });
          continue;
        }
        if (!deps.every((d) => SATISFIED.has(d.status))) continue;
        if (stage.gpus > 0 && gpusBusy >= gpuSlots) {
          if (state.detail !== 'waiting for the GPU') set(stage.name, { detail: 'waiting for the GPU' });
          continue;
        }
        launch(stage);
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }

  const stages = pipeline.stages.map((s) => states.get(s.name)!);
  const anyFailed = stages.some((s) => s.status === 'failed');
  const unfinished = stages.some((s) => !TERMINAL_STATUSES.has(s.status));
  const outcome = anyFailed
    ? 'failed'
    : signal.aborted && unfinished
      ? options.target === 'cluster'
        ? 'detached'
        : 'stopped'
      : signal.aborted && stages.some((s) => s.status === 'stopped')
        ? 'stopped'
        : 'succeeded';
  const result: RunResult = {
    pipeline: pipeline.pipeline,
    target: options.target,
    outcome,
    stages,
    where: options.where,
    startedAt,
    finishedAt: now(),
  };
  reporter.finish(result);
  return result;
}
