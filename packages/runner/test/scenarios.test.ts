// The shared cluster scenarios (scenarios/cluster-scenarios.ts) on the fake API double. The same
// scenarios run on the real control plane in test/real/cluster/scenarios.test.ts.
import { test } from 'node:test';
import { startFakeKube, type FakeKubeApi } from './doubles/fake-kube-api.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { SEED_TRAIN_LOG } from './helpers.ts';
import { CLUSTER_SCENARIOS, GANG, OTHER_RANK_TOTAL, withGang, type ScenarioSpace, type ScenarioTarget } from './scenarios/cluster-scenarios.ts';

const doubles = new Map<string, FakeKubeApi>();

const fake: ScenarioTarget = {
  name: 'fake API double',
  pollIntervalMs: 10,
  async space(label) {
    const kube = await startFakeKube();
    doubles.set(label, kube);
    return { namespace: 'tunepipe', kubeConfig: kube.kubeConfig(), pipeline: makePipeline({ without: ['serve'] }), label } as ScenarioSpace;
  },
  async behave(space, stage, behaviour) {
    const kube = doubleOf(space);
    if (behaviour.kind === 'fail') kube.script(stage, { failExitCode: behaviour.exitCode });
    else if (behaviour.kind === 'hold') kube.script(stage, { log: SEED_TRAIN_LOG, holdAtLine: 1 });
    else if (behaviour.kind === 'preempt-once') kube.script(stage, { log: SEED_TRAIN_LOG, preemptAfterLine: 5 });
    else if (behaviour.kind === 'preempt-gang-once') kube.script(stage, { ...GANG_SCRIPT, evictGangAfterLine: 8, readmitAfterMs: 80 });
  },
  async release(space, stage) {
    doubleOf(space).release(stage);
  },
  jobs: async (space) => doubleOf(space).list('Job'),
  pods: async (space) => doubleOf(space).pods(),
  async dispose(space) {
    await doubleOf(space).stop();
  },
  async gangSpace(label, { quotaGpus }) {
    const kube = await startFakeKube();
    doubles.set(label, kube);
    const short = quotaGpus < GANG.nodes * GANG.gpusPerNode;
    kube.script('sft', {
      ...GANG_SCRIPT,
      // Kueue's message for a gang larger than the ClusterQueue's nominal quota (seen on the real one).
      ...(short
        ? {
            admitAfterMs: 1e9,
            quotaMessage: `couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor tunepipe-gpu-${GANG.gpuType}, previously considered podsets requests (0) + current podset request (${GANG.nodes * GANG.gpusPerNode}) > maximum capacity (${quotaGpus})`,
          }
        : {}),
    });
    const pipeline = withGang(makePipeline({ without: ['serve'] }), 'tunepipe');
    return { namespace: 'tunepipe', kubeConfig: kube.kubeConfig(), pipeline, label } as ScenarioSpace;
  },
};

/**
 * Rank 0 prints the seed's training log; every other rank prints a bar and numbers of its own
 * (as torchrun's ranks may), which the runner must never show.
 */
const GANG_SCRIPT = {
  log: SEED_TRAIN_LOG,
  rankLog: [
    ` 50%|█████     | 500/${OTHER_RANK_TOTAL} [00:10<00:10, 50.00it/s]`,
    "{'loss': 9.9999, 'grad_norm': 9.9, 'learning_rate': 1e-09, 'epoch': 9.99}",
    ` 60%|██████    | 600/${OTHER_RANK_TOTAL} [00:12<00:08, 50.00it/s]`,
  ],
};

function doubleOf(space: ScenarioSpace): FakeKubeApi {
  const kube = doubles.get((space as ScenarioSpace & { label: string }).label);
  if (!kube) throw new Error('no double for this space');
  return kube;
}

for (const scenario of CLUSTER_SCENARIOS) {
  test(`[double] ${scenario.name}`, () => scenario.run(fake));
}
