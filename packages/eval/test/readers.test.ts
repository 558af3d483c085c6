import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  computeSimilarity,
  lossCurves,
  parseGeneratedPredictions,
  parsePredictResults,
  parsePythonJson,
  parseTrainerLog,
  readGeneratedPredictions,
  readPredictResults,
  readResultsFile,
  readTestSet,
  readTestSetFile,
  readTrainerLog,
} from '../src/index.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

test('trainer_log.jsonl of the seed run: 60 loss points every 5 steps, eval loss at 100/200/300', async () => {
  const log = await readTrainerLog(join(fixtures, 'sft/trainer_log.jsonl'));
  assert.deepEqual(log.issues, []);
  assert.equal(log.value!.length, 64);
  const curves = lossCurves(log.value!);
  assert.equal(curves.totalSteps, 300);
  assert.equal(curves.train.length, 60);
  assert.deepEqual(curves.train.map((p) => p.step), Array.from({ length: 60 }, (_, i) => 5 * (i + 1)));
  assert.deepEqual(curves.train[0], { step: 5, value: 1.4229 });
  assert.deepEqual(curves.train.at(-1), { step: 300, value: 0.448 });
  assert.deepEqual(
    curves.eval.map((p) => [p.step, Number(p.value.toFixed(4))]),
    [[100, 0.8903], [200, 0.9802], [300, 1.0199]],
  );
  const first = log.value![0]!;
  assert.equal(first.lr, 4.997807075247146e-5);
  assert.equal(first.elapsed_time, '0:00:26');
  assert.equal(first.throughput, 1828.21);
});

test('results files', async () => {
  const train = await readResultsFile(join(fixtures, 'sft/train_results.json'));
  assert.equal(train.value!['train_runtime'], 1530.1399);
  const predict = await readPredictResults(join(fixtures, 'evaluate-adapter/predict_results.json'));
  assert.deepEqual(predict.issues, []);
  assert.equal(predict.value!['predict_bleu-4'], 41.2875);
  const rows = await readGeneratedPredictions(join(fixtures, 'evaluate-adapter/generated_predictions.jsonl'));
  assert.equal(rows.value!.length, 4);
  assert.match(rows.value![0]!.prompt, /^<\|begin_of_text\|>/);
});

test('scores recomputed from generated_predictions.jsonl use the same metrics', async () => {
  const rows = await readGeneratedPredictions(join(fixtures, 'evaluate-adapter/generated_predictions.jsonl'));
  const { samples } = computeSimilarity(rows.value!);
  // Row 1 is the worked Chinese example, row 2 is identical to its label (see metrics.test.ts).
  assert.deepEqual(samples[0], { 'rouge-1': 95.6522, 'rouge-2': 85.7143, 'rouge-l': 95.6522, 'bleu-4': 80.619 });
  assert.deepEqual(samples[1], { 'rouge-1': 100, 'rouge-2': 100, 'rouge-l': 100, 'bleu-4': 100 });
});

test('bad lines become issues with file:line, value and fix; good rows are kept', () => {
  const text = [
    '{"prompt": "p", "predict": "a", "label": "b"}',
    '{"prompt": "p", "predict": 3, "label": "b"}',
    '',
    '{"prompt": "p", "predi',
  ].join('\n');
  const result = parseGeneratedPredictions(text, 'out/generated_predictions.jsonl');
  assert.equal(result.value!.length, 1);
  assert.equal(result.issues.length, 2);
  assert.equal(result.issues[0]!.path, 'out/generated_predictions.jsonl:2 predict');
  assert.equal(result.issues[0]!.value, 3);
  assert.match(result.issues[0]!.fix!, /do_predict/);
  assert.equal(result.issues[1]!.path, 'out/generated_predictions.jsonl:4');
  assert.match(result.issues[1]!.message, /^not JSON .*truncated last line/);
});

test('Python NaN/Infinity in trainer_log.jsonl are read as numbers, not format errors', () => {
  assert.deepEqual(parsePythonJson('{"a": "NaN inside a string", "b": [Infinity, -Infinity]}'), { a: 'NaN inside a string', b: [Infinity, -Infinity] });
  const log = parseTrainerLog(
    [
      '{"current_steps": 5, "total_steps": 10, "loss": 1.5, "percentage": 50.0, "elapsed_time": "0:00:10", "remaining_time": "0:00:10"}',
      '{"current_steps": 10, "total_steps": 10, "loss": NaN, "percentage": 100.0, "elapsed_time": "0:00:20", "remaining_time": "0:00:00"}',
    ].join('\n'),
  );
  assert.deepEqual(log.issues, []);
  assert.ok(Number.isNaN(log.value![1]!.loss));
  // The curve leaves the NaN out rather than drawing it.
  assert.deepEqual(lossCurves(log.value!).train, [{ step: 5, value: 1.5 }]);
});

