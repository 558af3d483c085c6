import type { CompiledStage, KubeObject } from '@tunepipe/core';

/** How long `pulumi up` may wait for workloads, relative to what the compiler expects. */
export interface TimeoutPolicy {
  /** Multiplier on a stage's expected run time. @default 2 */
  readonly factor?: number;
  /**
   * Added to every workload's wait: time before the stage's own clock starts (Kueue admission,
   * GPU node scale-up from zero, pulling a multi-GB image). @default 900
   */
  readonly startupAllowanceSeconds?: number;
}

export const DEFAULT_TIMEOUT_FACTOR = 2;
export const DEFAULT_STARTUP_ALLOWANCE_SECONDS = 900;

/**
 * Seconds `pulumi up` waits for a stage's workload before it gives up.
 *
 * The wait must outlast the stage's own Kubernetes deadline (`activeDeadlineSeconds` of a Job,
 * `progressDeadlineSeconds` of a Deployment): then a stage that runs too long fails with
 * Kubernetes' reason (DeadlineExceeded) instead of a Pulumi timeout that leaves the Job running.
 */
export function workloadTimeoutSeconds(stage: CompiledStage, workload: KubeObject, policy: TimeoutPolicy = {}): number {
  const factor = policy.factor ?? DEFAULT_TIMEOUT_FACTOR;
  const allowance = policy.startupAllowanceSeconds ?? DEFAULT_STARTUP_ALLOWANCE_SECONDS;
  const scaled = Math.ceil(stage.expectedSeconds * factor);
  return Math.max(scaled, kubernetesDeadlineSeconds(workload) ?? 0) + allowance;
}

const DEADLINE_FIELD: Readonly<Record<string, string>> = {
  Job: 'activeDeadlineSeconds',
  Deployment: 'progressDeadlineSeconds',
};

function kubernetesDeadlineSeconds(workload: KubeObject): number | undefined {
  const field = workload.kind === undefined ? undefined : DEADLINE_FIELD[workload.kind];
  const value = field === undefined ? undefined : (workload as { spec?: Record<string, unknown> }).spec?.[field];
  return typeof value === 'number' ? value : undefined;
}

/** Pulumi duration string (Go `time.ParseDuration` syntax). */
export function pulumiDuration(seconds: number): string {
  return `${seconds}s`;
}
