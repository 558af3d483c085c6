// What the runner shows of a tool's log (the last line, the last error, a failed stage's log tail)
// is redacted before it is cut, so no piece of a printed token survives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GateVerdict } from '@tunepipe/core';
import { formatFailure, gateHeadline } from '../src/progress/format.ts';
import { LogProgressParser } from '../src/progress/parse.ts';
import type { StageState } from '../src/types.ts';

const TOKEN = 'hf_Q7mZ4bN8vR1wL6yH3cJ0dS5gT2aE7uPqXkLm';

/** Every run of 6 or more consecutive token characters in `text` (none may be). */
const tokenRuns = (text: string) => Array.from({ length: TOKEN.length - 5 }, (_, i) => TOKEN.slice(i, i + 6)).filter((piece) => text.includes(piece));

test('the last line and the last error are redacted before they are cut', () => {
  for (const offset of [0, 150, 190, 195, 199, 280, 295]) {
    const parser = new LogProgressParser();
    parser.push(`${'x '.repeat(offset / 2)}token ${TOKEN} was used\n`);
    parser.push(`ValueError: ${'y '.repeat(offset / 2)}bad token ${TOKEN} for repo\n`);
    const { lastLine, lastError } = parser.progress;
    assert.deepEqual(tokenRuns(lastLine ?? ''), [], `lastLine at ${offset}`);
    assert.deepEqual(tokenRuns(lastError ?? ''), [], `lastError at ${offset}`);
    assert.ok(lastError!.startsWith('ValueError: '));
    assert.ok(lastLine!.length <= 200 && lastError!.length <= 300);
  }
});

test('a failed stage shows its message and log tail redacted; gate problems head its headline', () => {
  const state: StageState = {
    stage: 'fetch-model',
    kind: 'fetch-model',
    hash: 'abc',
    status: 'failed',
    attempts: 1,
    preemptions: 0,
    expectedSeconds: 1,
    failure: { reason: 'exit code 1', message: `401 for token ${TOKEN}`, logTail: [`HF_TOKEN=${TOKEN}`, 'done'] },
  };
  const shown = formatFailure(state);
  assert.deepEqual(tokenRuns(shown), []);
  assert.match(shown, /<redacted:huggingface-token>/);

  const verdict: GateVerdict = {
    rule: { metric: 'predict_bleu-4', comparison: 'min', value: 20 },
    passed: false,
    reason: 'is not a number (NaN): no predictions were scored',
    message: '',
  };
  assert.equal(
    gateHeadline({ passed: false, verdicts: [verdict], problems: ['no predictions were scored: the prediction set has no rows'] }),
    'gate failed: no predictions were scored: the prediction set has no rows; bleu4 is not a number (NaN): no predictions were scored',
  );
});
