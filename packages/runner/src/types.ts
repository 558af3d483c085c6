import type { StageKind } from '@tunepipe/core/compiled';
import type { LogProgress } from './progress/parse.ts';

/**
 * Where a stage is. `queued` means it waits for capacity (Kueue has not admitted the Job, or no
 * node can take its pod yet, e.g. no GPU node); `retrying` means a pod was lost (preemption, node
 * gone) or failed and Kubernetes is starting another; `blocked` means an upstream stage failed;
 * `skipped` means it was not selected (`--only`).
 */
export type StageStatus =
  | 'waiting'
  | 'cached'
  | 'queued'
  | 'starting'
  | 'running'
  | 'retrying'
  | 'done'
  | 'failed'
  | 'blocked'
  | 'skipped'
  | 'stopped';

export const TERMINAL_STATUSES: ReadonlySet<StageStatus> = new Set(['cached', 'done', 'failed', 'blocked', 'skipped', 'stopped']);

export interface StageFailure {
  /** Short machine-ish reason: `BackoffLimitExceeded`, `exit code 1`, `ProgressDeadlineExceeded`. */
  readonly reason: string;
  readonly message?: string;
  /** Where the log lines come from (pod name or local log file). */
  readonly source?: string;
  /** The last lines the stage printed (20 by default). */
  readonly logTail: readonly string[];
}

/**
 * A multi-node training gang: the pods of one Indexed Job that Kueue admits together (one
 * Workload, one pod set of `size`) and that run one torchrun job between them.
 */
export interface GangProgress {
  /** Pods (nodes) of the gang: the Job's parallelism. */
  readonly size: number;
  /** Kueue admitted the gang's Workload (the Job is not suspended). */
  readonly admitted: boolean;
  /** Pods of the current gang that exist (not finished, not being deleted). */
  readonly created: number;
  readonly running: number;
  /** Ranks of the current gang that exited successfully (they end together, one after the other). */
  readonly finished: number;
  /**
   * Times Kueue took the whole gang away (evicted its Workload) while this run watched; a
   * replacement, not a failure. `status` only sees whether it is evicted now.
   */
  readonly evictions: number;
  /** The pod with completion index 0, whose log is the stage's progress. */
  readonly rank0Pod?: string;
}

export interface StageState {
  readonly stage: string;
  readonly kind: StageKind;
  readonly hash: string;
  readonly status: StageStatus;
  /** One line of context: why it is queued, which pod, what it waits for. */
  readonly detail?: string;
  /** Parsed from the stage's log. */
  readonly progress?: LogProgress;
  /** Pods (or processes) started for this stage in this run. */
  readonly attempts: number;
  /** Pods lost to preemption or node loss. */
  readonly preemptions: number;
  /** Epoch milliseconds. */
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly expectedSeconds: number;
  readonly failure?: StageFailure;
  /** Where a served model answers, once ready. */
  readonly endpoint?: string;
  /** Whether `--force` applies to this stage. */
  readonly forced?: boolean;
  /** A multi-node stage: its gang's admission and pods. */
  readonly gang?: GangProgress;
}

export type RunTarget = 'cluster' | 'local';

export type RunOutcome = 'succeeded' | 'failed' | 'detached' | 'stopped';

export interface RunResult {
  readonly pipeline: string;
  readonly target: RunTarget;
  readonly outcome: RunOutcome;
  readonly stages: readonly StageState[];
  /** Namespace (cluster) or artifacts folder (local). */
  readonly where: string;
  readonly startedAt: number;
  readonly finishedAt: number;
}

/** Receives the run's state as it changes; `createConsoleReporter` draws it. */
export interface RunReporter {
  start(info: { readonly pipeline: string; readonly target: RunTarget; readonly where: string; readonly stages: readonly StageState[] }): void;
  update(state: StageState): void;
  /** A one-off note (a checkpoint moved aside, a Job recreated). */
  note(stage: string | undefined, message: string): void;
  finish(result: RunResult): void;
}

/** A reporter that ignores everything. */
export const silentReporter: RunReporter = {
  start() {},
  update() {},
  note() {},
  finish() {},
};

/**
 * An error the user can act on (bad flag, missing tool, unreachable cluster). The CLI prints
 * `message` and exits 1 without a stack trace.
 */
export class RunnerError extends Error {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super(problems.length > 0 ? `${message}\n${problems.map((p) => `  - ${p}`).join('\n')}` : message);
    this.name = 'RunnerError';
    this.problems = problems;
  }
}
