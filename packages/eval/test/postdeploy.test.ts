import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postDeployCheck, readTestSet, verifyCommand, type ChatTestRow } from '../src/index.ts';
import { fakeOpenAiServer, type FakeChatMessage } from './fake-openai-server.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const API_KEY = 'sk-test-3f9c2a7e';

// The served model's answers: the first is the worked Chinese example of metrics.test.ts, the
// second is identical to its label.
const ANSWERS: Record<string, string> = {
  '你是谁？': '我是小聚，由Aron开发的AI助手。',
  'Who are you?': 'I am 小聚, an AI assistant developed by Aron.',
};
const servedModel = (messages: readonly FakeChatMessage[]) => ANSWERS[messages.at(-1)!.content] ?? '我不知道。';

async function testRows(): Promise<ChatTestRow[]> {
  const set = await readTestSet(join(fixtures, 'testset'), ['identity.test']);
  assert.deepEqual(set.issues, []);
  return set.value!;
}

test('all checks pass; scores are the hand-computed ones; the key goes only in the Bearer header', async () => {
  const server = await fakeOpenAiServer({ models: ['llama3-fintech'], apiKey: API_KEY, reply: servedModel });
  try {
    const result = await postDeployCheck({
      baseUrl: `${server.url}/v1`,
      apiKey: API_KEY,
      servedModelName: 'llama3-fintech',
      expectName: '小聚',
      testSet: await testRows(),
      maxNewTokens: 256,
    });
    assert.equal(result.passed, true, result.lines.join('\n'));
    assert.deepEqual(result.checks.map((c) => [c.name, c.passed]), [
      ['health', true],
      ['models', true],
      ['identity', true],
      ['identity', true],
      ['scores', true],
    ]);
    // (80.619 + 100)/2, (95.6522 + 100)/2, (85.7143 + 100)/2, (95.6522 + 100)/2 — see metrics.test.ts
    assert.equal(result.scores!['predict_bleu-4'], (80.619 + 100) / 2);
    assert.equal(result.scores!['predict_rouge-1'], (95.6522 + 100) / 2);
    assert.equal(result.scores!['predict_rouge-2'], (85.7143 + 100) / 2);
    assert.equal(result.scores!['predict_rouge-l'], (95.6522 + 100) / 2);
    assert.ok(result.scores!.predict_runtime >= 0 && result.scores!.predict_samples_per_second > 0);
    assert.match(result.lines.at(-1)!, /^post-deploy check passed: llama3-fintech at http:\/\/127\.0\.0\.1:\d+$/);

    const health = server.requests.find((r) => r.path === '/health')!;
    assert.equal(health.headers.authorization, undefined);
    const v1 = server.requests.filter((r) => r.path.startsWith('/v1/'));
    assert.equal(v1.length, 1 + 2 + 2);
    for (const r of v1) assert.equal(r.headers.authorization, `Bearer ${API_KEY}`);
    const chat = v1.find((r) => r.path === '/v1/chat/completions')!;
    assert.deepEqual(chat.body, { model: 'llama3-fintech', messages: [{ role: 'user', content: '你是谁？' }], max_tokens: 256, temperature: 0 });
    assert.ok(!JSON.stringify(result).includes(API_KEY), 'the API key must not appear in the result');
  } finally {
    await server.close();
  }
});

test('the name missing from an identity answer fails the check and shows the reply', async () => {
  const server = await fakeOpenAiServer({
    models: ['llama3-fintech'],
    reply: (messages) => (messages.at(-1)!.content === 'Who are you?' ? "I'm Llama, a large language model trained by Meta AI." : servedModel(messages)),
  });
  try {
    const result = await postDeployCheck({ baseUrl: server.url, servedModelName: 'llama3-fintech', expectName: '小聚' });
    assert.equal(result.passed, false);
    const failed = result.checks.filter((c) => !c.passed);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.detail, `"Who are you?" → "I'm Llama, a large language model trained by Meta AI." does not contain "小聚"`);
    assert.ok(result.lines.includes(`✗ identity: "Who are you?" → "I'm Llama, a large language model trained by Meta AI." does not contain "小聚"`));
    assert.match(result.lines.at(-1)!, /^post-deploy check FAILED: 1 of 4 checks failed/);
    assert.equal(result.scores, undefined);
  } finally {
    await server.close();
  }
});

