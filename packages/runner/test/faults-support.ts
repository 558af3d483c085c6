// What the runner's fault tests share: the fault-injecting API double started per test, the calls
// a run makes while its sft stage runs (the targets of injected faults), which faults make sense
// for which verb, and what "the run rode them out" means.
import assert from 'node:assert/strict';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { runOnCluster, type ClusterRunOptions } from '../src/cluster/run.ts';
import type { RunResult } from '../src/types.ts';
import { startFakeKube, type FakeKubeApi, type FakeKubeOptions, type Fault, type FaultVerb } from './doubles/fake-kube-api.ts';
import { recorder, waitFor, type Recorder } from './helpers.ts';

/** Fast retries and short timeouts, so a black-holed request costs 250 ms here, not 30 s. */
export const FLAKY: Partial<ClusterRunOptions> = {
  pollIntervalMs: 10,
  retryBackoff: { initialMs: 5, maxMs: 40 },
  requestTimeoutMs: 250,
  apiOutageMs: 10_000,
  // Renewed often, so the lock's renewals meet the faults too.
  lock: { renewMs: 40 },
};

export async function withKube(options: FakeKubeOptions, fn: (kube: FakeKubeApi) => Promise<void>): Promise<void> {
  const kube = await startFakeKube({ linesPerTick: 2, ...options });
  try {
    await fn(kube);
  } finally {
    kube.heal();
    await kube.stop();
  }
}

export function startRun(pipeline: CompiledPipeline, kube: FakeKubeApi, options: Partial<ClusterRunOptions> = {}): { rec: Recorder; done: Promise<RunResult> } {
  const rec = recorder();
  const done = runOnCluster(pipeline, { kubeConfig: kube.kubeConfig(), reporter: rec, ...FLAKY, ...options });
  return { rec, done };
}

export const stageRunning = (kube: FakeKubeApi, job: string) =>
  waitFor(() => kube.pods().some((p) => p['metadata'].labels?.['job-name'] === job && p['status'].phase === 'Running'), 10_000, `${job} running`);

export const jobsCreated = (kube: FakeKubeApi, name: string) => kube.created.filter((c) => c === `Job/${name}`).length;

/** What went wrong with a run that should have ridden out its faults, or undefined. */
export function survivalProblem(kube: FakeKubeApi, result: RunResult, job: string, finished: readonly string[] = ['done']): string | undefined {
  if (result.outcome !== 'succeeded') return `the run ${result.outcome}`;
  for (const s of result.stages) if (!finished.includes(s.status)) return `${s.stage} ${s.status}${s.failure ? `: ${s.failure.reason} ${s.failure.message ?? ''}` : ''}`;
  if (jobsCreated(kube, job) !== 1) return `Job ${job} created ${jobsCreated(kube, job)}×`;
  if (kube.deletedJobs.includes(job)) return `Job ${job} deleted`;
  if (kube.responses.some((r) => r.status === 422)) return 'a 422';
  return undefined;
}

/** The run went through: every stage done, the Job created once and never deleted, no 422. */
export function assertSurvived(kube: FakeKubeApi, rec: Recorder, result: RunResult, job: string, label: string, finished: readonly string[] = ['done']): void {
  const problem = survivalProblem(kube, result, job, finished);
  assert.equal(problem, undefined, `${label}: ${problem}\n${rec.output()}`);
}

/** Which faults make sense for which verb: 409 on writes, 410 on lists and watches. */
export function faultsFor(verb: FaultVerb): Fault[] {
  const common: Fault[] = [500, 503, 429, 'reset', 'blackhole'];
  switch (verb) {
    case 'PATCH':
    case 'PUT':
    case 'POST':
      return [...common, 409];
    case 'LIST':
      return [...common, 410];
    case 'WATCH':
      return [...common, 410, 'drop'];
    default:
      return common;
  }
}

export interface FaultTarget {
  readonly verb: FaultVerb;
  readonly path: string;
  readonly what: string;
}

/** Calls a run makes while its sft stage (Job `sft`) runs, by verb and a piece of their path or query. */
export function faultTargets(sft: string): readonly FaultTarget[] {
  return [
    { verb: 'GET', path: `/jobs/${sft}`, what: 'reading the sft Job' },
    { verb: 'PATCH', path: `/jobs/${sft}?`, what: 'applying the sft Job' },
    { verb: 'LIST', path: `metadata.name=${sft}`, what: 'listing the sft Job' },
    { verb: 'WATCH', path: `metadata.name=${sft}`, what: 'watching the sft Job' },
    { verb: 'LIST', path: `job-name=${sft}`, what: 'listing the sft pods' },
    { verb: 'WATCH', path: `job-name=${sft}`, what: 'watching the sft pods' },
    { verb: 'LOG', path: `/pods/${sft}`, what: 'reading the sft log' },
    { verb: 'GET', path: '/leases/', what: 'reading the run lock' },
    { verb: 'POST', path: '/leases', what: 'creating the run lock' },
    { verb: 'PUT', path: '/leases/', what: 'renewing the run lock' },
  ];
}
