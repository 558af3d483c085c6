// The runner's fault matrix as a fuzzer: random sequences of API faults (HTTP 5xx, 429, 409, 410,
// connection resets, cut watches, black holes, and API server restarts) thrown at the calls a run
// makes while its sft stage runs, against the fault-injecting API double. Every run must ride
// them out: every stage done, the sft Job created once and never deleted, no 422, no hang, and no
// stack trace anywhere.
import fc from 'fast-check';
import type { Fault } from '../doubles/fake-kube-api.ts';
import { makePipeline } from '../fixtures/pipeline.ts';
import { SEED_TRAIN_LOG, waitFor } from '../helpers.ts';
import { faultsFor, faultTargets, survivalProblem, startRun, withKube } from '../faults-support.ts';

/** The stages up to sft: the faults aim at sft's calls, the stages after it only add time. */
const PIPELINE = makePipeline({ without: ['merge', 'quantize', 'evaluate', 'serve'] });
const SFT = PIPELINE.stages.find((s) => s.name === 'sft')!.resourceName;
const TARGETS = faultTargets(SFT);

export interface FaultPlan {
  /** Faults queued on one call each, served in order as the run makes that call. */
  readonly injections: readonly { readonly target: number; readonly faults: readonly Fault[] }[];
  /** Once they were served: the API server restarts (every connection reset) for this long. */
  readonly restartMs?: number | undefined;
}

export interface FaultFuzzStats {
  runs: number;
  /** Runs with exactly one fault: the "a single transient fault fails the stage". */
  singleFaultRuns: number;
  faults: number;
  restarts: number;
  byFault: Record<string, number>;
  byCall: Record<string, number>;
  stagesFailed: number;
  stagesFailedBySingleFault: number;
  /** Runs that had not ended 30 s after their last fault (aborted then). */
  hangs: number;
  /** Errors out of the run that are not a RunnerError, or failure messages carrying a stack. */
  stackTraces: number;
  /** Runs that ended otherwise short of the target (a Job created twice or deleted, a 422). */
  otherProblems: number;
}

const single: fc.Arbitrary<FaultPlan> = fc
  .integer({ min: 0, max: TARGETS.length - 1 })
  .chain((target) => fc.constantFrom(...faultsFor(TARGETS[target]!.verb)).map((fault) => ({ injections: [{ target, faults: [fault] }] })));

const injection = fc
  .integer({ min: 0, max: TARGETS.length - 1 })
  .chain((target) => fc.array(fc.constantFrom(...faultsFor(TARGETS[target]!.verb)), { minLength: 1, maxLength: 4 }).map((faults) => ({ target, faults })));

const sequence: fc.Arbitrary<FaultPlan> = fc.record({
  injections: fc.array(injection, { minLength: 1, maxLength: 6 }),
  restartMs: fc.option(fc.integer({ min: 20, max: 600 }), { nil: undefined }),
});

export const faultPlan: fc.Arbitrary<FaultPlan> = fc.oneof({ arbitrary: single, weight: 1 }, { arbitrary: sequence, weight: 2 });

/** Every fault kind on every call in one run, and five 500s on every call in another: the matrix the issue measured. */
export const MATRIX_EXAMPLES: FaultPlan[] = [
  { injections: TARGETS.map((t, target) => ({ target, faults: faultsFor(t.verb) })) },
  { injections: TARGETS.map((_, target) => ({ target, faults: [500, 500, 500, 500, 500] })) },
];

const STACK = /\n\s+at \S|unexpected: please report it/;

export function emptyStats(): FaultFuzzStats {
  return { runs: 0, singleFaultRuns: 0, faults: 0, restarts: 0, byFault: {}, byCall: {}, stagesFailed: 0, stagesFailedBySingleFault: 0, hangs: 0, stackTraces: 0, otherProblems: 0 };
}

/** One run under `plan`; counts into `stats`, and throws (for fast-check to shrink) when the run did not ride it out. */
export async function runPlan(plan: FaultPlan, stats: FaultFuzzStats): Promise<void> {
  const total = plan.injections.reduce((n, i) => n + i.faults.length, 0);
  const isSingle = total === 1 && plan.restartMs === undefined;
  stats.runs++;
  if (isSingle) stats.singleFaultRuns++;
  stats.faults += total;
  for (const i of plan.injections) {
    const call = TARGETS[i.target]!.what;
    stats.byCall[call] = (stats.byCall[call] ?? 0) + i.faults.length;
    for (const f of i.faults) stats.byFault[String(f)] = (stats.byFault[String(f)] ?? 0) + 1;
  }
  // Logs replayed fast: the faults, not the log, are what these runs are about.
  await withKube({ linesPerTick: 8 }, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    for (const i of plan.injections) kube.inject(TARGETS[i.target]!.verb, TARGETS[i.target]!.path, ...i.faults);
    const controller = new AbortController();
    const { rec, done } = startRun(PIPELINE, kube, { signal: controller.signal });
    const outcome = done.then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    // The sft pod is held Running until every fault was served, so they all meet the run mid-stage.
    await waitFor(() => kube.pendingFaults() === 0, 20_000, 'the faults to be served').catch(() => undefined);
    if (plan.restartMs !== undefined) {
      stats.restarts++;
      kube.interrupt(plan.restartMs);
      await new Promise((r) => setTimeout(r, plan.restartMs));
    }
    kube.release('sft');
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 30_000)));
    const ended = await Promise.race([outcome, hung]);
    clearTimeout(timer);
    if (ended === 'hung') {
      stats.hangs++;
      controller.abort();
      await outcome;
      throw new Error(`the run did not end 30 s after its faults\n${rec.output()}`);
    }
    if ('error' in ended) {
      const error = ended.error as Error;
      if (error?.name !== 'RunnerError' || STACK.test(error.message)) stats.stackTraces++;
      throw new Error(`the run threw ${error?.name}: ${error?.message}\n${rec.output()}`);
    }
    const failed = ended.result.stages.filter((s) => s.status === 'failed');
    stats.stagesFailed += failed.length;
    if (isSingle) stats.stagesFailedBySingleFault += failed.length;
    if (failed.some((s) => STACK.test(s.failure?.message ?? ''))) stats.stackTraces++;
    const problem = survivalProblem(kube, ended.result, SFT);
    if (problem) {
      if (failed.length === 0) stats.otherProblems++;
      throw new Error(`${problem}\n${rec.output()}`);
    }
  });
}

/** Runs the fuzzer: the matrix examples first, then `runs` random plans. */
export async function fuzzFaults(runs: number, seed: number | undefined): Promise<FaultFuzzStats> {
  const stats = emptyStats();
  await fc.assert(
    fc.asyncProperty(faultPlan, (plan) => runPlan(plan, stats)),
    { numRuns: runs, examples: MATRIX_EXAMPLES.map((p) => [p] as [FaultPlan]), endOnFailure: true, ...(seed !== undefined ? { seed } : {}) },
  );
  return stats;
}
