// Cluster-run scenarios written once and run on two backends: the fake API double
// (packages/runner/test/scenarios.test.ts, in `npm test`) and the real control plane
// (test/real/cluster/scenarios.test.ts, in `npm run test:real`). A scenario passing on the double
// must pass on the real server too; where they differ, the double is what gets fixed.
//
// A scenario only talks to its backend through ScenarioTarget: what the pods of a stage do, and
// what Jobs and pods exist. Everything else is the runner's public API, in process.
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import { objectKey, type CompiledPipeline } from '@tunepipe/core/compiled';
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
  | { readonly kind: 'preempt-once' }
  /**
   * A gang stage: once its first gang runs, a workload of a higher priority in the same
   * ClusterQueue takes its quota; Kueue evicts the whole gang and admits it again when that
   * workload is done; the second gang succeeds.
   */
  | { readonly kind: 'preempt-gang-once' };

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
  /**
   * A fresh namespace whose pipeline trains `sft` as a gang of GANG.nodes pods × GANG.gpusPerNode
   * GPUs, in a ClusterQueue admitting `quotaGpus` of them at once. On the double, the ranks other
   * than 0 print bars and numbers of their own (which must never show).
   */
  gangSpace(label: string, options: { readonly quotaGpus: number }): Promise<ScenarioSpace>;
}

/** The gang the gang scenarios train: 2 nodes × 8 H100 (issue 20's 70B layout). */
export const GANG = { nodes: 2, gpusPerNode: 8, gpuType: 'h100-80gb' } as const;

/** Where the ranks of a gang meet (torchrun's rendezvous): torch.distributed's default port. */
const MASTER_PORT = 29500;

/**
 * The pipeline with its `sft` stage as a multi-node gang, shaped as the compiler emits one
 * (issue 20): an Indexed Job (completions = parallelism = nodes, the Kueue queue label on the
 * Job, `tunepipe.dev/gang` on its pods, `subdomain` a headless Service of the same name,
 * NODE_RANK from the completion index, MASTER_ADDR rank 0's stable DNS name, MASTER_PORT pinned,
 * `nvidia.com/gpu` = GPUs per node on each pod). A stage the compiler already made a gang is kept.
 */
