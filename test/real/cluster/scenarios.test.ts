// The shared cluster scenarios (packages/runner/test/scenarios/cluster-scenarios.ts), which
// `npm test` runs on the fake API double, here on the real control plane, with the real compiled
// llama3-fintech pipeline and the runner's ServiceAccount token.
import { after, before, test } from 'node:test';
import { loadKubeConfig } from '../../../packages/runner/src/cluster/kube.ts';
import { CLUSTER_SCENARIOS, GANG, type ScenarioSpace, type ScenarioTarget, type StageBehaviour } from '../../../packages/runner/test/scenarios/cluster-scenarios.ts';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { objectKey } from '@tunepipe/core/compiled';
import { startCluster, urgentJob, type LocalCluster, type PodOutcome } from '../support/cluster.ts';
import { repoRoot } from './cli.ts';
import { gangPipeline } from './gang-support.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let cluster: LocalCluster;
const outcomes: Record<string, PodOutcome> = {};
const evictors = new Set<AbortController>();

before(async () => {
  cluster = await startCluster({
    gpuNodes: [
      { type: 'l4', count: 1, gpus: 8 },
      { type: 't4', count: 1, gpus: 1 },
      { type: 'a100-80gb', count: 1, gpus: 1 },
      // The gang scenarios' 2×8 H100.
      { type: GANG.gpuType, count: GANG.nodes, gpus: GANG.gpusPerNode, cpu: '192', memory: '2Ti' },
    ],
    cpuNodes: 2,
    podRunMs: 500,
  });
});

after(async () => {
  for (const e of evictors) e.abort();
  await cluster?.stop();
});

/**
 * Evicts the first running pod of `stage` once, as a preemption or node drain would, after it ran
 * for a few of the runner's polls (a real preemption comes minutes into a run, not in its first
 * second; a pod that lives shorter than one poll is invisible to a polling runner).
 */
function evictOnce(namespace: string, stage: string): void {
  const controller = new AbortController();
  evictors.add(controller);
  void (async () => {
    while (!controller.signal.aborted) {
      const pods = await cluster.api.list('v1', 'Pod', namespace, `tunepipe.dev/stage=${stage}`).catch(() => [] as Json[]);
      const running = pods.find((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp);
      if (running) {
        await new Promise((r) => setTimeout(r, 3 * real.pollIntervalMs));
        await cluster.evict(namespace, running.metadata.name);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    evictors.delete(controller);
  })();
}

/**
 * Preempts a gang once, as a higher-priority workload in its ClusterQueue does: once every rank
 * of `stage` ran for a few of the runner's polls, an urgent Job asks for one node's GPUs; Kueue
 * evicts the gang. When the gang's Job is suspended its pods are released, so the gang Kueue
 * admits again (after the urgent Job ended) runs through.
 */
function preemptGangOnce(namespace: string, stage: string, key: string): void {
  const controller = new AbortController();
  evictors.add(controller);
  void (async () => {
    try {
      while (!controller.signal.aborted) {
        const pods = await cluster.api.list('v1', 'Pod', namespace, `tunepipe.dev/stage=${stage}`).catch(() => [] as Json[]);
        if (pods.filter((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp).length === GANG.nodes) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 3 * real.pollIntervalMs));
      await cluster.api.apply(urgentJob(namespace, 'urgent', { gpuType: GANG.gpuType, gpus: GANG.gpusPerNode }));
      while (!controller.signal.aborted) {
        const jobs = await cluster.api.list('batch/v1', 'Job', namespace, `tunepipe.dev/stage=${stage}`).catch(() => [] as Json[]);
        if (jobs.some((j) => j.spec?.suspend)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      delete outcomes[key];
      await cluster.setPodOutcomes(outcomes);
    } finally {
      evictors.delete(controller);
    }
  })();
}

const real: ScenarioTarget = {
  name: 'real control plane',
  // The CLI's default: the runner polls every 2 s.
  pollIntervalMs: 2000,
  async space(label) {
    const ns = await cluster.createTunepipeNamespace(`scenario-${label}`);
    const { compiled } = await synthPipeline(repoRoot, 'llama3-fintech', { namespace: ns.namespace, queueName: ns.queue });
    // Serving keeps a GPU forever and is not what these scenarios are about.
    const stages = compiled.stages.filter((s) => s.kind !== 'serve' && !s.dependsOn.includes('serve'));
    const dropped = new Set(compiled.stages.filter((s) => !stages.includes(s)).flatMap((s) => s.objects.map(objectKey)));
    const pipeline = { ...compiled, stages, objects: compiled.objects.filter((o) => !dropped.has(objectKey(o))) };
    return { namespace: ns.namespace, kubeConfig: await loadKubeConfig({ kubeconfig: ns.kubeconfig }), pipeline };
  },
  async behave(space, stage, behaviour: StageBehaviour) {
    const key = `${space.namespace}/${stage}`;
    if (behaviour.kind === 'fail') outcomes[key] = { outcome: 'fail', exitCode: behaviour.exitCode };
    else if (behaviour.kind === 'hold') outcomes[key] = { outcome: 'hold' };
    else if (behaviour.kind === 'succeed') delete outcomes[key];
    else if (behaviour.kind === 'preempt-gang-once') {
      outcomes[key] = { outcome: 'hold' };
      preemptGangOnce(space.namespace, stage, key);
    } else {
      // Held until the eviction, then released: the replacement pod runs normally.
      outcomes[key] = { outcome: 'hold' };
      evictOnce(space.namespace, stage);
      void (async () => {
        while (evictors.size > 0) await new Promise((r) => setTimeout(r, 100));
        delete outcomes[key];
        await cluster.setPodOutcomes(outcomes);
      })();
    }
    await cluster.setPodOutcomes(outcomes);
  },
  async release(space, stage) {
    delete outcomes[`${space.namespace}/${stage}`];
    await cluster.setPodOutcomes(outcomes);
  },
  async gangSpace(label, { quotaGpus }) {
    const ns = await cluster.createTunepipeNamespace(`scenario-${label}`, { gpuQuota: { [GANG.gpuType]: quotaGpus }, gpuTypes: [GANG.gpuType] });
    const { pipeline } = await gangPipeline(ns.namespace, ns.queue);
    return { namespace: ns.namespace, kubeConfig: await loadKubeConfig({ kubeconfig: ns.kubeconfig }), pipeline };
  },
  jobs: (space: ScenarioSpace) => cluster.api.list('batch/v1', 'Job', space.namespace),
  pods: (space: ScenarioSpace) => cluster.api.list('v1', 'Pod', space.namespace),
  async dispose(space) {
    for (const key of Object.keys(outcomes)) if (key.startsWith(`${space.namespace}/`)) delete outcomes[key];
    await cluster.setPodOutcomes(outcomes);
  },
};

for (const scenario of CLUSTER_SCENARIOS) {
  test(`[real] ${scenario.name}`, () => scenario.run(real));
}
