import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { evaluateGate, gateRules } from '@tunepipe/core';
import { readPredictResults } from '../src/index.ts';
import { fixtures } from './run-fixture.ts';

// The gate of core judged on predict_results.json files shaped like LLaMA-Factory's.
async function results(name: string) {
  const read = await readPredictResults(join(fixtures, name, 'predict_results.json'));
  assert.deepEqual(read.issues, []);
  return read.value!;
}

test('the adapter passes bleu4 ≥ 20 and rougeL ≥ baseline + 5', async () => {
  const report = evaluateGate({ bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } }, await results('evaluate-adapter'), await results('evaluate-base'));
  assert.equal(report.passed, true);
  assert.deepEqual(report.verdicts.map((v) => v.message), [
    'predict_bleu-4 = 41.29 ≥ 20.00 (required)',
    // 17.5528 + 5 = 22.5528
    'predict_rouge-l = 52.77 ≥ 22.55 (baseline 17.55 + 5.00)',
  ]);
});

test('the base model fails bleu4 ≥ 20; GPTQ fails "at most 2 ROUGE-L points below the adapter"', async () => {
  const base = evaluateGate({ bleu4: { min: 20 } }, await results('evaluate-base'));
  assert.equal(base.summary, 'gate failed (1 of 1 rules): predict_bleu-4 = 9.83 < 20.00 (required)');
  // 52.7716 − 2 = 50.7716 > 50.2281
  const gptq = evaluateGate({ rougeL: { minOverBaseline: -2 } }, await results('evaluate-gptq'), await results('evaluate-adapter'));
  assert.equal(gptq.verdicts[0]!.message, 'predict_rouge-l = 50.23 < 50.77 (baseline 52.77 − 2.00)');
  // The same rules in their compiled (normalized) form judge the same way.
  assert.deepEqual(evaluateGate(gateRules({ rougeL: { minOverBaseline: -2 } }), await results('evaluate-gptq'), await results('evaluate-adapter')), gptq);
});

test('a faster, lower-quality model: runtime bounds pass while quality bounds fail', async () => {
  const report = evaluateGate({ runtime: { max: 15 }, samplesPerSecond: { min: 0.3 }, rouge1: { min: 57 } }, await results('evaluate-gptq'));
  assert.deepEqual(report.verdicts.map((v) => [v.rule.metric, v.passed]), [
    ['predict_rouge-1', false],
    ['predict_runtime', true],
    ['predict_samples_per_second', true],
  ]);
});
