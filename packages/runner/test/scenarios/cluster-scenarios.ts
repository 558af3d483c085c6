// Cluster-run scenarios written once and run on two backends: the fake API double
// (packages/runner/test/scenarios.test.ts, in `npm test`) and the real control plane
// (test/real/cluster/scenarios.test.ts, in `npm run test:real`). A scenario passing on the double
// must pass on the real server too; where they differ, the double is what gets fixed.
//
// A scenario only talks to its backend through ScenarioTarget: what the pods of a stage do, and
// what Jobs and pods exist. Everything else is the runner's public API, in process.
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { runOnCluster } from '../../src/cluster/run.ts';
import { cancelRun } from '../../src/cluster/inspect.ts';
import { recorder } from '../helpers.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What the pods of one stage do. */
export type StageBehaviour =
  | { readonly kind: 'succeed' }
  /** Keep running until `release`. */
  | { readonly kind: 'hold' }
  /** Every attempt exits with this code. */
  | { readonly kind: 'fail'; readonly exitCode: number }
  /** The first pod is taken away (DisruptionTarget) while it runs; the next one succeeds. */
  | { readonly kind: 'preempt-once' };

export interface ScenarioSpace {
  readonly namespace: string;
  /** The runner's identity in that namespace. */
  readonly kubeConfig: KubeConfig;
  /** The pipeline to run, compiled for this namespace (a GPU stage `sft`, CPU stages before it). */
  readonly pipeline: CompiledPipeline;
}

export interface ScenarioTarget {
  readonly name: string;
  /** A fresh namespace (on the double: a fresh API server). */
  space(label: string): Promise<ScenarioSpace>;
  behave(space: ScenarioSpace, stage: string, behaviour: StageBehaviour): Promise<void>;
  release(space: ScenarioSpace, stage: string): Promise<void>;
  jobs(space: ScenarioSpace): Promise<Json[]>;
  pods(space: ScenarioSpace): Promise<Json[]>;
  /** Runner poll interval that suits the backend. */
  readonly pollIntervalMs: number;
  /** Ends the space (the double's server); the real cluster keeps its namespaces. */
  dispose(space: ScenarioSpace): Promise<void>;
}

const stageJobs = (jobs: readonly Json[]) => jobs.filter((j) => j['metadata']?.labels?.['tunepipe.dev/stage']);

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Scenario {
  readonly name: string;
  run(target: ScenarioTarget): Promise<void>;
}

export const CLUSTER_SCENARIOS: readonly Scenario[] = [
  {
    name: 'a full run applies every stage in graph order; a second run creates no Job',
    async run(target) {
      const space = await target.space('full');
      try {
        const options = { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs };
        const rec = recorder();
        const first = await runOnCluster(space.pipeline, { ...options, reporter: rec });
        assert.equal(first.outcome, 'succeeded', rec.output());
        for (const stage of space.pipeline.stages) {
          const state = first.stages.find((s) => s.stage === stage.name)!;
          assert.equal(state.status, 'done', `${stage.name}: ${rec.output()}`);
          for (const dep of stage.dependsOn) {
            const upstream = first.stages.find((s) => s.stage === dep)!;
            assert.ok(upstream.finishedAt! <= state.startedAt!, `${dep} finished before ${stage.name} started`);
          }
        }
        const jobsAfterFirst = stageJobs(await target.jobs(space)).map((j) => j['metadata'].uid ?? j['metadata'].name).sort();
        const second = await runOnCluster(space.pipeline, { ...options, reporter: recorder() });
        assert.equal(second.outcome, 'succeeded');
        assert.ok(second.stages.every((s) => s.status === 'cached'), 'every stage cached');
        assert.deepEqual(stageJobs(await target.jobs(space)).map((j) => j['metadata'].uid ?? j['metadata'].name).sort(), jobsAfterFirst, 'no Job created');
      } finally {
        await target.dispose(space);
      }
    },
  },
  {
    name: 'a failing stage is reported with the exit code; its dependents never start',
    async run(target) {
      const space = await target.space('fail');
      try {
        await target.behave(space, 'sft', { kind: 'fail', exitCode: 1 });
        const rec = recorder();
        const result = await runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: rec });
        assert.equal(result.outcome, 'failed', rec.output());
        const sft = result.stages.find((s) => s.stage === 'sft')!;
        assert.equal(sft.status, 'failed');
        assert.equal(sft.failure?.reason, 'BackoffLimitExceeded', rec.output());
        assert.match(sft.failure?.message ?? '', /exit code 1/);
        const downstream = space.pipeline.stages.filter((s) => s.dependsOn.includes('sft')).map((s) => s.name);
        assert.ok(downstream.length > 0);
        const jobs = stageJobs(await target.jobs(space));
        for (const name of downstream) {
          assert.ok(!jobs.some((j) => j['metadata'].labels['tunepipe.dev/stage'] === name), `${name} never applied`);
        }
      } finally {
        await target.dispose(space);
      }
    },
  },
  {
    name: 'a preempted pod is retried without using up backoffLimit',
    async run(target) {
      const space = await target.space('preempt');
      try {
        await target.behave(space, 'sft', { kind: 'preempt-once' });
        const rec = recorder();
        const result = await runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: rec });
        assert.equal(result.outcome, 'succeeded', rec.output());
        const sft = result.stages.find((s) => s.stage === 'sft')!;
        assert.equal(sft.preemptions, 1, rec.output());
        assert.ok(sft.attempts >= 2);
        const job = stageJobs(await target.jobs(space)).find((j) => j['metadata'].labels['tunepipe.dev/stage'] === 'sft')!;
        assert.equal(job['status'].failed ?? 0, 0, 'the lost pod is not a failure');
        assert.equal(job['status'].succeeded, 1);
        assert.ok(rec.notes.some((n) => /was lost/.test(n)), rec.notes.join('\n'));
      } finally {
        await target.dispose(space);
      }
    },
  },
  {
    name: 'cancel deletes the running Job and leaves no running pod',
    async run(target) {
      const space = await target.space('cancel');
      try {
        await target.behave(space, 'sft', { kind: 'hold' });
        const rec = recorder();
        const running = runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: rec });
        await until('a running sft pod', async () =>
          (await target.pods(space)).some((p) => p['metadata'].labels?.['tunepipe.dev/stage'] === 'sft' && p['status']?.phase === 'Running') ? true : undefined,
        );
        const cancelled = await cancelRun(space.pipeline.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace });
        // (Other stages running at that moment are cancelled too: on the real server eval-base may be.)
        assert.ok(cancelled.deletedJobs.some((j) => /-sft-/.test(j)), cancelled.deletedJobs.join(', '));
        const result = await running;
        assert.equal(result.outcome, 'failed');
        assert.equal(result.stages.find((s) => s.stage === 'sft')!.failure?.reason, 'JobDeleted');
        await until('no running pod', async () =>
          (await target.pods(space)).every((p) => p['status']?.phase !== 'Running' && p['status']?.phase !== 'Pending') ? true : undefined,
        );
        await target.release(space, 'sft');
      } finally {
        await target.dispose(space);
      }
    },
  },
];
