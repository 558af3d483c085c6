import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkGate, evaluateGate, gateNeedsBaseline, gateRules, type Gate } from '../src/gate.ts';

// Shaped like LLaMA-Factory's predict_results.json (BLEU/ROUGE ×100).
const adapter = {
  'predict_bleu-4': 18.2,
  'predict_rouge-1': 41.3,
  'predict_rouge-2': 22.05,
  'predict_rouge-l': 30.1,
  predict_runtime: 130,
  predict_samples_per_second: 0.077,
  predict_steps_per_second: 0.038,
  predict_model_preparation_time: 0.0031,
};
const base = { ...adapter, 'predict_bleu-4': 9.5, 'predict_rouge-l': 26, predict_runtime: 100 };

test('a failing absolute rule shows the numbers', () => {
  const report = evaluateGate({ bleu4: { min: 20 } }, adapter);
  assert.equal(report.passed, false);
  assert.equal(report.verdicts.length, 1);
  assert.equal(report.verdicts[0]!.message, 'predict_bleu-4 = 18.20 < 20.00 (required)');
  assert.equal(report.verdicts[0]!.actual, 18.2);
  assert.equal(report.verdicts[0]!.required, 20);
  assert.match(report.summary, /^gate failed \(1 of 1 rules\): predict_bleu-4 = 18\.20 < 20\.00/);
});

test('a passing gate with absolute and baseline rules', () => {
  const gate: Gate = { 'predict_bleu-4': { min: 15 }, rougeL: { minOverBaseline: 4 }, runtime: { max: 200 } };
  const report = evaluateGate(gate, adapter, base);
  assert.equal(report.passed, true);
  assert.deepEqual(
    report.verdicts.map((v) => v.message),
    [
      'predict_bleu-4 = 18.20 ≥ 15.00 (required)',
      // 30.10 ≥ 26.00 + 4.00 = 30.00
      'predict_rouge-l = 30.10 ≥ 30.00 (baseline 26.00 + 4.00)',
      'predict_runtime = 130.00 ≤ 200.00 (allowed)',
    ],
  );
  assert.equal(report.summary, 'gate passed (3/3 rules)');
});

test('a baseline rule fails when the adapter does not beat the base by enough', () => {
  const report = evaluateGate({ rougeL: { minOverBaseline: 5 } }, adapter, base);
  assert.equal(report.passed, false);
  // 26.00 + 5.00 = 31.00 > 30.10
  assert.equal(report.verdicts[0]!.message, 'predict_rouge-l = 30.10 < 31.00 (baseline 26.00 + 5.00)');
  assert.equal(report.verdicts[0]!.baseline, 26);
  assert.equal(report.verdicts[0]!.required, 31);
});

test('negative offsets allow a bounded regression; maxOverBaseline bounds lower-is-better metrics', () => {
  const report = evaluateGate({ bleu4: { minOverBaseline: -10 }, runtime: { maxOverBaseline: 25 } }, adapter, base);
  assert.deepEqual(
    report.verdicts.map((v) => [v.passed, v.message]),
    [
      // 9.50 − 10.00 = −0.50 ≤ 18.20
      [true, 'predict_bleu-4 = 18.20 ≥ -0.50 (baseline 9.50 − 10.00)'],
      // 100 + 25 = 125 < 130
      [false, 'predict_runtime = 130.00 > 125.00 (baseline 100.00 + 25.00)'],
    ],
  );
});

test('missing metrics and a missing baseline fail with a reason', () => {
  const report = evaluateGate({ bleu4: { min: 1 }, rougeL: { minOverBaseline: 0 } }, { 'predict_rouge-l': 30 });
  assert.equal(report.passed, false);
  assert.deepEqual(
    report.verdicts.map((v) => v.message),
    [
      'predict_bleu-4: missing from the results (required ≥ 1.00)',
      'predict_rouge-l = 30.00, but no baseline results were given (required ≥ baseline + 0.00)',
    ],
  );
  const noKey = evaluateGate({ rougeL: { minOverBaseline: 0 } }, adapter, { 'predict_bleu-4': 3 });
  assert.equal(noKey.verdicts[0]!.message, 'predict_rouge-l = 30.10, but the baseline has no predict_rouge-l (required ≥ baseline + 0.00)');
});

test('non-numeric result values count as missing', () => {
  const report = evaluateGate({ bleu4: { min: 1 } }, { 'predict_bleu-4': 'NaN' });
  assert.equal(report.passed, false);
  assert.equal(report.verdicts[0]!.actual, undefined);
});

test('numbers that print equal at two decimals are shown with more', () => {
  const report = evaluateGate({ bleu4: { min: 20 } }, { 'predict_bleu-4': 19.998 });
  assert.equal(report.verdicts[0]!.message, 'predict_bleu-4 = 19.9980 < 20.0000 (required)');
});

test('rules are canonical whatever the spelling and order', () => {
  const a = gateRules({ runtime: { max: 10 }, bleu4: { min: 20, minOverBaseline: 1 } });
  const b = gateRules({ 'predict_bleu-4': { minOverBaseline: 1 }, bleu4: { min: 20 }, predict_runtime: { max: 10 } });
  assert.deepEqual(a, b);
  assert.deepEqual(a, [
    { metric: 'predict_bleu-4', comparison: 'min', value: 20 },
    { metric: 'predict_bleu-4', comparison: 'minOverBaseline', value: 1 },
    { metric: 'predict_runtime', comparison: 'max', value: 10 },
  ]);
  assert.equal(gateNeedsBaseline(a), true);
  assert.equal(gateNeedsBaseline({ bleu4: { min: 1 } }), false);
  // Normalized rules evaluate like the table they came from.
  assert.deepEqual(evaluateGate(a, adapter, base), evaluateGate({ runtime: { max: 10 }, bleu4: { min: 20, minOverBaseline: 1 } }, adapter, base));
});

