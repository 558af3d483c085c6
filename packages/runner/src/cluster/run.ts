import type { KubeConfig, KubernetesObject, V1Job } from '@kubernetes/client-node';
import { sharedObjects, type CompiledPipeline, type CompiledStage } from '@tunepipe/core/compiled';
import { LABELS } from '@tunepipe/core/labels';
import { markerCheckJob, STAGE_ENV } from '@tunepipe/core';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Service } from 'kubernetes-types/core/v1.js';
import { selectStages, type SelectionOptions } from '../graph.ts';
import { createConsoleReporter } from '../progress/reporter.ts';
import { runGraph, type StageContext, type StageOutcome } from '../scheduler.ts';
import type { RunReporter, RunResult } from '../types.ts';
import { activeContainer, classifyDeployment, classifyJob, isDisrupted } from './classify.ts';
import { PodLogFollower } from './follow.ts';
import { ForbiddenKubeError, KubeClient, TransientKubeError, loadKubeConfig } from './kube.ts';


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
  /** Abort to detach: the runner stops watching and leaves the Jobs running. */
  readonly signal?: AbortSignal;
  /** @default 2000 */
  readonly pollIntervalMs?: number;
  /**
   * How long a running stage keeps polling through an API server it cannot reach (or that
   * answers 5xx/429) before it gives up on the stage. The Job goes on in the cluster either way.
   * @default 300000
   */
  readonly apiOutageMs?: number;
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

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

const hasCondition = (job: V1Job, type: string) => job.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;

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
 * Runs a compiled pipeline on a cluster: server-side applies each stage's objects in graph order,
 * watches its Job (or serve Deployment) and pod log, and starts dependents as stages finish.
 * Stages whose Job already completed for the same hash are shown as cached and not touched.
 */
