import type { KubeConfig, KubernetesObject, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { sharedObjects, type CompiledPipeline, type CompiledStage } from '@tunepipe/core/compiled';
import { LABELS } from '@tunepipe/core/labels';
import { markerCheckJob, STAGE_ENV } from '@tunepipe/core';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Service } from 'kubernetes-types/core/v1.js';
import { selectStages, type SelectionOptions } from '../graph.ts';
import { createConsoleReporter } from '../progress/reporter.ts';
import { runGraph, type StageContext, type StageOutcome } from '../scheduler.ts';
import { RunnerError, type RunReporter, type RunResult, type StageFailure } from '../types.ts';
import { activeContainer, classifyDeployment, classifyJob, gangSize, isDisrupted, KUEUE_JOB_UID_LABEL, workloadEviction, type KueueWorkload, type WorkloadSnapshot } from './classify.ts';
import { PodLogFollower } from './follow.ts';
import { ApiOutageError, DEPLOYMENTS, JOBS, KubeClient, PODS, WORKLOADS, RequestAbortedError, loadKubeConfig, type BackoffOptions } from './kube.ts';
import { acquireRunLock, NO_LOCK, type RunLock, type RunLockOptions } from './lease.ts';
import { Informer, sleep, Waker } from './watch.ts';

export interface MarkerCheckOptions {
  /**
   * Image with a POSIX shell. @default the pipeline's runtime image (tunepipe's pinned one, or the
   * override the pipeline was compiled with)
   */
  readonly image?: string;
  /** Give up (and let the stages run) after this long. @default 180000 */
  readonly timeoutMs?: number;
}

export interface ClusterRunOptions extends SelectionOptions {
  /** @default loadKubeConfig(): $KUBECONFIG, ~/.kube/config or in-cluster */
  readonly kubeConfig?: KubeConfig;
  /** @default the compiled pipeline's namespace */
  readonly namespace?: string;
  /** @default createConsoleReporter() */
  readonly reporter?: RunReporter;
  /** Abort to detach: the runner stops watching (ending any request in flight) and leaves the Jobs running. */
  readonly signal?: AbortSignal;
  /**
   * Stages are watched (list+watch with resourceVersion and bookmarks), not polled. This is the
   * slow poll used instead when the API refuses watches, and the upper bound of a few short
   * waits (the marker check, log streams that are not readable yet). @default 15000
   */
  readonly pollIntervalMs?: number;
  /**
   * How long the run rides out an API server it cannot reach (or that answers 5xx/429) before
   * it stops, with a message naming what was in flight and which Jobs are still in the cluster.
   * Nothing is deleted either way. @default 300000
   */
  readonly apiOutageMs?: number;
  /** Longest wait for one API answer (for a watch: for its headers). @default 30000 */
  readonly requestTimeoutMs?: number;
  /** Backoff between retries of a failed API call. @default { initialMs: 250, maxMs: 8000 } */
  readonly retryBackoff?: BackoffOptions;
  /** A watch silent this long (not even a bookmark) is re-opened. @default 150000 */
  readonly watchIdleMs?: number;
  /**
   * The run lock: a Lease per pipeline and namespace, so two runs never steer the same Jobs.
   * Held by another live run, this run follows that run's stages read-only and takes over what
   * is left when it ends (`whenHeld: 'fail'` stops at once instead). `false` runs without it.
   * @default {}
   */
  readonly lock?: false | RunLockOptions;
  /** Log lines shown for a failed stage. @default 20 */
  readonly logTailLines?: number;
  /**
   * When a stage's Job is gone (cleaned up after it finished), look for its completion marker on
   * the artifacts volume with one small CPU pod instead of starting the stage's (GPU) pod.
   * `false` turns it off. @default {}
   */
  readonly markerCheck?: false | MarkerCheckOptions;
  readonly now?: () => number;
}

/** How a stage that waits for the run lock says so (its detail line starts with this). */
const HELD_BACK = 'waiting for the run lock:';

const hasCondition = (job: V1Job, type: string) => job.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

/** Pods of an earlier Job of the same name (deleted for --force, still terminating) are not this Job's. */
function ownedBy(pod: V1Pod, uid: string | undefined): boolean {
  if (!uid) return true;
  const labels = pod.metadata?.labels ?? {};
  const owner = pod.metadata?.ownerReferences?.find((o) => o.kind === 'Job')?.uid ?? labels['batch.kubernetes.io/controller-uid'] ?? labels['controller-uid'];
  return owner === undefined || owner === uid;
}

