import type { KubeConfig, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import type { CompiledPipeline, StageKind } from '@tunepipe/core/compiled';
import { ANNOTATIONS, LABELS } from '@tunepipe/core/labels';
import { parseLog } from '../progress/parse.ts';
import { formatCheckpointResume, formatStageLine, gateHeadlineInLog } from '../progress/format.ts';
import { RunnerError, type StageState } from '../types.ts';
import { activeContainer, classifyDeployment, classifyJob, completionIndex, gangSize, KUEUE_JOB_UID_LABEL, sortPods, type KueueWorkload, type WorkloadSnapshot } from './classify.ts';
import { KubeClient, RequestAbortedError, WORKLOADS, loadKubeConfig } from './kube.ts';
import { sleep } from './watch.ts';

export interface InspectOptions {
  /** @default loadKubeConfig() */
  readonly kubeConfig?: KubeConfig;
  readonly namespace: string;
}

const selectorFor = (pipeline: string, stage?: string) =>
  `${LABELS.pipeline}=${pipeline}${stage ? `,${LABELS.stage}=${stage}` : ''}`;

const created = (o: { metadata?: { creationTimestamp?: Date | string } }) => {
  const t = o.metadata?.creationTimestamp;
  return t instanceof Date ? t.getTime() : t ? Date.parse(t) : 0;
};

/** Newest first. */
const newest = <T extends { metadata?: { creationTimestamp?: Date | string } }>(items: readonly T[]) =>
  [...items].sort((a, b) => created(b) - created(a));

const isCheckJob = (job: V1Job) => job.metadata?.labels?.[LABELS.component] === 'marker-check';

function podSelector(deployment: V1Deployment): string {
  return Object.entries(deployment.spec?.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function toState(
  stage: string,
  kind: StageKind,
  hash: string,
  expectedSeconds: number,
  snap: WorkloadSnapshot,
  pods: readonly V1Pod[],
): StageState {
  const startedAt = pods.length > 0 ? created(sortPods(pods)[0]!) : undefined;
  return {
    stage,
    kind,
    hash,
    status: snap.status,
    attempts: snap.attempts,
    preemptions: snap.preemptions,
    expectedSeconds,
    ...(snap.detail ? { detail: snap.detail } : {}),
    ...(startedAt ? { startedAt } : {}),
    ...(snap.failure ? { failure: { reason: snap.failure.reason, ...(snap.failure.message ? { message: snap.failure.message } : {}), logTail: [] } } : {}),
    ...(snap.gang ? { gang: snap.gang } : {}),
  };
}

/**
 * The Kueue Workload of a queued gang Job: why it waits, whether it was evicted. Detail only, so
 * a cluster without Kueue's API or a Role without workloads gives undefined, never an error.
 */
async function gangWorkload(client: KubeClient, namespace: string, job: V1Job): Promise<KueueWorkload | undefined> {
  if (!gangSize(job) || !job.metadata?.uid || !job.metadata.labels?.[LABELS.kueueQueue]) return undefined;
  try {
    const list = await client.list<KueueWorkload>(WORKLOADS(namespace), { labelSelector: `${KUEUE_JOB_UID_LABEL}=${job.metadata.uid}` }, `listing the Kueue Workload of Job ${job.metadata.name}`, { retry: false });
    return list.items[0];
  } catch (error) {
    if (error instanceof RequestAbortedError) throw error;
    return undefined;
  }
}

/**
 * The stages of a pipeline run as the cluster sees them, found by the `tunepipe.dev/pipeline`
 * label: one entry per stage (its newest Job or its Deployment), with progress parsed from the
 * running pod's recent log. With the compiled pipeline, stages without a workload are listed as
 * waiting and Jobs for another hash are flagged.
 */
/** Enough for the wrapper's lines before the tool starts: input checks and the checkpoint decision. */
const LOG_HEAD_BYTES = 64 * 1024;

export async function clusterStatus(
  pipeline: string | CompiledPipeline,
  options: InspectOptions & { readonly logLines?: number },
): Promise<StageState[]> {
  const client = new KubeClient(options.kubeConfig ?? (await loadKubeConfig()));
  const ns = options.namespace;
  const name = typeof pipeline === 'string' ? pipeline : pipeline.pipeline;
  const jobs = (await client.listJobs(ns, selectorFor(name))).filter((j) => !isCheckJob(j));
  const deployments = await client.listDeployments(ns, selectorFor(name));
  const logLines = options.logLines ?? 200;

  const jobsByStage = new Map<string, V1Job[]>();
  for (const job of jobs) {
    const stage = job.metadata?.labels?.[LABELS.stage];
    if (stage) jobsByStage.set(stage, [...(jobsByStage.get(stage) ?? []), job]);
  }
  const deploymentByStage = new Map<string, V1Deployment>();
  for (const d of deployments) {
    const stage = d.metadata?.labels?.[LABELS.stage];
    if (stage) deploymentByStage.set(stage, d);
  }

  const describe = async (stage: string, fallbackKind: StageKind, wantHash?: string, wantName?: string): Promise<StageState | undefined> => {
    const candidates = newest(jobsByStage.get(stage) ?? []);
    const job = candidates.find((j) => j.metadata?.name === wantName) ?? candidates[0];
    const deployment = deploymentByStage.get(stage);
    let snap: WorkloadSnapshot;
    let pods: V1Pod[];
    let labels: Record<string, string>;
    let annotations: Record<string, string>;
    if (job?.metadata?.name) {
      pods = await client.listPods(ns, `job-name=${job.metadata.name}`);
      snap = classifyJob(job, pods, await gangWorkload(client, ns, job));
      labels = job.metadata.labels ?? {};
      annotations = job.metadata.annotations ?? {};
    } else if (deployment) {
      const selector = podSelector(deployment);
      pods = selector ? await client.listPods(ns, selector) : [];
      snap = classifyDeployment(deployment, pods);
      labels = deployment.metadata?.labels ?? {};
      annotations = deployment.metadata?.annotations ?? {};
    } else return undefined;
    const hash = labels[LABELS.stageHash] ?? '';
    const kind = ((labels[LABELS.stageKind] ?? labels[LABELS.component]) as StageKind | undefined) ?? fallbackKind;
    const expected = Number(annotations[ANNOTATIONS.expectedSeconds] ?? 0);
    let state = toState(stage, kind, hash, expected, snap, pods);
    if (snap.currentPod && snap.logReadable && (snap.status === 'running' || snap.status === 'retrying' || snap.status === 'done')) {
      const lines = await client.podLogTail(ns, snap.currentPod, logLines, snap.currentContainer);
      let progress = parseLog(lines.join('\n'));
      // The wrapper says which checkpoints it moved aside before training starts: in a long run
      // that is far above the tail, so it is read from the log's start.
      if (kind === 'sft' && !progress.checkpointResume) {
        const head = await client.podLogHead(ns, snap.currentPod, LOG_HEAD_BYTES, snap.currentContainer);
        const fromHead = parseLog(head.join('\n')).checkpointResume;
        if (fromHead) progress = { ...progress, checkpointResume: fromHead };
      }
      state = { ...state, progress };
    }
    if (snap.status === 'failed' && (snap.failure?.pod ?? snap.currentPod)) {
      const pod = snap.failure?.pod ?? snap.currentPod!;
      const logTail = await client.podLogTail(ns, pod, 20, snap.currentContainer);
      // A failed gate's headline is its verdict, the last line `tunepipe gate` printed.
      const verdict = snap.currentContainer === 'gate' ? gateHeadlineInLog(logTail) : undefined;
      state = { ...state, failure: { ...state.failure!, ...(verdict ? { reason: verdict } : {}), source: `pod ${pod}`, logTail } };
    }
    if (wantHash && hash && !wantHash.startsWith(hash)) {
      state = { ...state, detail: `${state.detail ? `${state.detail}; ` : ''}workload is for hash ${hash.slice(0, 8)}, the pipeline now has ${wantHash.slice(0, 8)}` };
    }
    return state;
  };

  const out: StageState[] = [];
  if (typeof pipeline === 'string') {
    const stages = new Set([...jobsByStage.keys(), ...deploymentByStage.keys()]);
    if (stages.size === 0) {
      throw new RunnerError(`no Jobs or Deployments of pipeline ${name} in namespace ${ns} (label ${LABELS.pipeline}=${name}); is the namespace right?`);
    }
    const ordered = [...stages].sort((a, b) => firstSeen(a) - firstSeen(b) || a.localeCompare(b));
    function firstSeen(stage: string): number {
      const items = [...(jobsByStage.get(stage) ?? []), ...(deploymentByStage.has(stage) ? [deploymentByStage.get(stage)!] : [])];
      return Math.min(...items.map(created));
    }
    for (const stage of ordered) {
      const state = await describe(stage, 'sft');
      if (state) out.push(state);
    }
  } else {
    for (const stage of pipeline.stages) {
      const state = await describe(stage.name, stage.kind, stage.hash, stage.workload.name);
      out.push(
        state ?? {
          stage: stage.name,
          kind: stage.kind,
          hash: stage.hash,
          status: 'waiting',
          detail: 'no Job yet',
          attempts: 0,
          preemptions: 0,
          expectedSeconds: stage.expectedSeconds,
        },
      );
    }
  }
  return out;
}

/** `tunepipe status` output: one line per stage, failures with their last log lines. */
export function formatStatus(pipeline: string, namespace: string, states: readonly StageState[], now: number = Date.now()): string {
  const nameWidth = Math.max(8, ...states.map((s) => s.stage.length));
  const lines = [`${pipeline} in namespace ${namespace}`];
  for (const s of states) lines.push(formatStageLine(s, { nameWidth, bar: true, now }));
  // A newer checkpoint the wrapper did not trust cost training steps: said as the local target says it.
  for (const s of states) if (s.progress?.checkpointResume) lines.push(`checkpoint: ${s.stage}: ${formatCheckpointResume(s.progress.checkpointResume)}`);
  for (const s of states) {
    if (s.status === 'failed' && s.failure && s.failure.logTail.length > 0) {
      lines.push(`${s.stage}: last ${s.failure.logTail.length} log lines of ${s.failure.source ?? 'its pod'}:`);
      for (const l of s.failure.logTail) lines.push(`  │ ${l}`);
    }
  }
  return lines.join('\n');
}

export interface LogsOptions extends InspectOptions {
  /** Keep streaming while the stage runs, across pod retries. @default false */
  readonly follow?: boolean;
  /** @default process.stdout */
  readonly out?: NodeJS.WritableStream;
  /** Stop following. */
  readonly signal?: AbortSignal;
  /** @default 2000 */
  readonly pollIntervalMs?: number;
}

/**
 * Prints a stage's log (`tunepipe logs <pipeline> <stage> [-f]`): the newest pod of its newest
 * Job (or of its Deployment); with `follow`, keeps streaming and moves on to the replacement pod
 * after a preemption until the Job finishes.
 */
export async function streamStageLogs(pipeline: string, stage: string, options: LogsOptions): Promise<void> {
  const signal = options.signal ?? new AbortController().signal;
  // Ctrl-C ends a request in flight too (a black-holed API server would hold it for its timeout).
  const client = new KubeClient(options.kubeConfig ?? (await loadKubeConfig()), { signal });
  try {
    await streamWith(client, pipeline, stage, options, signal);
  } catch (error) {
    if (error instanceof RequestAbortedError) return;
    throw error;
  }
}

async function streamWith(client: KubeClient, pipeline: string, stage: string, options: LogsOptions, signal: AbortSignal): Promise<void> {
  const ns = options.namespace;
  const out = options.out ?? process.stdout;
  const pollMs = options.pollIntervalMs ?? 2000;

  const locate = async (): Promise<{ pods: V1Pod[]; finished: boolean } | undefined> => {
    const jobs = newest((await client.listJobs(ns, selectorFor(pipeline, stage))).filter((j) => !isCheckJob(j)));
    const job = jobs[0];
    if (job?.metadata?.name) {
      const all = sortPods(await client.listPods(ns, `job-name=${job.metadata.name}`));
      const snap = classifyJob(job, all);
      // A gang's log is rank 0's: the ranks' logs interleaved would be unreadable.
      const pods = gangSize(job) ? all.filter((p) => completionIndex(p) === 0) : all;
      return { pods, finished: snap.status === 'done' || snap.status === 'failed' };
    }
    const deployment = (await client.listDeployments(ns, selectorFor(pipeline, stage)))[0];
    if (deployment) {
      const selector = podSelector(deployment);
      return { pods: selector ? sortPods(await client.listPods(ns, selector)) : [], finished: false };
    }
    return undefined;
  };

  const first = await locate();
  if (!first) {
    const all = await client.listJobs(ns, selectorFor(pipeline));
    const stages = [...new Set(all.map((j) => j.metadata?.labels?.[LABELS.stage]).filter(Boolean))];
    throw new RunnerError(
      `no Job or Deployment for stage ${stage} of pipeline ${pipeline} in namespace ${ns}${stages.length ? `; stages with workloads: ${stages.join(', ')}` : ''}`,
    );
  }

  const started = (pod: V1Pod) =>
    [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
      .filter((c) => c.state?.running || c.state?.terminated)
      .map((c) => c.name);
  if (!options.follow) {
    const pod = [...first.pods].reverse().find((p) => started(p).length > 0);
    if (!pod?.metadata?.name) {
      out.write(`(no pod of ${stage} has started yet)\n`);
      return;
    }
    const containers = started(pod);
    for (const container of containers) {
      if (containers.length > 1) out.write(`--- ${pod.metadata.name} (${container}) ---\n`);
      const lines = await client.podLogTail(ns, pod.metadata.name, 100_000, container);
      out.write(lines.map((l) => `${l}\n`).join(''));
    }
    return;
  }

  // What was printed last, to drop the overlap when a cut stream is picked up again with
  // `sinceTime` (which the API server applies at one-second resolution).
  const printed: string[] = [];
  let partial = '';
  const print = (text: string) => {
    out.write(text);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    printed.push(...lines);
    if (printed.length > 500) printed.splice(0, printed.length - 500);
  };
  const followed = new Set<string>();
  const caughtUp = new Set<string>();
  let lastTextAt: Date | undefined;
  let state = first;
  const isRunning = (pod: V1Pod, container: string) =>
    [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].some((c) => c.name === container && c.state?.running);
  while (!signal.aborted) {
    const pod = [...state.pods].reverse().find((p) => started(p).length > 0);
    const podName = pod?.metadata?.name;
    const container = pod ? activeContainer(pod)?.name : undefined;
    const key = `${podName}/${container}`;
    // A container not seen yet; or one whose stream ended: picked up again while it runs, and
    // read once more after it stopped, so lines written while the stream was cut are not lost.
    const running = Boolean(pod && container && isRunning(pod, container));
    const again = followed.has(key) && (running || !caughtUp.has(key));
    if (podName && container && (!followed.has(key) || again)) {
      if (followed.size > 0 && !followed.has(key)) print(`--- ${stage}: ${podName} (${container}) ---\n`);
      if (again && !running) caughtUp.add(key);
      const sink = again ? overlapSkipper(printed, print) : { push: print, end: () => undefined };
      const outcome = await client.followPodLog(
        ns,
        podName,
        container,
        (text) => {
          lastTextAt = new Date();
          sink.push(text);
        },
        signal,
        again ? lastTextAt : undefined,
      );
      sink.end();
      if (outcome === 'ended') followed.add(key);
      if (outcome === 'unavailable' || again) await sleep(pollMs, signal);
    } else if (state.finished) {
      return;
    } else {
      await sleep(pollMs, signal);
    }
    const next = await locate();
    if (!next) return;
    state = next;
  }
}

/**
 * Passes text through after dropping its first lines where they repeat the end of what was
 * already printed. The repeated part is history the server replays at once, so text is held
 * back only until there are as many lines as it compares against, `holdMs` passed, or the
 * stream ends.
 */
export function overlapSkipper(
  printed: readonly string[],
  emit: (text: string) => void,
  holdMs = 300,
): { push(text: string): void; end(): void } {
  const tail = printed.slice(-200);
  let buffer = '';
  let decided = false;
  let timer: NodeJS.Timeout | undefined;
  const decide = (final: boolean) => {
    if (decided) return;
    const lines = buffer.split('\n');
    const complete = final ? lines : lines.slice(0, -1);
    if (!final && complete.length < tail.length) {
      timer ??= setTimeout(() => decide(true), holdMs);
      return;
    }
    clearTimeout(timer);
    let skip = 0;
    for (let k = Math.min(tail.length, complete.length); k > 0; k--) {
      if (complete.slice(0, k).every((line, i) => line === tail[tail.length - k + i])) {
        skip = k;
        break;
      }
    }
    decided = true;
    const rest = lines.slice(skip).join('\n');
    buffer = '';
    if (rest) emit(rest);
  };
  return {
    push(text) {
      if (decided) return emit(text);
      buffer += text;
      decide(false);
    },
    end() {
      decide(true);
    },
  };
}

export interface CancelOptions extends InspectOptions {
  /** Also scale the serve Deployment(s) to zero. @default false */
  readonly scaleServe?: boolean;
}

export interface CancelResult {
  readonly deletedJobs: readonly string[];
  readonly scaledDeployments: readonly string[];
}

/**
 * Stops a pipeline run (`tunepipe cancel`): deletes its unfinished Jobs with Background
 * propagation (their pods go with them; finished Jobs stay, so their stages remain cached) and,
 * if asked, scales its serve Deployments to zero.
 */
export async function cancelRun(pipeline: string, options: CancelOptions): Promise<CancelResult> {
  const client = new KubeClient(options.kubeConfig ?? (await loadKubeConfig()));
  const ns = options.namespace;
  const jobs = await client.listJobs(ns, selectorFor(pipeline));
  const finished = (j: V1Job) => j.status?.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  const deletedJobs: string[] = [];
  for (const job of jobs) {
    const jobName = job.metadata?.name;
    if (!jobName || finished(job)) continue;
    if (await client.deleteJob(ns, jobName)) deletedJobs.push(jobName);
  }
  const scaledDeployments: string[] = [];
  if (options.scaleServe) {
    for (const d of await client.listDeployments(ns, selectorFor(pipeline))) {
      if (d.metadata?.name && (d.spec?.replicas ?? 1) > 0) {
        await client.scaleDeployment(ns, d.metadata.name, 0);
        scaledDeployments.push(d.metadata.name);
      }
    }
  }
  return { deletedJobs, scaledDeployments };
}

/** What `tunepipe cancel` prints. */
export function formatCancel(pipeline: string, namespace: string, result: CancelResult): string {
  const lines: string[] = [];
  if (result.deletedJobs.length === 0) lines.push(`${pipeline}: no running Jobs in namespace ${namespace}`);
  else lines.push(`${pipeline}: deleted ${result.deletedJobs.length} running Job(s): ${result.deletedJobs.join(', ')}`);
  if (result.scaledDeployments.length > 0) lines.push(`scaled to 0: ${result.scaledDeployments.join(', ')}`);
  return lines.join('\n');
}