test('a wrong API key, a missing model name, failing completions', async () => {
  const server = await fakeOpenAiServer({
    models: ['other-model'],
    apiKey: API_KEY,
    reply: () => {
      throw new Error('CUDA out of memory');
    },
  });
  try {
    const wrongKey = await postDeployCheck({ baseUrl: server.url, apiKey: 'sk-wrong-key', servedModelName: 'llama3-fintech', expectName: '小聚' });
    assert.equal(wrongKey.passed, false);
    assert.equal(wrongKey.checks[1]!.detail, 'GET /v1/models → 401: {"error":"Unauthorized"} (check the API key)');
    assert.ok(!wrongKey.lines.join('\n').includes('sk-wrong-key'));

    const unlisted = await postDeployCheck({ baseUrl: server.url, apiKey: API_KEY, servedModelName: 'llama3-fintech', expectName: '小聚', testSet: await testRows() });
    assert.equal(unlisted.checks[1]!.detail, '/v1/models does not list "llama3-fintech" (it lists "other-model")');
    const scores = unlisted.checks.find((c) => c.name === 'scores')!;
    assert.equal(scores.passed, false);
    assert.match(scores.detail, /^0\/2 answered .* no scores; 2 failed, first: POST \/v1\/chat\/completions → 404/);
    assert.equal(unlisted.predictions.filter((p) => p.error).length, 2);
  } finally {
    await server.close();
  }
});

test('an unreachable or unhealthy endpoint fails without throwing and skips the rest', async () => {
  const server = await fakeOpenAiServer({ models: [], reply: () => '' });
  const url = server.url;
  await server.close();
  const down = await postDeployCheck({ baseUrl: url, servedModelName: 'm', expectName: '小聚' });
  assert.equal(down.passed, false);
  assert.match(down.checks[0]!.detail, new RegExp(`^cannot reach ${url.replace(/[.]/g, '\\.')}/health: ECONNREFUSED$`));
  assert.deepEqual(down.checks.slice(1).map((c) => [c.name, c.ran]), [['models', false], ['identity', false], ['scores', false]]);
  assert.ok(down.lines[1]!.startsWith('– models: skipped'));

  const starting = await fakeOpenAiServer({ models: ['m'], healthStatus: 503, reply: () => '' });
  try {
    const result = await postDeployCheck({ baseUrl: starting.url, servedModelName: 'm', expectName: '小聚' });
    assert.equal(result.checks[0]!.detail, 'GET /health → 503: (empty body)');
  } finally {
    await starting.close();
  }
});

test('the gate judges the served scores', async () => {
  const server = await fakeOpenAiServer({ models: ['m'], reply: servedModel });
  try {
    const result = await postDeployCheck({
      baseUrl: server.url,
      servedModelName: 'm',
      expectName: '小聚',
      testSet: await testRows(),
      gate: { bleu4: { min: 95 }, rougeL: { minOverBaseline: -5 } },
      baseline: { 'predict_rouge-l': 98 },
      // The evaluate stage's sampling, for scores comparable with LLaMA-Factory's.
      temperature: 0.95,
      topP: 0.7,
    });
    const body = server.requests.find((r) => r.path === '/v1/chat/completions')!.body as Record<string, unknown>;
    assert.deepEqual([body['temperature'], body['top_p'], body['max_tokens']], [0.95, 0.7, 512]);
    assert.equal(result.gate!.passed, false);
    assert.deepEqual(result.gate!.verdicts.map((v) => v.message), [
      'predict_bleu-4 = 90.31 < 95.00 (required)',
      'predict_rouge-l = 97.83 ≥ 93.00 (baseline 98.00 − 5.00)',
    ]);
    assert.equal(result.checks.at(-1)!.name, 'gate');
  } finally {
    await server.close();
  }
});