const unfinished = (pod: V1Pod) => {
  const phase = pod.status?.phase;
  return (phase === 'Pending' || phase === 'Running') && !pod.metadata?.deletionTimestamp && !isDisrupted(pod);
};

/**
 * Counts a Job's pods across watch events: every pod seen is an attempt; a pod is lost when it
 * shows DisruptionTarget, or when it is deleted while it was still pending or running (an
 * evicted or preempted pod is deleted moments after it stops, often before its last state is
 * seen).
 */
class PodLedger {
  readonly #seen = new Set<string>();
  readonly #lost = new Map<string, string>();

  /** The pods lost since the last call, with the reason to tell. */
  observe(present: readonly V1Pod[], deleted: readonly V1Pod[]): { pod: string; why: string }[] {
    const fresh: { pod: string; why: string }[] = [];
    const lose = (name: string, why: string) => {
      if (this.#lost.has(name)) return;
      this.#lost.set(name, why);
      fresh.push({ pod: name, why });
    };
    for (const pod of [...present, ...deleted]) if (pod.metadata?.name) this.#seen.add(pod.metadata.name);
    for (const pod of present) {
      if (pod.metadata?.name && isDisrupted(pod)) lose(pod.metadata.name, pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget')?.reason ?? 'disrupted');
    }
    for (const pod of deleted) {
      const name = pod.metadata?.name;
      if (!name) continue;
      if (isDisrupted(pod)) lose(name, pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget')?.reason ?? 'disrupted');
      else if (unfinished(pod)) lose(name, 'deleted before it finished: preempted, evicted or its node went away');
    }
    return fresh;
  }

  get attempts(): number {
    return this.#seen.size;
  }

  get lost(): number {
    return this.#lost.size;
  }
}

/**
 * Tells a gang's story across watch events: Kueue taking the whole gang away (its Workload
 * evicted, the Job suspended again after it ran) is one replacement of every rank, told once and
 * never a failure; it is counted by the eviction, not by the pods it removed. A pod lost while
 * the gang stays admitted (one node drained) is told as a lost pod, but only after `graceMs`:
 * the pods of an evicted gang may be seen gone before the Job is seen suspended.
 */
class GangWatch {
  #admitted = false;
  #evictions = 0;
  #singleLosses = 0;
  #unexplained: { pod: string; why: string; at: number }[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly job: string,
    readonly resumes: string,
    readonly note: (message: string) => void,
    readonly graceMs: number,
    readonly wake: () => void,
  ) {}

  get preemptions(): number {
    return this.#evictions + this.#singleLosses;
  }

  observe(job: V1Job, snap: WorkloadSnapshot, workload: KueueWorkload | undefined, lost: readonly { pod: string; why: string }[]): WorkloadSnapshot {
    const size = snap.gang?.size ?? gangSize(job) ?? 1;
    const eviction = workloadEviction(workload);
    const held = Boolean(job.spec?.suspend) || eviction !== undefined;
    if (held && this.#admitted) {
      this.#admitted = false;
      this.#evictions++;
      const why = eviction ? `${eviction.reason}${eviction.message ? `: ${eviction.message.split(';')[0]}` : ''}` : 'the Job was suspended again';
      this.note(`Kueue evicted the gang (${why}): all ${size} pods of Job ${this.job} stop and the gang is re-queued whole; every rank restarts together once Kueue admits it again${this.resumes}`);
    } else if (!held && !this.#admitted && job.status?.startTime !== undefined) {
      if (this.#evictions > 0) this.note(`Kueue admitted the gang again: ${size} new pods start together`);
      this.#admitted = true;
    }
    const now = Date.now();
    if (held) this.#unexplained = [];
    else this.#unexplained.push(...lost.map((l) => ({ ...l, at: now })));
    const due = this.#unexplained.filter((l) => now - l.at >= this.graceMs);
    this.#unexplained = this.#unexplained.filter((l) => now - l.at < this.graceMs);
    for (const { pod, why } of due) {
      this.#singleLosses++;
      this.note(`pod ${pod} of the gang was lost (${why}); Kubernetes starts a new one for its rank`);
    }
    clearTimeout(this.#timer);
    if (this.#unexplained.length > 0) this.#timer = setTimeout(this.wake, this.graceMs);
    let detail = snap.detail;
    // Without the Workload (not readable), a gang suspended after it ran was still evicted.
    if (held && !eviction && this.#evictions > 0 && snap.status === 'queued') {
      detail = `gang of ${size} pods evicted by Kueue (its Job was suspended again); re-queued whole, every rank restarts together once admitted again`;
    }
    return { ...snap, ...(detail ? { detail } : {}), ...(snap.gang ? { gang: { ...snap.gang, evictions: this.#evictions } } : {}) };
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** What a stage was doing when the run had to stop, for the message that says what is left in the cluster. */
interface InFlight {
  was: string;
  /** What this run knows of the stage's workload in the cluster. */
  workload: 'not applied' | 'applying' | 'exists';
  pod?: string;
}

/** The stage's objects as the runner applies them: namespaced, and for a forced Job, with TUNEPIPE_FORCE=1. */
export function objectsToApply(stage: CompiledStage, namespace: string, options: { forced?: boolean; restartedAt?: string } = {}): KubernetesObject[] {
  return stage.objects.map((original) => {
    const object = structuredClone(original) as unknown as KubernetesObject;
    object.metadata = { ...object.metadata, namespace };
    if (options.forced && object.kind === 'Job') {
      const job = object as unknown as Job;
      const podSpec = job.spec?.template.spec;
      for (const container of [...(podSpec?.initContainers ?? []), ...(podSpec?.containers ?? [])]) {
        const env = (container.env ?? []).filter((e) => e.name !== STAGE_ENV.force);
        (container as { env?: unknown }).env = [...env, { name: STAGE_ENV.force, value: '1' }];
      }
    }
    if (options.restartedAt && object.kind === 'Deployment') {
      const template = (object as unknown as Deployment).spec?.template;
      if (template) {
        (template as { metadata?: unknown }).metadata = {
          ...template.metadata,
          annotations: { ...template.metadata?.annotations, 'kubectl.kubernetes.io/restartedAt': options.restartedAt },
        };
      }
    }
    return object;
  });
}

function serviceEndpoint(stage: CompiledStage, namespace: string): string | undefined {
  const service = stage.objects.find((o) => o.kind === 'Service') as Service | undefined;
  const port = service?.spec?.ports?.[0]?.port;
  if (!service?.metadata?.name || port === undefined) return undefined;
  return `http://${service.metadata.name}.${namespace}.svc:${port}/v1`;
}

/**
 * Runs a compiled pipeline on a cluster: takes the pipeline's run lock (or, while another run
 * holds it, follows that run's Jobs read-only until it ends), server-side applies each
 * stage's objects in graph order, watches its Job (or serve Deployment), its pods and its log,
 * and starts dependents as stages finish. Stages whose Job already completed for the same hash
 * are shown as cached and not touched. API failures are retried; an outage longer than
 * `apiOutageMs` ends the run with the Jobs left as they are and a message saying what to do.
 */
export async function runOnCluster(pipeline: CompiledPipeline, options: ClusterRunOptions = {}): Promise<RunResult> {
  const selection = selectStages(pipeline, options);
  // A JobSet's pods belong to Jobs its controller makes and remakes (a restart of the whole gang
  // is a new Job): this runner follows a stage's own Job, so it says so before changing anything.
  const jobSets = pipeline.stages.filter((s) => selection.selected.has(s.name) && s.workload.kind === 'JobSet');
  if (jobSets.length > 0) {
    throw new RunnerError(
      `cannot run ${pipeline.pipeline} on the cluster from here: ${jobSets.map((s) => `stage ${s.name} is a JobSet`).join(', ')} (tunepipe.json multiNode "jobset"), and \`tunepipe run --target cluster\` follows Indexed Jobs only`,
      ['set multiNode to "indexed-job" (the default) to run it with tunepipe, or deploy the JobSet with `tunepipe synth` and GitOps or Pulumi (infra/pipelines)'],
    );
  }
  const namespace = options.namespace ?? pipeline.namespace;
  const reporter = options.reporter ?? createConsoleReporter();
  const pollMs = options.pollIntervalMs ?? 15_000;
  const tailLines = options.logTailLines ?? 20;
  const now = options.now ?? Date.now;
  const userSignal = options.signal ?? new AbortController().signal;
  // The run also ends itself: an API outage past the budget, or its lock taken over.
  const stop = new AbortController();
  const signal = AbortSignal.any([userSignal, stop.signal]);
  let ended: { readonly outage: ApiOutageError } | { readonly lockLost: string } | undefined;
  const endRun = (why: NonNullable<typeof ended>) => {
    if (ended) return;
    ended = why;
    stop.abort();
  };
  const client = new KubeClient(options.kubeConfig ?? (await loadKubeConfig()), {
    signal,
    retryBudgetMs: options.apiOutageMs ?? 300_000,
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    ...(options.retryBackoff ? { backoff: options.retryBackoff } : {}),
    onNote: (message) => reporter.note(undefined, message),
  });
  const informerOptions = (waker: Waker) => ({ signal, onChange: waker.wake, pollMs, ...(options.watchIdleMs !== undefined ? { idleMs: options.watchIdleMs } : {}) });
  const drainMs = clamp(pollMs * 2, 200, 2000);
  const followRetryMs = clamp(pollMs, 50, 1000);
  // Waits are woken by watch events; this only bounds a wait nothing wakes.
  const safetyMs = 30_000;
  const cmd = 'tunepipe';
  const ns = `--namespace ${namespace}`;

  /** The failure of a stage the run stopped watching because the API could not be reached. */
  const unreachable = (stage: CompiledStage, ctx: StageContext, outage: ApiOutageError, inFlight: InFlight): StageFailure => {
    const workload = `${stage.workload.kind} ${stage.workload.name}`;
    const status = ctx.state().status;
    const left =
      inFlight.workload === 'exists'
        ? `${workload} was ${status}${inFlight.pod ? ` (pod ${inFlight.pod})` : ''} and is still in the cluster: nothing was deleted`
        : inFlight.workload === 'applying'
          ? `${workload} may or may not have been created`
          : `this run had not applied ${workload} yet`;
    return {
      reason: 'ApiUnreachable',
      message: [
        outage.message,
        `  in flight: ${inFlight.was}; ${left}`,
        `  fix: once the API answers, \`${cmd} run ${pipeline.pipeline} --target cluster ${ns}\` reattaches to it (finished stages show as cached); \`${cmd} cancel ${pipeline.pipeline} ${ns}\` stops it`,
      ].join('\n'),
      logTail: [],
    };
  };

  /** How a stage ends when the run stops watching: the API outage, Ctrl-C, or a lost lock. */
  const stopped = (stage: CompiledStage, ctx: StageContext, error: unknown, inFlight: InFlight): StageOutcome => {
    if (error instanceof ApiOutageError) endRun({ outage: error });
    if (!(error instanceof ApiOutageError || error instanceof RequestAbortedError || signal.aborted)) throw error;
    if (ended && 'outage' in ended) {
      ctx.update({ failure: unreachable(stage, ctx, ended.outage, inFlight) });
      return 'failed';
    }
    return 'detached';
  };

  // Objects of the pipeline that belong to no stage (shared ones), applied once before the first
  // stage runs or the marker check starts — never on a run whose stages are all cached Jobs.
  const shared = sharedObjects(pipeline);
  let sharedApplied: Promise<void> | undefined;
  const ensureShared = () =>
    (sharedApplied ??= (async () => {
      for (const original of shared) {
        const object = structuredClone(original) as unknown as KubernetesObject;
        if (object.metadata?.namespace) object.metadata = { ...object.metadata, namespace };
        await client.apply(object);
      }
    })());

  /** Stages whose completion markers were not looked for yet (the run lock was another run's); looked for once, when needed. */
  let uncheckedMarkers: readonly CompiledStage[] = [];
  let markerCheck: Promise<Set<string>> | undefined;
  const markersOnTheVolume = () =>
    (markerCheck ??= (async () => {
      await ensureShared();
      return checkMarkers(client, pipeline, namespace, uncheckedMarkers, options.markerCheck || {}, Math.min(pollMs, 1000), signal, reporter);
    })());

  /** A stage that must write while another run holds the lock: says so, and waits for a change (its watches, or the lock). */
  const holdBack = async (ctx: StageContext, waker: Waker) => {
    const detail = `${HELD_BACK} the ${lock.heldBy ?? 'other run'} holds it`;
    if (ctx.state().detail !== detail) ctx.update({ detail });
    await waker.wait(safetyMs, signal);
    if (signal.aborted) throw new RequestAbortedError();
  };

  const findCached = async (stages: readonly CompiledStage[]) => {
    const cached = new Map<string, string>();
    const missingJobs: CompiledStage[] = [];
    for (const stage of stages) {
      if (stage.workload.kind === 'Job') {
        const job = await client.readJob(namespace, stage.workload.name);
        if (job && hasCondition(job, 'Complete')) cached.set(stage.name, `Job ${stage.workload.name} already complete`);
        else if (!job && stage.completionMarker) missingJobs.push(stage);
      } else {
        const deployment = await client.readDeployment(namespace, stage.workload.name);
        // The label holds a prefix of the hash (label values stop at 63 characters).
        const label = deployment?.metadata?.labels?.[LABELS.stageHash];
        const sameHash = Boolean(label) && stage.hash.startsWith(label!);
        if (deployment && sameHash && classifyDeployment(deployment, []).status === 'done') {
          cached.set(stage.name, `Deployment ${stage.workload.name} already serving this hash`);
        }
      }
    }
    if (options.markerCheck !== false && missingJobs.length > 0 && !lock.held) {
      // The check is a Job of its own: it waits for the run lock, and runs only for the stages
      // the run holding the lock leaves without a Job.
      uncheckedMarkers = missingJobs;
    } else if (options.markerCheck !== false && missingJobs.length > 0) {
      // Shared objects (the artifacts claim, say) first: the check pod may need them.
      await ensureShared();
      const present = await checkMarkers(client, pipeline, namespace, missingJobs, options.markerCheck ?? {}, Math.min(pollMs, 1000), signal, reporter);
      for (const stage of missingJobs) {
        if (stage.completionMarker && present.has(stage.completionMarker)) {
          cached.set(stage.name, 'artifact complete on the volume (its Job was cleaned up)');
        }
      }
    }
    return cached;
  };

  const executeJob = async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
    const name = stage.workload.name;
    const waker = new Waker();
    const jobs = new Informer<V1Job>(client, JOBS(namespace), { fieldSelector: `metadata.name=${name}` }, `Job ${name}`, informerOptions(waker));
    const pods = new Informer<V1Pod>(client, PODS(namespace), { labelSelector: `job-name=${name}` }, `the pods of Job ${name}`, informerOptions(waker));
    let workloads: Informer<KueueWorkload & KubernetesObject> | undefined;
    let workloadsOf: string | undefined;
    let gang: GangWatch | undefined;
    const follower = new PodLogFollower(client, namespace, signal, (progress) => ctx.update({ progress }), { onStreamEnd: waker.wake, retryMs: followRetryMs });
    const inFlight: InFlight = { was: `reading Job ${name}`, workload: 'not applied' };
    lock.onHeld(waker.wake);
    const broken = () => {
      const failure = jobs.failure ?? pods.failure;
      if (failure) throw failure;
      if (signal.aborted) throw new RequestAbortedError();
    };
    try {
      jobs.start();
      pods.start();
      await Promise.all([jobs.ready(), pods.ready()]);
      broken();
      let uid: string | undefined;
      let forcePending = ctx.forced;
      for (;;) {
        broken();
        const existing = jobs.get(name);
        const failedBefore = existing !== undefined && hasCondition(existing, 'Failed');
        if (existing && !forcePending && !failedBefore) {
          uid = existing.metadata?.uid;
          ctx.note(lock.held ? `attached to Job ${name}, which is already running` : `following Job ${name} of the ${lock.heldBy} (read-only)`);
          inFlight.workload = 'exists';
          break;
        }
        // Creating or deleting a Job is for the run that holds the lock: until this run does, it
        // waits for that run to create the Job (then follows it), or to end (then takes over).
        if (!lock.held) {
          inFlight.was = `waiting for the run lock to ${existing ? 're-run' : 'create'} Job ${name}`;
          await holdBack(ctx, waker);
          continue;
        }
        if (ctx.state().detail?.startsWith(HELD_BACK)) ctx.update({ detail: undefined });
        if (existing) {
          ctx.note(
            forcePending
              ? `deleting Job ${name} to re-run it (--force)`
              : `Job ${name} failed in an earlier run (${existing.status?.conditions?.find((c) => c.type === 'Failed')?.reason ?? 'Failed'}); deleting it to retry`,
          );
          Object.assign(inFlight, { was: `deleting Job ${name} to re-run it`, workload: 'exists' });
          await client.deleteJob(namespace, name);
          for (broken(); jobs.get(name); broken()) await waker.wait(safetyMs, signal);
          forcePending = false;
          continue;
        }
        if (stage.completionMarker && uncheckedMarkers.includes(stage) && !jobs.seen(name)) {
          inFlight.was = 'checking the artifacts volume for completion markers';
          if ((await markersOnTheVolume()).has(stage.completionMarker)) {
            ctx.note('artifact complete on the volume (its Job was cleaned up): not run again');
            return 'done';
          }
        }
        Object.assign(inFlight, { was: `applying the objects of ${stage.name}`, workload: 'applying' });
        await ensureShared();
        for (const object of objectsToApply(stage, namespace, { forced: ctx.forced })) {
          const applied = await client.apply(object);
          if (object.kind === 'Job') {
            uid = applied.metadata?.uid;
            jobs.observe(applied as V1Job);
            inFlight.workload = 'exists';
          }
        }
        break;
      }
      inFlight.was = `watching Job ${name} and its pods`;
      const ledger = new PodLedger();
      const resumes = stage.kind === 'sft' ? ' and training resumes from the last checkpoint' : '';
      gang = new GangWatch(name, resumes, (message) => ctx.note(message), clamp(pollMs * 4, 300, 3000), waker.wake);
      for (;;) {
        broken();
        const job = jobs.get(name);
        if (!job) {
          // Deleted by the run that holds the lock (to re-run it): it is re-created, or that run
          // ends without it (cancelled) and this one, holding the lock now, reports it deleted.
          if (jobs.seen(name) && !lock.held) {
            await holdBack(ctx, waker);
            continue;
          }
          if (jobs.seen(name)) {
            ctx.update({ failure: { reason: 'JobDeleted', message: `Job ${name} was deleted while the stage ran (tunepipe cancel?)`, logTail: [] } });
            return 'failed';
          }
        } else {
          if (uid && job.metadata?.uid && job.metadata.uid !== uid) {
            ctx.note(`Job ${name} was re-created outside this run; following the new one`);
            uid = job.metadata.uid;
          }
          const present = pods.items().filter((p) => ownedBy(p, uid));
          const deleted = pods.takeDeleted().filter((p) => ownedBy(p, uid));
          // Kueue's Workload of a queued Job says why it waits and when it was evicted. Detail
          // only: without it (no Kueue, or a Role without workloads) the Job's suspend tells.
          if (uid && job.metadata?.labels?.[LABELS.kueueQueue] && workloadsOf !== uid) {
            workloads?.stop();
            workloads = new Informer<KueueWorkload & KubernetesObject>(client, WORKLOADS(namespace), { labelSelector: `${KUEUE_JOB_UID_LABEL}=${uid}` }, `the Kueue Workload of Job ${name}`, informerOptions(waker)).start();
            workloadsOf = uid;
          }
          const workload = workloads && !workloads.failure ? workloads.items()[0] : undefined;
          let snap = classifyJob(job, present, workload);
          const lost = ledger.observe(present, deleted);
          if (snap.gang) {
            snap = gang.observe(job, snap, workload, lost);
          } else {
            for (const { pod, why } of lost) ctx.note(`pod ${pod} was lost (${why}); Kubernetes retries it${resumes}`);
          }
          if (snap.currentPod) inFlight.pod = snap.currentPod;
          if (snap.currentPod && snap.currentContainer && snap.logReadable) follower.follow(snap.currentPod, snap.currentContainer, snap.status === 'running');
          const terminal = snap.status === 'done' || snap.status === 'failed';
          ctx.update({
            ...(terminal ? {} : { status: snap.status, detail: snap.detail }),
            attempts: Math.max(snap.attempts, ledger.attempts),
            preemptions: snap.gang ? gang.preemptions : Math.max(snap.preemptions, ledger.lost),
            ...(snap.gang ? { gang: snap.gang } : {}),
          });
          if (snap.status === 'done') {
            await follower.drain(drainMs);
            // The last lines (final metrics) even if the stream was cut: re-reading is harmless.
            if (snap.currentPod) follower.parser.push(`\n${(await logTail(snap.currentPod, 60, snap.currentContainer)).join('\n')}\n`);
            ctx.update({ progress: follower.parser.progress });
            return 'done';
          }
          if (snap.status === 'failed') {
            const { lastError } = await follower.drain(Math.min(drainMs, 1000));
            const message = [snap.failure?.message, lastError].filter(Boolean).join('; ');
            const pod = snap.failure?.pod ?? snap.currentPod;
            const failedPod = present.find((p) => p.metadata?.name === pod);
            const container = failedPod ? activeContainer(failedPod)?.name : undefined;
            const tail = pod ? await logTail(pod, tailLines, container) : [];
            ctx.update({
              failure: {
                reason: snap.failure?.reason ?? 'Failed',
                ...(message ? { message } : {}),
                ...(pod ? { source: `pod ${pod}${container ? ` (container ${container})` : ''}` } : {}),
                logTail: tail,
              },
            });
            return 'failed';
          }
        }
        await waker.wait(safetyMs, signal);
      }
    } catch (error) {
      return stopped(stage, ctx, error, inFlight);
    } finally {
      follower.stop();
      jobs.stop();
      pods.stop();
      workloads?.stop();
      gang?.stop();
    }
  };

  /** A finished stage's log tail: detail only, so an unreadable one is empty, never a failure. */
  const logTail = async (pod: string, lines: number, container?: string): Promise<string[]> => {
    try {
      return await client.podLogTail(namespace, pod, lines, container);
    } catch (error) {
      if (error instanceof RequestAbortedError) throw error;
      return [];
    }
  };

  const executeServe = async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
    const name = stage.workload.name;
    const restartedAt = ctx.forced ? new Date(now()).toISOString() : undefined;
    const compiled = stage.objects.find((o) => o.kind === 'Deployment') as Deployment | undefined;
    const selector = Object.entries(compiled?.spec?.selector?.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const waker = new Waker();
    const deployments = new Informer<V1Deployment>(client, DEPLOYMENTS(namespace), { fieldSelector: `metadata.name=${name}` }, `Deployment ${name}`, informerOptions(waker));
    const pods = selector ? new Informer<V1Pod>(client, PODS(namespace), { labelSelector: selector }, `the pods of Deployment ${name}`, informerOptions(waker)) : undefined;
    const follower = new PodLogFollower(client, namespace, signal, (progress) => ctx.update({ progress }), { onStreamEnd: waker.wake, retryMs: followRetryMs });
    const inFlight: InFlight = { was: `reading Deployment ${name}`, workload: 'not applied' };
    lock.onHeld(waker.wake);
    try {
      deployments.start();
      pods?.start();
      await Promise.all([deployments.ready(), pods?.ready()]);
      for (;;) {
        const failed = deployments.failure ?? pods?.failure;
        if (failed) throw failed;
        if (signal.aborted) throw new RequestAbortedError();
        // A rollout is a write: it waits for the run lock (the run holding it may be rolling out this very Deployment).
        if (lock.held) break;
        inFlight.was = `waiting for the run lock to roll out Deployment ${name}`;
        await holdBack(ctx, waker);
      }
      if (ctx.state().detail?.startsWith(HELD_BACK)) ctx.update({ detail: undefined });
      Object.assign(inFlight, { was: `applying the objects of ${stage.name}`, workload: 'applying' });
      await ensureShared();
      let generation = 0;
      for (const object of objectsToApply(stage, namespace, restartedAt ? { restartedAt } : {})) {
        const applied = await client.apply(object);
        if (object.kind === 'Deployment') {
          generation = applied.metadata?.generation ?? 0;
          deployments.observe(applied as V1Deployment);
          inFlight.workload = 'exists';
        }
      }
      inFlight.was = `watching Deployment ${name} roll out`;
      for (;;) {
        const failure = deployments.failure ?? pods?.failure;
        if (failure) throw failure;
        if (signal.aborted) throw new RequestAbortedError();
        const deployment = deployments.get(name);
        pods?.takeDeleted();
        if (!deployment && deployments.seen(name)) {
          ctx.update({ failure: { reason: 'DeploymentDeleted', message: `Deployment ${name} was deleted`, logTail: [] } });
          return 'failed';
        }
        // Until the watch delivers the applied generation, the cache may hold the one before.
        if (deployment && (deployment.metadata?.generation ?? 0) >= generation) {
          const snap = classifyDeployment(deployment, pods?.items() ?? []);
          if (snap.currentPod) inFlight.pod = snap.currentPod;
          if (snap.currentPod && snap.currentContainer && snap.logReadable) follower.follow(snap.currentPod, snap.currentContainer);
          if (snap.status === 'done') {
            follower.stop();
            ctx.update({ attempts: snap.attempts, endpoint: serviceEndpoint(stage, namespace) });
            return 'done';
          }
          if (snap.status === 'failed') {
            const pod = snap.failure?.pod;
            const tail = pod ? await logTail(pod, tailLines, snap.currentContainer) : [];
            ctx.update({
              failure: {
                reason: snap.failure?.reason ?? 'Failed',
                ...(snap.failure?.message ? { message: snap.failure.message } : {}),
                ...(pod ? { source: `pod ${pod}` } : {}),
                logTail: tail,
              },
            });
            return 'failed';
          }
          ctx.update({ status: snap.status, attempts: snap.attempts, detail: snap.detail });
        }
        await waker.wait(safetyMs, signal);
      }
    } catch (error) {
      return stopped(stage, ctx, error, inFlight);
    } finally {
      follower.stop();
      deployments.stop();
      pods?.stop();
    }
  };

  const lock: RunLock =
    options.lock === false ? NO_LOCK : await acquireRunLock(client, namespace, pipeline.pipeline, options.lock ?? {}, (message) => reporter.note(undefined, message), signal);
  lock.keep((why, outage) => {
    if (outage) return endRun({ outage });
    reporter.note(undefined, `${why}: this run stops watching; the Jobs keep running`);
    endRun({ lockLost: why });
  });
  try {
    return await runGraph({
      pipeline,
      selection,
      target: 'cluster',
      where: namespace,
      reporter,
      signal,
      now,
      findCached,
      execute: (stage, ctx) => (stage.workload.kind === 'Job' ? executeJob(stage, ctx) : executeServe(stage, ctx)),
    });
  } catch (error) {
    if (error instanceof ApiOutageError) endRun({ outage: error });
    // Before any stage started (looking for cached stages): nothing of this run is in the cluster.
    if (error instanceof RequestAbortedError) throw new RunnerError(`stopped before any stage of ${pipeline.pipeline} started; nothing was changed`);
    throw error;
  } finally {
    // Not after an outage (it would only wait for another timeout), and only briefly after
    // Ctrl-C (the API may be black-holed): a lock left behind is taken over by the next run,
    // at once from this machine (this process is gone), else when it expires.
    await lock.release(ended && 'outage' in ended ? 0 : signal.aborted ? 500 : client.requestTimeoutMs);
  }
}

/**
 * Asks the artifacts volume which completion markers exist, with the compiler's marker-check Job
 * (one small CPU pod, the stages' security contexts, the pipeline's claim and runtime image). Any
 * trouble (the pod cannot start in time) yields an empty set: the stages then run and skip in-pod.
 */
export async function checkMarkers(
  client: KubeClient,
  pipeline: CompiledPipeline,
  namespace: string,
  stages: readonly CompiledStage[],
  options: MarkerCheckOptions,
  pollMs: number,
  signal: AbortSignal,
  reporter: RunReporter,
): Promise<Set<string>> {
  const markers = stages.flatMap((s) => (s.completionMarker ? [s.completionMarker] : []));
  if (markers.length === 0) return new Set();
  const timeoutMs = options.timeoutMs ?? 180_000;
  const checkJob = markerCheckJob(
    { pipeline: pipeline.pipeline, namespace, artifactsClaim: pipeline.artifactsClaim, runtimeImage: pipeline.runtimeImage },
    markers,
    { timeoutSeconds: Math.ceil(timeoutMs / 1000), ...(options.image ? { image: options.image } : {}) },
  );
  const name = checkJob.metadata!.name!;
  reporter.note(undefined, `${stages.length} stage Job(s) not found; checking the artifacts volume for their completion markers`);
  const deadline = Date.now() + timeoutMs;
  try {
    const existing = await client.readJob(namespace, name);
    if (existing) {
      await client.deleteJob(namespace, name);
      while ((await client.readJob(namespace, name)) && !signal.aborted) await sleep(pollMs, signal);
    }
    await client.apply(checkJob as unknown as KubernetesObject);
    while (!signal.aborted && Date.now() < deadline) {
      const current = await client.readJob(namespace, name);
      if (current && hasCondition(current, 'Complete')) {
        const pods = await client.listPods(namespace, `job-name=${name}`);
        const pod = pods.find((p) => p.status?.phase === 'Succeeded');
        const lines = pod?.metadata?.name ? await client.podLogTail(namespace, pod.metadata.name, markers.length + 10) : [];
        return new Set(lines.filter((l) => l.startsWith('present ')).map((l) => l.slice('present '.length).trim()));
      }
      if (!current || hasCondition(current, 'Failed')) break;
      await sleep(pollMs, signal);
    }
    reporter.note(undefined, 'could not check the artifacts volume in time; the stages run and skip work their markers show as done');
    return new Set();
  } finally {
    // Clean-up even after Ctrl-C, but briefly: the Job's own deadline removes it otherwise.
    await client.deleteJob(namespace, name, { signal: AbortSignal.timeout(1000), retry: false }).catch(() => undefined);
  }
}
