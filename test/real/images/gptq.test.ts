// The GPTQ image's install steps, run for real from images/gptq/Dockerfile (scripts/real/images.mjs)
// on a layer over the tier's LLaMA-Factory venv (torch, llamafactory), with the Dockerfile's ENV.
// gptqmodel compiles CUDA kernels, which needs a CUDA 12.8 toolkit: that step runs as a pip dry
// run (dependency resolution + gptqmodel's setup script, where TORCH_CUDA_ARCH_LIST is parsed),
// then without kernels so the Dockerfile's own import check runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildImage } from '../../../scripts/real/images.mjs';
import { layerAndBase } from './layers.ts';

const built = buildImage('gptq');
const pins = JSON.parse(readFileSync(new URL('../../../pins.json', import.meta.url), 'utf8')) as { python: Record<string, string> };

test('gptq image: optimum installs, gptqmodel resolves and its setup script accepts the Dockerfile environment', async () => {
  const { report } = await built;
  const steps = report.stages[0]!.steps;
  assert.equal(steps.find((s) => s.what.startsWith('pip install optimum'))?.how, 'ran');
  const gptq = steps.find((s) => s.what.includes('gptqmodel=='))!;
  assert.equal(gptq.how, 'dry-run', JSON.stringify(gptq));
  assert.match(gptq.detail ?? '', /gptqmodel==/);
  const check = steps.find((s) => s.what.startsWith('python -c'))!;
  assert.equal(check.how, 'ran');
  assert.match(check.detail ?? '', /gptq stack ok/);
});

test("gptq image: its pip steps replace only the packages the Dockerfile pins over LLaMA-Factory's", async () => {
  const { report } = await built;
  const { layer, base } = layerAndBase(report);
  const replaced = [...layer].filter(([name, version]) => base.has(name) && base.get(name) !== version).map(([name, version]) => `${name} ${base.get(name)} → ${version}`).sort();
  // transformers (and the tokenizers it needs) are held back on purpose: see the Dockerfile and
  // test/real/llamafactory/pipeline.test.ts, where 4.57 fails GPTQ at the second decoder layer.
  assert.deepEqual(replaced, [
    `tokenizers ${base.get('tokenizers')} → ${pins.python['gptq-tokenizers']}`,
    `transformers ${base.get('transformers')} → ${pins.python['gptq-transformers']}`,
  ], 'installing the GPTQ stack would replace packages LLaMA-Factory was installed with');
  assert.ok(layer.has('optimum') && layer.has('gptqmodel'));
});