test('a resumed run logs steps again; the last entry of a step wins', () => {
  const line = (step: number, loss: number) =>
    JSON.stringify({ current_steps: step, total_steps: 20, loss, percentage: step * 5, elapsed_time: '0:00:01', remaining_time: '0:00:01' });
  const log = parseTrainerLog([line(5, 2), line(10, 1.9), line(15, 1.8), line(10, 1.7), line(15, 1.6)].join('\n'));
  assert.deepEqual(lossCurves(log.value!).train.map((p) => [p.step, p.value]), [[5, 2], [10, 1.7], [15, 1.6]]);
});

test('predict_results.json without predict keys, wrong types, missing files', async () => {
  const noKeys = parsePredictResults('{"eval_loss": 1.0}', 'x/predict_results.json');
  assert.equal(noKeys.value, undefined);
  assert.equal(noKeys.issues[0]!.code, 'predict-results.no-predict-keys');
  const wrong = parsePredictResults('{"predict_bleu-4": "high"}', 'x/predict_results.json');
  assert.deepEqual(wrong.issues.map((i) => [i.path, i.value]), [['x/predict_results.json predict_bleu-4', 'high']]);
  const notJson = parsePredictResults('{', 'x/predict_results.json');
  assert.match(notJson.issues[0]!.message, /^not JSON/);
  const missing = await readPredictResults('/nonexistent/predict_results.json');
  assert.equal(missing.issues[0]!.code, 'file.missing');
  assert.match(missing.issues[0]!.fix!, /tunepipe-complete/);
  const log = parseTrainerLog('{"current_steps": -1, "total_steps": 10, "percentage": 0, "elapsed_time": "", "remaining_time": ""}', 't.jsonl');
  assert.equal(log.issues[0]!.path, 't.jsonl:1 current_steps');
});

test('test split: dataset_info.json entries in alpaca and sharegpt formatting', async () => {
  const set = await readTestSet(join(fixtures, 'testset'), ['identity.test', 'fintech.test']);
  assert.deepEqual(set.issues, []);
  assert.equal(set.value!.length, 4);
  assert.deepEqual(set.value![0]!.messages, [{ role: 'user', content: '你是谁？' }]);
  assert.equal(set.value![0]!.label, '我是小聚，一个由Aron开发的AI助手。');
  assert.deepEqual(set.value![2]!.messages, [
    { role: 'system', content: '你是一个金融助手。' },
    { role: 'user', content: '什么是市盈率？' },
  ]);
  const unknown = await readTestSet(join(fixtures, 'testset'), ['identity']);
  assert.equal(unknown.issues[0]!.code, 'testset.unknown-entry');
  assert.match(unknown.issues[0]!.fix!, /identity\.test, fintech\.test/);
});

test('test split file: alpaca with input and history, openai messages, bad rows reported', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-testset-'));
  const alpaca = join(dir, 'a.jsonl');
  await writeFile(
    alpaca,
    [
      JSON.stringify({ instruction: '翻译', input: 'hello', output: '你好', history: [['hi', '嗨']] }),
      JSON.stringify({ instruction: 'no answer' }),
      'not json',
    ].join('\n'),
  );
  const a = await readTestSetFile(alpaca);
  assert.deepEqual(a.value![0]!.messages, [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: '嗨' },
    { role: 'user', content: '翻译\nhello' },
  ]);
  assert.deepEqual(a.issues.map((i) => [i.path, i.code]), [
    [`${alpaca}:3`, 'testset.json'],
    [`${alpaca}:2`, 'testset.no-response'],
  ]);
  const openai = join(dir, 'o.json');
  await writeFile(
    openai,
    JSON.stringify([
      { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] },
      { messages: [{ role: 'user', content: 'q' }] },
    ]),
  );
  const o = await readTestSetFile(openai);
  assert.deepEqual(o.value, [{ messages: [{ role: 'user', content: 'q' }], label: 'a', source: `${openai}#0` }]);
  assert.equal(o.issues[0]!.code, 'testset.no-answer');
});
