import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXCLUDED_SOURCES, caseError, plannerCases, withinTolerance } from '../../../bench/planner/cases.ts';

// The bench (npm run bench:planner) as a test: every case keeps its source, and every gated case
// its tolerance — the calibration points ±5 %, the held-out published figures ±10 %.
const cases = plannerCases();

test('every case names its source and says what the source reports', () => {
  assert.ok(cases.length >= 7);
  for (const c of cases) {
    assert.ok(c.source.title.length > 0 && c.source.url.length > 0 && c.source.says.length > 0, c.id);
    assert.ok(c.note.length > 0, c.id);
    assert.ok(Number.isFinite(c.measured) && c.measured > 0 && Number.isFinite(c.predicted) && c.predicted > 0, c.id);
  }
  assert.equal(new Set(cases.map((c) => c.id)).size, cases.length, 'case ids are unique');
  for (const s of EXCLUDED_SOURCES) assert.ok(s.why.length > 0 && s.url.length > 0, s.title);
});

test('the H100 calibration points are reproduced within ±5 %', () => {
  const calibration = cases.filter((c) => c.role === 'calibration');
  // two allocated peaks, one reserved peak, two throughputs
  assert.equal(calibration.length, 5);
  for (const c of calibration) {
    assert.equal(c.tolerance, 0.05);
    assert.ok(withinTolerance(c), `${c.id}: ${(caseError(c) * 100).toFixed(2)} %`);
  }
  // the memory terms are derived, not fitted: they land within 0.2 % of both allocated peaks
  for (const c of calibration.filter((x) => x.id.endsWith('-allocated'))) assert.ok(Math.abs(caseError(c)) < 0.002, c.id);
});

test('every held-out published case is within ±10 %', () => {
  const heldOut = cases.filter((c) => c.role === 'held-out');
  assert.ok(heldOut.length >= 2);
  for (const c of heldOut) {
    assert.equal(c.tolerance, 0.1);
    assert.ok(withinTolerance(c), `${c.id}: ${(caseError(c) * 100).toFixed(2)} %`);
  }
});

test('reference cases are shown with the reason they are not gated', () => {
  for (const c of cases.filter((x) => x.role === 'reference')) {
    assert.equal(c.tolerance, null);
    assert.match(c.note, /estimate|not LLaMA-Factory/);
  }
});
