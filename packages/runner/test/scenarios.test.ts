// The shared cluster scenarios (scenarios/cluster-scenarios.ts) on the fake API double. The same
// scenarios run on the real control plane in test/real/cluster/scenarios.test.ts.
import { test } from 'node:test';
import { startFakeKube, type FakeKubeApi } from './doubles/fake-kube-api.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { SEED_TRAIN_LOG } from './helpers.ts';
import { CLUSTER_SCENARIOS, type ScenarioSpace, type ScenarioTarget } from './scenarios/cluster-scenarios.ts';

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
  },
  async release(space, stage) {
    doubleOf(space).release(stage);
  },
  jobs: async (space) => doubleOf(space).list('Job'),
  pods: async (space) => doubleOf(space).pods(),
  async dispose(space) {
    await doubleOf(space).stop();
  },
};

function doubleOf(space: ScenarioSpace): FakeKubeApi {
  const kube = doubles.get((space as ScenarioSpace & { label: string }).label);
  if (!kube) throw new Error('no double for this space');
  return kube;
}

for (const scenario of CLUSTER_SCENARIOS) {
  test(`[double] ${scenario.name}`, () => scenario.run(fake));
}