export function withGang(pipeline: CompiledPipeline, namespace: string, stageName = 'sft'): CompiledPipeline {
  const replaced = new Map<string, Json[]>();
  const stages = pipeline.stages.map((stage) => {
    if (stage.name !== stageName) return stage;
    const job = stage.objects.find((o) => o.kind === 'Job') as Json | undefined;
    if (!job || (job['spec']?.parallelism ?? 1) > 1) return stage;
    const name = job['metadata'].name as string;
    const gang = structuredClone(job);
    const spec = gang['spec'];
    spec.completionMode = 'Indexed';
    spec.completions = GANG.nodes;
    spec.parallelism = GANG.nodes;
    const template = spec.template;
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, 'tunepipe.dev/gang': name } };
    template.spec.subdomain = name;
    template.spec.nodeSelector = { ...template.spec.nodeSelector, 'tunepipe.dev/gpu': GANG.gpuType };
    const gangEnv = [
      { name: 'FORCE_TORCHRUN', value: '1' },
      { name: 'NNODES', value: String(GANG.nodes) },
      { name: 'NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
      { name: 'NPROC_PER_NODE', value: String(GANG.gpusPerNode) },
      { name: 'MASTER_ADDR', value: `${name}-0.${name}.${namespace}.svc` },
      { name: 'MASTER_PORT', value: String(MASTER_PORT) },
    ];
    for (const container of [...(template.spec.initContainers ?? []), ...template.spec.containers] as Json[]) {
      const gpus = container['resources']?.limits?.['nvidia.com/gpu'];
      if (gpus === undefined) continue;
      container['resources'] = {
        ...container['resources'],
        limits: { ...container['resources'].limits, 'nvidia.com/gpu': String(GANG.gpusPerNode) },
        ...(container['resources'].requests?.['nvidia.com/gpu'] !== undefined
          ? { requests: { ...container['resources'].requests, 'nvidia.com/gpu': String(GANG.gpusPerNode) } }
          : {}),
      };
      container['env'] = [...(container['env'] ?? []).filter((e: Json) => !gangEnv.some((g) => g.name === e['name'])), ...gangEnv];
    }
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: job['metadata'].namespace, labels: job['metadata'].labels },
      spec: {
        clusterIP: 'None',
        // Rank 0's name must resolve before it is Ready: the other ranks dial it while it starts.
        publishNotReadyAddresses: true,
        selector: { 'tunepipe.dev/gang': name },
        ports: [{ name: 'rendezvous', port: MASTER_PORT, targetPort: MASTER_PORT, protocol: 'TCP' }],
      },
    };
    replaced.set(objectKey(job as never), [service, gang]);
    const objects = stage.objects.flatMap((o) => replaced.get(objectKey(o)) ?? [o]);
    // As compile() describes a gang: `gpus` per pod, the layout and the gang's names beside it.
    const hostnames = Array.from({ length: GANG.nodes }, (_, i) => `${name}-${i}`);
    return {
      ...stage,
      gpus: GANG.gpusPerNode,
      gpuType: GANG.gpuType,
      objects,
      layout: { nodes: GANG.nodes, gpusPerNode: GANG.gpusPerNode, strategy: 'ddp' },
      gang: { engine: 'indexed-job', pods: GANG.nodes, service: name, hostnames, masterAddr: `${hostnames[0]}.${name}.${namespace}.svc`, masterPort: MASTER_PORT, podLabel: 'tunepipe.dev/gang' },
    } as unknown as typeof stage;
  });
  const objects = pipeline.objects.flatMap((o) => replaced.get(objectKey(o)) ?? [o]) as unknown as typeof pipeline.objects;
  return { ...pipeline, stages, objects };
}

