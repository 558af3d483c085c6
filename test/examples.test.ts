// What the example pipelines promise beyond valid manifests, checked on their real datasets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { discoverPipelines } from '../packages/workspace/src/repo.ts';
import { synthPipeline } from '../packages/workspace/src/synth.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

for (const name of discoverPipelines(root)) {
  test(`${name}: SFT writes a checkpoint at least once per quarter of its run`, async () => {
    const { compiled, warnings } = await synthPipeline(root, name);
    assert.deepEqual(warnings.filter((w) => w.code === 'sft.no-checkpoint'), []);
    for (const stage of compiled.stages.filter((s) => s.kind === 'sft')) {
      const details = stage.estimate.details;
      assert.ok(details?.kind === 'sft', `${stage.name} has an SFT plan`);
      const steps = details.schedule.optimizerSteps;
      const saveSteps = Number(stage.config['save_steps']);
      // Hugging Face's Trainer reads a save_steps below 1 as a fraction of the run, rounded up.
      const interval = saveSteps < 1 ? Math.ceil(saveSteps * steps) : saveSteps;
      assert.ok(interval <= Math.ceil(steps / 4), `${stage.name}: a checkpoint every ${interval} of ${steps} steps`);
    }
  });
}