test('checkGate reports every problem with path, value and fix', () => {
  const issues = checkGate(
    { bleu: { min: 20 }, rougeL: { minOverBaseline: 5, mni: 3 }, rouge1: {}, rouge2: { min: 'high' }, runtime: { min: 50, max: 10 }, bleu4: { min: 2000 } },
    { path: 'stages.evaluate.gate', hasBaseline: false },
  );
  const byCode = issues.map((i) => [i.code, i.path]);
  assert.deepEqual(byCode, [
    ['gate.unknown-metric', 'stages.evaluate.gate.bleu'],
    ['gate.needs-baseline', 'stages.evaluate.gate.rougeL.minOverBaseline'],
    ['gate.unknown-bound', 'stages.evaluate.gate.rougeL.mni'],
    ['gate.empty-condition', 'stages.evaluate.gate.rouge1'],
    ['gate.not-a-number', 'stages.evaluate.gate.rouge2.min'],
    ['gate.unreachable', 'stages.evaluate.gate.bleu4.min'],
    ['gate.contradiction', 'stages.evaluate.gate.predict_runtime'],
  ]);
  assert.equal(issues[0]!.fix, "did you mean 'bleu4'?");
  assert.equal(issues[2]!.fix, "did you mean 'max' or 'min'?");
  assert.deepEqual(checkGate({ bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } }, { path: 'g', hasBaseline: true }), []);
  assert.equal(checkGate([1], { path: 'g', hasBaseline: true })[0]!.code, 'gate.not-an-object');
});

test('NaN scores (an evaluation that scored no predictions) fail with that reason, not as missing', () => {
  // NumPy's mean of an empty list: LLaMA-Factory writes NaN for every BLEU/ROUGE key.
  const empty = { ...adapter, 'predict_bleu-4': Number.NaN, 'predict_rouge-1': Number.NaN, 'predict_rouge-2': Number.NaN, 'predict_rouge-l': Number.NaN };
  const report = evaluateGate({ bleu4: { min: 20 }, runtime: { max: 200 } }, empty);
  assert.equal(report.passed, false);
  assert.equal(report.verdicts[0]!.message, 'predict_bleu-4 is not a number (NaN): no predictions were scored (required ≥ 20.00)');
  assert.equal(report.verdicts[0]!.reason, 'is not a number (NaN): no predictions were scored');
  // The NaN metrics no rule names fail the gate too, each named once.
  assert.deepEqual(report.problems, [
    'predict_rouge-1 is not a number (NaN): no predictions were scored',
    'predict_rouge-2 is not a number (NaN): no predictions were scored',
    'predict_rouge-l is not a number (NaN): no predictions were scored',
  ]);
  assert.match(report.summary, /^gate failed \(1 of 2 rules, 3 problems\): predict_rouge-1 is not a number/);
  // Even a gate whose rules all pass.
  const runtimeOnly = evaluateGate({ runtime: { max: 200 } }, empty);
  assert.equal(runtimeOnly.passed, false);
  assert.equal(runtimeOnly.verdicts[0]!.passed, true);
  // Nothing in the report is NaN: it stays JSON.
  assert.doesNotMatch(JSON.stringify(report), /null/);
  // A NaN baseline is named as such.
  const relative = evaluateGate({ bleu4: { minOverBaseline: 0 } }, adapter, { 'predict_bleu-4': Number.NaN });
  assert.equal(relative.verdicts[0]!.message, "predict_bleu-4 = 18.20, but the baseline's predict_bleu-4 is not a number (NaN): no predictions were scored (required ≥ baseline + 0.00)");
  assert.equal(evaluateGate({ runtime: { max: 200 } }, { ...adapter, predict_runtime: Number.POSITIVE_INFINITY }).verdicts[0]!.message, 'predict_runtime is not finite (Infinity) (required ≤ 200.00)');
});

test('an empty prediction set fails the gate with a reason', () => {
  const none = evaluateGate({ bleu4: { min: 0 } }, adapter, undefined, { predictions: 0, emptyPredictions: 0 });
  assert.equal(none.passed, false);
  assert.deepEqual(none.problems, ['no predictions were scored: the prediction set has no rows']);
  // All empty: the scores are real zeros, and a lenient rule would pass them.
  const blank = evaluateGate({ bleu4: { minOverBaseline: -100 } }, { ...adapter, 'predict_bleu-4': 0 }, base, { predictions: 12, emptyPredictions: 12 });
  assert.equal(blank.passed, false);
  assert.equal(blank.verdicts[0]!.passed, true);
  assert.equal(blank.summary, 'gate failed (0 of 1 rules, 1 problem): every prediction is empty (12 of 12): the model produced no text to judge');
  // Some empty answers are the model's business, not the gate's.
  const some = evaluateGate({ bleu4: { min: 10 } }, adapter, undefined, { predictions: 12, emptyPredictions: 11 });
  assert.equal(some.passed, true);
  assert.equal('problems' in some, false);
});