/** The total a non-zero rank's bar shows on the double: a bar with it came from the wrong pod. */
export const OTHER_RANK_TOTAL = 999;

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
    name: 'a gang is admitted whole: one workload, every rank created and running together; progress from rank 0 alone',
    async run(target) {
      const space = await target.gangSpace('gang-whole', { quotaGpus: GANG.nodes * GANG.gpusPerNode });
      try {
        const rec = recorder();
        let most = { created: 0, running: 0 };
        let sawPartial = false;
        const watch = { ...rec, update(state: Parameters<typeof rec.update>[0]) {
          if (state.stage === 'sft' && state.gang) {
            most = { created: Math.max(most.created, state.gang.created), running: Math.max(most.running, state.gang.running) };
            if (state.status === 'running' && state.gang.finished === 0 && state.gang.running < state.gang.size) sawPartial = true;
          }
          rec.update(state);
        } };
        const result = await runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: watch });
        assert.equal(result.outcome, 'succeeded', rec.output());
        const sft = result.stages.find((s) => s.stage === 'sft')!;
        assert.equal(sft.gang?.size, GANG.nodes, rec.output());
        assert.deepEqual(most, { created: GANG.nodes, running: GANG.nodes }, 'every rank seen created and running');
        assert.ok(!sawPartial, 'a gang is never "running" with a rank missing');
        assert.equal(sft.preemptions, 0);
        assert.ok(!rec.statuses('sft').includes('retrying'), rec.statuses('sft').join(' → '));
        // Progress, where the pods log (the double), is rank 0's and only rank 0's.
        if (sft.progress?.training) assert.notEqual(sft.progress.training.total, OTHER_RANK_TOTAL, 'a bar from a rank other than 0');
        const job = stageJobs(await target.jobs(space)).find((j) => j['metadata'].labels['tunepipe.dev/stage'] === 'sft')!;
        assert.equal(job['spec'].parallelism, GANG.nodes);
        assert.equal(job['status'].succeeded, GANG.nodes);
        assert.equal(job['status'].failed ?? 0, 0);
        const pods = (await target.pods(space)).filter((p) => p['metadata'].labels?.['job-name'] === job['metadata'].name);
        assert.deepEqual(pods.map((p) => p['metadata'].labels['batch.kubernetes.io/job-completion-index']).sort(), ['0', '1']);
        const rank0 = pods.find((p) => p['metadata'].labels['batch.kubernetes.io/job-completion-index'] === '0')!;
        assert.equal(sft.gang?.rank0Pod, rank0['metadata'].name, 'the progress pod is rank 0');
      } finally {
        await target.dispose(space);
      }
    },
  },
  {
    name: 'a gang short of quota waits whole: said as waiting for quota, its Job suspended, no pod created',
    async run(target) {
      const space = await target.gangSpace('gang-short', { quotaGpus: GANG.gpusPerNode });
      const stop = new AbortController();
      try {
        const rec = recorder();
        const running = runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: rec, signal: stop.signal });
        const waiting = await until('sft said to wait for quota', async () => {
          const state = rec.last('sft');
          return state?.status === 'queued' && /waiting for quota/.test(state.detail ?? '') ? state : undefined;
        });
        assert.match(waiting.detail!, /gang of 2 pods/);
        assert.match(waiting.detail!, /insufficient/, 'Kueue\'s own reason');
        assert.equal(waiting.gang?.admitted, false);
        // Held back whole for a while: the Job stays suspended and no rank is ever created.
        for (let i = 0; i < 3; i++) {
          await new Promise((r) => setTimeout(r, target.pollIntervalMs));
          const job = stageJobs(await target.jobs(space)).find((j) => j['metadata'].labels['tunepipe.dev/stage'] === 'sft')!;
          assert.equal(job['spec'].suspend, true);
          assert.deepEqual((await target.pods(space)).filter((p) => p['metadata'].labels?.['tunepipe.dev/stage'] === 'sft'), []);
        }
        assert.ok(!rec.output().includes('pending pod'), rec.output());
        stop.abort();
        const result = await running;
        assert.equal(result.outcome, 'detached');
      } finally {
        stop.abort();
        await target.dispose(space);
      }
    },
  },
  {
    name: 'a gang Kueue preempts is replaced whole, told once, and is not a failure',
    async run(target) {
      const space = await target.gangSpace('gang-preempt', { quotaGpus: GANG.nodes * GANG.gpusPerNode });
      try {
        await target.behave(space, 'sft', { kind: 'preempt-gang-once' });
        const rec = recorder();
        const result = await runOnCluster(space.pipeline, { kubeConfig: space.kubeConfig, namespace: space.namespace, pollIntervalMs: target.pollIntervalMs, reporter: rec });
        assert.equal(result.outcome, 'succeeded', rec.output());
        const sft = result.stages.find((s) => s.stage === 'sft')!;
        assert.equal(sft.gang?.evictions, 1, rec.notes.join('\n'));
        assert.equal(sft.preemptions, 1, 'one eviction of the gang, not one per pod');
        assert.ok(sft.attempts >= 2 * GANG.nodes, `every rank started twice (${sft.attempts})`);
        const evicted = rec.notes.filter((n) => /Kueue evicted the gang/.test(n));
        assert.equal(evicted.length, 1, rec.notes.join('\n'));
        assert.match(evicted[0]!, /all 2 pods/);
        assert.ok(!rec.notes.some((n) => /pod \S+ (of the gang )?was lost/.test(n)), `no per-pod loss: ${rec.notes.join('\n')}`);
        const statuses = rec.statuses('sft');
        assert.ok(!statuses.includes('failed') && !statuses.includes('retrying'), statuses.join(' → '));
        assert.ok(statuses.lastIndexOf('queued') > statuses.indexOf('running'), `queued again after running: ${statuses.join(' → ')}`);
        const job = stageJobs(await target.jobs(space)).find((j) => j['metadata'].labels['tunepipe.dev/stage'] === 'sft')!;
        assert.equal(job['status'].failed ?? 0, 0, 'the eviction is no failure of the Job');
        assert.equal(job['status'].succeeded, GANG.nodes);
      } finally {
        await target.dispose(space);
      }
    },
  },
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