export async function runOnCluster(pipeline: CompiledPipeline, options: ClusterRunOptions = {}): Promise<RunResult> {
  const selection = selectStages(pipeline, options);
  const client = new KubeClient(options.kubeConfig ?? loadKubeConfig());
  const namespace = options.namespace ?? pipeline.namespace;
  const reporter = options.reporter ?? createConsoleReporter();
  const pollMs = options.pollIntervalMs ?? 2000;
  const tailLines = options.logTailLines ?? 20;
  const now = options.now ?? Date.now;
  const signal = options.signal ?? new AbortController().signal;
  const outageMs = options.apiOutageMs ?? 300_000;

  /**
   * Runs one poll of a stage. A transient API failure (restart, failover, 5xx) is waited out for
   * up to `outageMs`, with one note when contact is lost and one when it is back; the stage is
   * failed only after that. Before, a single restart of the API server failed every running stage.
   */
  const outage = (ctx: StageContext) => {
    let since: number | undefined;
    return async <T>(poll: () => Promise<T>): Promise<T | 'retry'> => {
      try {
        const value = await poll();
        if (since !== undefined) ctx.note(`the Kubernetes API answers again after ${Math.round((now() - since) / 1000)}s`);
        since = undefined;
        return value;
      } catch (error) {
        // A restarted kube-apiserver answers before its RBAC caches are filled, and refuses the
        // runner (403) for a few seconds (seen on the real server in test:real): within an outage
        // that is part of it; outside one it is a real lack of rights.
        const warmingUp = since !== undefined && error instanceof ForbiddenKubeError;
        if (!(error instanceof TransientKubeError) && !warmingUp) throw error;
        if (since === undefined) {
          since = now();
          ctx.note(`${error.message.split(';')[0]}; retrying for up to ${Math.round(outageMs / 1000)}s (the Job keeps running in the cluster)`);
        }
        if (now() - since > outageMs) throw error;
        await sleep(pollMs, signal);
        return 'retry';
      }
    };
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
    if (options.markerCheck !== false && missingJobs.length > 0) {
      // Shared objects (the artifacts claim, say) first: the check pod may need them.
      await ensureShared();
      const present = await checkMarkers(client, pipeline, namespace, missingJobs, options.markerCheck ?? {}, pollMs, signal, reporter);
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
    let existing = await client.readJob(namespace, name);
    if (existing && (ctx.forced || hasCondition(existing, 'Failed'))) {
      ctx.note(
        ctx.forced
          ? `deleting Job ${name} to re-run it (--force)`
          : `Job ${name} failed in an earlier run (${existing.status?.conditions?.find((c) => c.type === 'Failed')?.reason ?? 'Failed'}); deleting it to retry`,
      );
      await client.deleteJob(namespace, name);
      while ((await client.readJob(namespace, name)) && !signal.aborted) await sleep(pollMs, signal);
      existing = undefined;
    }
    if (existing) {
      ctx.note(`attached to Job ${name}, which is already running`);
    } else {
      await ensureShared();
      for (const object of objectsToApply(stage, namespace, { forced: ctx.forced })) await client.apply(object);
    }

    const follower = new PodLogFollower(client, namespace, signal, (progress) => ctx.update({ progress }));
    let seenPreemptions = 0;
    // Pods last seen pending or running. An evicted or preempted pod is deleted once it has
    // stopped (the real API server showed it gone within a poll), so its DisruptionTarget
    // condition is rarely seen: a pod that vanishes before it was seen finished was taken away.
    const unfinished = new Set<string>();
    const vanished: string[] = [];
    const guarded = outage(ctx);
    try {
      while (!signal.aborted) {
        const read = await guarded(async () => ({ job: await client.readJob(namespace, name), pods: await client.listPods(namespace, `job-name=${name}`) }));
        if (read === 'retry') continue;
        const { job, pods } = read;
        if (!job) {
          ctx.update({
            failure: { reason: 'JobDeleted', message: `Job ${name} was deleted while the stage ran (tunepipe cancel?)`, logTail: [] },
          });
          return 'failed';
        }
        const snap = classifyJob(job, pods);
        const present = new Set(pods.map((p) => p.metadata?.name));
        const newlyVanished = [...unfinished].filter((pod) => !present.has(pod));
        for (const pod of newlyVanished) unfinished.delete(pod);
        vanished.push(...newlyVanished);
        for (const pod of pods) {
          const podName = pod.metadata?.name;
          if (!podName) continue;
          const phase = pod.status?.phase;
          if ((phase === 'Pending' || phase === 'Running') && !pod.metadata?.deletionTimestamp && !isDisrupted(pod)) unfinished.add(podName);
          else unfinished.delete(podName);
        }
        const preemptions = snap.preemptions + vanished.length;
        if (preemptions > seenPreemptions) {
          const resumes = stage.kind === 'sft' ? ' and training resumes from the last checkpoint' : '';
          const lost = pods.filter(isDisrupted).at(-1);
          if (snap.preemptions > 0 && lost && newlyVanished.length === 0) {
            ctx.note(`pod ${lost.metadata?.name ?? ''} was lost (${lost.status?.conditions?.find((c) => c.type === 'DisruptionTarget')?.reason ?? 'disrupted'}); Kubernetes retries it${resumes}`);
          } else {
            ctx.note(`pod ${newlyVanished.join(', ')} was lost (deleted before it finished: preempted, evicted or its node went away); Kubernetes retries it${resumes}`);
          }
          seenPreemptions = preemptions;
        }
        if (snap.currentPod && snap.currentContainer && snap.logReadable) follower.follow(snap.currentPod, snap.currentContainer, snap.status === 'running');
        const terminal = snap.status === 'done' || snap.status === 'failed';
        ctx.update({
          ...(terminal ? {} : { status: snap.status, detail: snap.detail }),
          attempts: snap.attempts + vanished.length,
          preemptions,
        });
        if (snap.status === 'done') {
          await follower.drain(Math.max(pollMs * 2, 200));
          // The last lines (final metrics) even if the stream was cut: re-reading is harmless.
          if (snap.currentPod) follower.parser.push(`\n${(await client.podLogTail(namespace, snap.currentPod, 60, snap.currentContainer)).join('\n')}\n`);
          ctx.update({ progress: follower.parser.progress });
          return 'done';
        }
        if (snap.status === 'failed') {
          const { lastError } = await follower.drain(Math.max(pollMs, 100));
          const message = [snap.failure?.message, lastError].filter(Boolean).join('; ');
          const pod = snap.failure?.pod ?? snap.currentPod;
          const failedPod = pods.find((p) => p.metadata?.name === pod);
          const container = failedPod ? activeContainer(failedPod)?.name : undefined;
          const logTail = pod ? await client.podLogTail(namespace, pod, tailLines, container) : [];
          ctx.update({
            failure: {
              reason: snap.failure?.reason ?? 'Failed',
              ...(message ? { message } : {}),
              ...(pod ? { source: `pod ${pod}${container ? ` (container ${container})` : ''}` } : {}),
              logTail,
            },
          });
          return 'failed';
        }
        await sleep(pollMs, signal);
      }
      return 'detached';
    } finally {
      follower.stop();
    }
  };

  const executeServe = async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
    const name = stage.workload.name;
    const restartedAt = ctx.forced ? new Date(now()).toISOString() : undefined;
    await ensureShared();
    for (const object of objectsToApply(stage, namespace, restartedAt ? { restartedAt } : {})) await client.apply(object);
    const follower = new PodLogFollower(client, namespace, signal, (progress) => ctx.update({ progress }));
    const guarded = outage(ctx);
    try {
      while (!signal.aborted) {
        const read = await guarded(async () => {
          const found = await client.readDeployment(namespace, name);
          const selector = Object.entries(found?.spec?.selector?.matchLabels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',');
          return { deployment: found, pods: found && selector ? await client.listPods(namespace, selector) : [] };
        });
        if (read === 'retry') continue;
        const { deployment, pods } = read;
        if (!deployment) {
          ctx.update({ failure: { reason: 'DeploymentDeleted', message: `Deployment ${name} was deleted`, logTail: [] } });
          return 'failed';
        }
        const snap = classifyDeployment(deployment, pods);
        if (snap.currentPod && snap.currentContainer && snap.logReadable) follower.follow(snap.currentPod, snap.currentContainer);
        if (snap.status === 'done') {
          follower.stop();
          const endpoint = serviceEndpoint(stage, namespace);
          ctx.update({ attempts: snap.attempts, endpoint });
          return 'done';
        }
        if (snap.status === 'failed') {
          const pod = snap.failure?.pod;
          const logTail = pod ? await client.podLogTail(namespace, pod, tailLines, snap.currentContainer) : [];
          ctx.update({
            failure: {
              reason: snap.failure?.reason ?? 'Failed',
              ...(snap.failure?.message ? { message: snap.failure.message } : {}),
              ...(pod ? { source: `pod ${pod}` } : {}),
              logTail,
            },
          });
          return 'failed';
        }
        ctx.update({ status: snap.status, attempts: snap.attempts, detail: snap.detail });
        await sleep(pollMs, signal);
      }
      return 'detached';
    } finally {
      follower.stop();
    }
  };

  return runGraph({
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
    await client.deleteJob(namespace, name).catch(() => undefined);
  }
}
