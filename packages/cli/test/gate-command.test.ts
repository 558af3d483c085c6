// `tunepipe gate`, run in the evaluate Job: an evaluation of nothing must fail with a reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATE_FAILED_EXIT_CODE } from '@tunepipe/core';
import { gateCommand } from '../src/commands/gate.ts';

async function evaluation(results: string, predictions?: string): Promise<{ rules: string; results: string; out: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-gate-'));
  await writeFile(join(dir, 'gate.json'), JSON.stringify({ rules: [{ metric: 'predict_bleu-4', comparison: 'min', value: 20 }, { metric: 'predict_runtime', comparison: 'max', value: 1000 }], baselineResults: null }));
  await writeFile(join(dir, 'predict_results.json'), results);
  if (predictions !== undefined) await writeFile(join(dir, 'generated_predictions.jsonl'), predictions);
  return { rules: join(dir, 'gate.json'), results: join(dir, 'predict_results.json'), out: join(dir, 'verdict.json') };
}

test('NaN scores (as Python writes them) are a failed gate with a reason, not "not JSON"', async () => {
  // What LLaMA-Factory writes after predicting on an empty split: np.mean([]) is NaN.
  const files = await evaluation('{\n  "predict_bleu-4": NaN,\n  "predict_rouge-1": NaN,\n  "predict_rouge-2": NaN,\n  "predict_rouge-l": NaN,\n  "predict_runtime": 1.5\n}\n', '');
  let printed = '';
  const code = gateCommand(files, (text) => (printed += text));
  assert.equal(code, GATE_FAILED_EXIT_CODE);
  assert.doesNotMatch(printed, /not JSON/);
  assert.match(printed, /^FAIL {2}no predictions were scored: the prediction set has no rows$/m);
  assert.match(printed, /^FAIL {2}predict_bleu-4 is not a number \(NaN\): no predictions were scored \(required ≥ 20\.00\)$/m);
  // The headline runners show: the reason first, then each failed rule in short.
  const headline = printed.trim().split('\n').at(-1)!;
  assert.match(headline, /^gate failed: no predictions were scored: the prediction set has no rows; predict_rouge-1 is not a number \(NaN\)/);
  assert.match(headline, /bleu4 is not a number \(NaN\): no predictions were scored$/);
  // The verdict file is JSON (no NaN in it).
  const verdict = JSON.parse(await readFile(files.out, 'utf8')) as { passed: boolean; problems: string[] };
  assert.equal(verdict.passed, false);
  assert.equal(verdict.problems.length, 4);
});

test('every prediction empty fails the gate even when the scores would pass', async () => {
  const rows = ['{"prompt": "a", "predict": "", "label": "x"}', '{"prompt": "b", "predict": "  ", "label": "y"}'].join('\n');
  const files = await evaluation('{"predict_bleu-4": 25.0, "predict_runtime": 2.0}', `${rows}\n`);
  let printed = '';
  assert.equal(gateCommand(files, (text) => (printed += text)), GATE_FAILED_EXIT_CODE);
  assert.match(printed, /every prediction is empty \(2 of 2\)/);
  // One real answer is enough evidence; without a predictions file there is none to weigh.
  const answered = await evaluation('{"predict_bleu-4": 25.0, "predict_runtime": 2.0}', `${rows}\n{"prompt": "c", "predict": "z", "label": "z"}\n`);
  assert.equal(gateCommand(answered, () => {}), 0);
  assert.equal(gateCommand(await evaluation('{"predict_bleu-4": 25.0, "predict_runtime": 2.0}'), () => {}), 0);
});
