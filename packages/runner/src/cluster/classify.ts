import type { V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { LABELS } from '@tunepipe/core/labels';
import type { GangProgress, StageStatus } from '../types.ts';

/** What a Job and its pods say about a stage right now. */
export interface WorkloadSnapshot {
  readonly status: Extract<StageStatus, 'queued' | 'starting' | 'running' | 'retrying' | 'done' | 'failed'>;
  readonly detail?: string;
  /** Pods created for the Job so far. */
  readonly attempts: number;
  /** Pods lost to preemption, eviction or node shutdown (DisruptionTarget). */
  readonly preemptions: number;
  /** The newest pod: the one whose log tells the current progress. */
  readonly currentPod?: string;
  /** The container of `currentPod` worth reading: the running one (init containers included), else the one that failed. */
  readonly currentContainer?: string;
  /** Whether the newest pod's container has started (its log can be read). */
  readonly logReadable: boolean;
  readonly failure?: { readonly reason: string; readonly message?: string; readonly pod?: string };
  /** For a Job that runs several pods at once (a multi-node training gang): where the gang is. */
  readonly gang?: GangProgress;
}

/** The parts of a Kueue Workload (kueue.x-k8s.io) the runner reads. */
export interface KueueWorkload {
  readonly metadata?: { readonly name?: string; readonly labels?: Readonly<Record<string, string>> };
  readonly spec?: { readonly podSets?: readonly { readonly name: string; readonly count?: number }[] };
  readonly status?: {
    readonly conditions?: readonly { readonly type: string; readonly status: string; readonly reason?: string; readonly message?: string; readonly lastTransitionTime?: string }[];
  };
}

/** Label Kueue puts on the Workload it makes for a Job: the Job's uid. */
export const KUEUE_JOB_UID_LABEL = 'kueue.x-k8s.io/job-uid';
/** Label (and annotation) the Job controller puts on each pod of an Indexed Job. */
export const COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';

/** The pods a Job runs at once when it is a gang (parallelism above 1), else undefined. */
export function gangSize(job: V1Job): number | undefined {
  const parallelism = job.spec?.parallelism ?? 1;
  return parallelism > 1 ? parallelism : undefined;
}

/** A pod's completion index (its rank in an Indexed Job), if it has one. */
export function completionIndex(pod: V1Pod): number | undefined {
  const value = pod.metadata?.labels?.[COMPLETION_INDEX] ?? pod.metadata?.annotations?.[COMPLETION_INDEX];
  const index = value === undefined ? Number.NaN : Number(value);
  return Number.isInteger(index) ? index : undefined;
}

/** Kueue evicted the Workload and has not admitted it again (preempted, or its pods were not ready in time). */
export function workloadEviction(workload: KueueWorkload | undefined): { reason: string; message?: string; at?: string } | undefined {
  const conditions = workload?.status?.conditions ?? [];
  const evicted = conditions.find((c) => c.type === 'Evicted' && c.status === 'True');
  if (!evicted || conditions.some((c) => c.type === 'Admitted' && c.status === 'True')) return undefined;
  return { reason: evicted.reason ?? 'Evicted', ...(evicted.message ? { message: evicted.message } : {}), ...(evicted.lastTransitionTime ? { at: evicted.lastTransitionTime } : {}) };
}

/** Why Kueue has not reserved quota for the Workload yet, in its own words. */
export function quotaPending(workload: KueueWorkload | undefined): string | undefined {
  const reserved = workload?.status?.conditions?.find((c) => c.type === 'QuotaReserved');
  return reserved?.status === 'False' ? (reserved.message ?? reserved.reason ?? 'no quota yet') : undefined;
}

const gpusOf = (job: V1Job): number => {
  const containers = job.spec?.template?.spec?.containers ?? [];
  return containers.reduce((n, c) => n + Number(c.resources?.limits?.['nvidia.com/gpu'] ?? c.resources?.requests?.['nvidia.com/gpu'] ?? 0), 0);
};

function condition(conditions: readonly { type: string; status: string; reason?: string; message?: string }[] | undefined, type: string) {
  return conditions?.find((c) => c.type === type && c.status === 'True');
}

function time(value: Date | string | undefined): number {
  if (!value) return 0;
  return value instanceof Date ? value.getTime() : Date.parse(value);
}

/** Pods oldest first (creation time, then name). */
export function sortPods(pods: readonly V1Pod[]): V1Pod[] {
  return [...pods].sort(
    (a, b) =>
      time(a.metadata?.creationTimestamp) - time(b.metadata?.creationTimestamp) ||
      (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
}

/** A pod the cluster took away (preemption, eviction, node drain or loss), not one that failed on its own. */
export function isDisrupted(pod: V1Pod): boolean {
  return Boolean(condition(pod.status?.conditions, 'DisruptionTarget')) || pod.status?.reason === 'Evicted';
}

/**
 * The container whose log matters now: a running init container (a gated evaluation trains in
 * one), else the running container, else the one that failed, else the first.
 */
export function activeContainer(pod: V1Pod): { readonly name: string; readonly started: boolean } | undefined {
  const inits = pod.status?.initContainerStatuses ?? [];
  const mains = pod.status?.containerStatuses ?? [];
  const running = inits.find((c) => c.state?.running) ?? mains.find((c) => c.state?.running);
  if (running) return { name: running.name, started: true };
  const failed = [...inits, ...mains].find((c) => c.state?.terminated && c.state.terminated.exitCode !== 0);
  if (failed) return { name: failed.name, started: true };
  const finished = [...mains, ...inits].find((c) => c.state?.terminated);
  if (finished) return { name: finished.name, started: true };
  const first = pod.spec?.containers?.[0]?.name;
  return first ? { name: first, started: false } : undefined;
}

function runningInit(pod: V1Pod): string | undefined {
  return pod.status?.initContainerStatuses?.find((c) => c.state?.running)?.name;
}

function waitingReason(pod: V1Pod): string | undefined {
  for (const cs of pod.status?.containerStatuses ?? []) {
    const w = cs.state?.waiting;
    if (w?.reason) return w.message ? `${w.reason}: ${w.message}` : w.reason;
  }
  return undefined;
}

function terminatedReason(pod: V1Pod): string | undefined {
  for (const cs of pod.status?.containerStatuses ?? []) {
    const t = cs.state?.terminated;
    if (t) return `${t.reason ?? 'terminated'} (exit code ${t.exitCode})`;
  }
  return undefined;
}

function disruptionReason(pod: V1Pod): string {
  const c = condition(pod.status?.conditions, 'DisruptionTarget');
  return c?.reason ?? pod.status?.reason ?? 'disrupted';
}

/** Pod stuck because no node fits it (no GPU node yet, quota): the message says why. */
export function unschedulable(pod: V1Pod): string | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === 'PodScheduled' && x.status === 'False');
  if (c && c.reason === 'Unschedulable') return c.message ?? 'no node fits the pod';
  return undefined;
}

/**
 * Classifies a stage's Job: done / failed from the Job's conditions; queued while Kueue keeps it
 * suspended or no node can take its pod; retrying while a replacement for a lost or failed pod
 * starts; otherwise starting or running.
 */
export function classifyJob(job: V1Job, pods: readonly V1Pod[], workload?: KueueWorkload): WorkloadSnapshot {
  const sorted = sortPods(pods);
  const size = gangSize(job);
  // A gang's progress is rank 0's log alone: every rank prints its own bars and numbers.
  const latest = size ? sorted.filter((p) => completionIndex(p) === 0).at(-1) : sorted.at(-1);
  const preemptions = sorted.filter(isDisrupted).length;
  const container = latest ? activeContainer(latest) : undefined;
  const base = {
    attempts: sorted.length,
    preemptions,
    ...(latest?.metadata?.name ? { currentPod: latest.metadata.name } : {}),
    ...(container ? { currentContainer: container.name } : {}),
    logReadable: container?.started ?? false,
  };
  if (size) return classifyGang(job, sorted, size, base, workload);
  const conditions = job.status?.conditions;
  if (condition(conditions, 'Complete')) return { ...base, status: 'done' };
  const failed = condition(conditions, 'Failed');
  if (failed) {
    const lastFailed = [...sorted].reverse().find((p) => p.status?.phase === 'Failed');
    return {
      ...base,
      status: 'failed',
      failure: {
        reason: failed.reason ?? 'Failed',
        ...(failed.message || (lastFailed && terminatedReason(lastFailed))
          ? { message: [failed.message, lastFailed && terminatedReason(lastFailed)].filter(Boolean).join('; ') }
          : {}),
        ...(lastFailed?.metadata?.name ? { pod: lastFailed.metadata.name } : {}),
      },
    };
  }
  if (job.spec?.suspend) {
    const queue = job.metadata?.labels?.[LABELS.kueueQueue];
    return {
      ...base,
      status: 'queued',
      detail: queue ? `waiting for Kueue to admit it (queue ${queue})` : 'Job is suspended',
    };
  }
  if (!latest) return { ...base, status: preemptions > 0 ? 'retrying' : 'starting', detail: 'creating pod' };

  const phase = latest.status?.phase;
  const lost = preemptions > 0 ? `pod lost ${preemptions}× (${disruptionReason([...sorted].reverse().find(isDisrupted)!)})` : undefined;
  if (phase === 'Pending') {
    const why = unschedulable(latest);
    if (why) return { ...base, status: 'queued', detail: `no node can take the pod yet: ${why}` };
    if (runningInit(latest)) return { ...base, status: 'running', ...(lost ? { detail: `resumed after ${lost}` } : {}) };
    if (lost) return { ...base, status: 'retrying', detail: `${lost}; new pod starting` };
    const waiting = waitingReason(latest);
    return { ...base, status: 'starting', detail: waiting ?? 'pod scheduled' };
  }
  if (phase === 'Running') {
    return { ...base, status: 'running', ...(lost ? { detail: `resumed after ${lost}` } : {}) };
  }
  if (phase === 'Failed') {
    if (isDisrupted(latest)) {
      return { ...base, status: 'retrying', detail: `pod ${latest.metadata?.name} lost (${disruptionReason(latest)}); Kubernetes starts a new one` };
    }
    const failedPods = sorted.filter((p) => p.status?.phase === 'Failed' && !isDisrupted(p)).length;
    const limit = job.spec?.backoffLimit ?? 6;
    return {
      ...base,
      status: 'retrying',
      detail: `attempt failed: ${terminatedReason(latest) ?? 'error'}; retry ${failedPods} of ${limit}`,
    };
  }
  // Succeeded pod, Job condition not written yet.
  return { ...base, status: 'running', detail: 'finishing' };
}

type SnapshotBase = Pick<WorkloadSnapshot, 'attempts' | 'preemptions' | 'currentPod' | 'currentContainer' | 'logReadable'>;

/**
 * A gang Job: done and failed as any Job; otherwise said as a gang: waiting for Kueue's
 * admission (with Kueue's reason: quota, or an eviction it has not re-admitted yet), then N of
 * N pods created and running. Never "pending pods" while Kueue holds the whole gang back.
 */
function classifyGang(job: V1Job, sorted: readonly V1Pod[], size: number, base: SnapshotBase, workload: KueueWorkload | undefined): WorkloadSnapshot {
  const live = sorted.filter((p) => (p.status?.phase === 'Pending' || p.status?.phase === 'Running') && !p.metadata?.deletionTimestamp && !isDisrupted(p));
  const running = live.filter((p) => p.status?.phase === 'Running' || runningInit(p)).length;
  const eviction = workloadEviction(workload);
  const admitted = !job.spec?.suspend;
  const finished = new Set(sorted.filter((p) => p.status?.phase === 'Succeeded').map(completionIndex)).size;
  const gang: GangProgress = {
    size,
    admitted,
    created: live.length,
    running,
    finished,
    evictions: 0,
    ...(base.currentPod ? { rank0Pod: base.currentPod } : {}),
  };
  const gpus = gpusOf(job);
  const what = `gang of ${size} pods${gpus > 0 ? ` × ${gpus} GPU` : ''}`;
  const plain = classifyJob({ ...job, spec: { ...job.spec, parallelism: 1 } } as V1Job, sorted);
  if (plain.status === 'done' || plain.status === 'failed') return { ...plain, ...base, gang };
  if (!admitted) {
    const queue = job.metadata?.labels?.[LABELS.kueueQueue];
    const pending = quotaPending(workload);
    const detail = eviction
      ? `${what} evicted by Kueue (${eviction.reason}); re-queued whole, every rank restarts together once admitted again${pending ? `: ${pending}` : ''}`
      : pending
        ? `${what} waiting for quota: ${pending}`
        : queue
          ? `${what} waiting for Kueue to admit it (queue ${queue})`
          : `${what}: Job is suspended`;
    return { ...base, status: 'queued', detail, gang };
  }
  // Ranks end together; between the first and the Job's Complete condition it is finishing.
  if (finished > 0) return { ...base, status: 'running', detail: `${what}: ${finished}/${size} ranks finished`, gang };
  const counts = `${live.length}/${size} pods created, ${running}/${size} running`;
  const stuck = live.map(unschedulable).find(Boolean);
  if (stuck) return { ...base, status: 'queued', detail: `${what} admitted; ${counts}; no node can take a pod yet: ${stuck}`, gang };
  if (running < size) return { ...base, status: 'starting', detail: `${what} admitted; ${counts}`, gang };
  return { ...base, status: 'running', detail: `${what}: ${running}/${size} running; progress from rank 0 (${base.currentPod})`, gang };
}

/** Classifies a serve Deployment: done once every replica runs the current template and is available. */
export function classifyDeployment(deployment: V1Deployment, pods: readonly V1Pod[]): WorkloadSnapshot {
  const sorted = sortPods(pods);
  const latest = sorted.at(-1);
  const container = latest ? activeContainer(latest) : undefined;
  const base = {
    attempts: sorted.length,
    preemptions: sorted.filter(isDisrupted).length,
    ...(latest?.metadata?.name ? { currentPod: latest.metadata.name } : {}),
    ...(container ? { currentContainer: container.name } : {}),
    logReadable: container?.started ?? false,
  };
  const want = deployment.spec?.replicas ?? 1;
  const st = deployment.status;
  const progressing = deployment.status?.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.status === 'False') {
    return {
      ...base,
      status: 'failed',
      failure: {
        reason: progressing.reason ?? 'ProgressDeadlineExceeded',
        ...(progressing.message ? { message: progressing.message } : {}),
        ...(latest?.metadata?.name ? { pod: latest.metadata.name } : {}),
      },
    };
  }
  const current = (st?.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);
  const available = Boolean(condition(st?.conditions, 'Available'));
  if (current && available && (st?.updatedReplicas ?? 0) >= want && (st?.availableReplicas ?? 0) >= want && (st?.replicas ?? 0) <= want) {
    return { ...base, status: 'done' };
  }
  const ready = `${st?.updatedReplicas ?? 0}/${want} updated, ${st?.availableReplicas ?? 0}/${want} available`;
  if (latest) {
    const why = unschedulable(latest);
    if (why) return { ...base, status: 'queued', detail: `no node can take the pod yet: ${why}` };
    const waiting = waitingReason(latest);
    if (latest.status?.phase === 'Running') {
      const restarts = latest.status.containerStatuses?.reduce((n, c) => n + (c.restartCount ?? 0), 0) ?? 0;
      return {
        ...base,
        status: 'running',
        detail: `${ready}${waiting ? `; ${waiting}` : ''}${restarts > 0 ? `; ${restarts} restarts` : ''}`,
      };
    }
    const init = runningInit(latest);
    if (init) return { ...base, status: 'starting', detail: `${ready}; init container ${init} running` };
    return { ...base, status: 'starting', detail: `${ready}${waiting ? `; ${waiting}` : ''}` };
  }
  return { ...base, status: 'starting', detail: ready };
}