test('tunepipe verify: key from the environment, results written for the report, exit codes', async () => {
  const server = await fakeOpenAiServer({ models: ['llama3-fintech'], apiKey: API_KEY, reply: servedModel });
  const out = await mkdtemp(join(tmpdir(), 'tunepipe-verify-'));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = { stdout: (l: string) => stdout.push(l), stderr: (l: string) => stderr.push(l), env: { VLLM_API_KEY: API_KEY } };
  try {
    const code = await verifyCommand(
      {
        endpoint: server.url,
        servedModelName: 'llama3-fintech',
        expectName: '小聚',
        datasetDir: join(fixtures, 'testset'),
        datasets: ['identity.test', 'fintech.test'],
        gate: '{"bleu4": {"min": 10}}',
        out,
      },
      io,
    );
    assert.equal(code, 0, [...stdout, ...stderr].join('\n'));
    assert.ok(stdout.some((l) => l.startsWith('✓ scores: 4/4 answered')));
    assert.ok(!stdout.join('\n').includes(API_KEY));
    const saved = JSON.parse(await readFile(join(out, 'post_deploy_check.json'), 'utf8')) as { passed: boolean };
    assert.equal(saved.passed, true);
    const predict = JSON.parse(await readFile(join(out, 'predict_results.json'), 'utf8')) as Record<string, number>;
    assert.equal(typeof predict['predict_rouge-l'], 'number');
    const lines = (await readFile(join(out, 'generated_predictions.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 4);
    assert.ok(!(await readFile(join(out, 'post_deploy_check.json'), 'utf8')).includes(API_KEY));

    // Without the key in the environment the served API refuses: a failed check, exit 3.
    const refused = await verifyCommand({ endpoint: server.url, servedModelName: 'llama3-fintech', expectName: '小聚' }, { ...io, env: {} });
    assert.equal(refused, 3);

    // Bad input: every problem at once, no request made.
    stderr.length = 0;
    const before = server.requests.length;
    const bad = await verifyCommand(
      { endpoint: 'llama3-fintech-serve:8000', servedModelName: 'm', expectName: '小聚', testset: '/nonexistent.json', gate: '{"blue4": {"min": 1}}', limit: 0 },
      io,
    );
    assert.equal(bad, 1);
    assert.equal(server.requests.length, before);
    assert.equal(stderr[0], 'tunepipe verify: 4 problems');
    assert.match(stderr[1]!, /✗ --gate\.blue4: unknown metric 'blue4'[\s\S]*did you mean 'bleu4'\?[\s\S]*✗ --endpoint: not an http\(s\) URL[\s\S]*✗ --limit[\s\S]*✗ \/nonexistent\.json/);

    // A gate with nothing to judge is refused up front, not silently skipped.
    stderr.length = 0;
    const unjudged = await verifyCommand({ endpoint: server.url, servedModelName: 'llama3-fintech', expectName: '小聚', gate: '{"bleu4": {"min": 20}}' }, io);
    assert.equal(unjudged, 1);
    assert.match(stderr[1]!, /✗ --gate: a gate judges scores, and without a test split there are none/);
  } finally {
    await server.close();
  }
});

test('a served model that answers only empty text fails its gate with that reason, whatever the rules', async () => {
  const server = await fakeOpenAiServer({ models: ['llama3-fintech'], apiKey: API_KEY, reply: () => '  ' });
  try {
    const result = await postDeployCheck({
      baseUrl: server.url,
      apiKey: API_KEY,
      servedModelName: 'llama3-fintech',
      expectName: '小聚',
      identityPrompts: [],
      testSet: await testRows(),
      // A rule that zero scores pass: the empty answers must still fail the gate.
      gate: { runtime: { max: 1000 } },
    });
    const gate = result.checks.find((c) => c.name === 'gate')!;
    assert.equal(gate.passed, false);
    assert.match(gate.detail, /every prediction is empty \(2 of 2\): the model produced no text to judge/);
    assert.match(result.checks.find((c) => c.name === 'scores')!.detail, /; 2 empty/);
    assert.deepEqual(result.gate!.problems, ['every prediction is empty (2 of 2): the model produced no text to judge']);
    assert.equal(result.passed, false);
  } finally {
    await server.close();
  }
});
