import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { evaluateGate } from '@tunepipe/core';
import { gatherRunReport, lineChartSvg, niceTicks, renderReport, reportCommand, verifyCommand, type RunReportData } from '../src/index.ts';
import { fakeOpenAiServer } from './fake-openai-server.ts';
import { byName, compiled, localDir, PIPELINE, runs, writeArtifacts } from './run-fixture.ts';

// Artifact trees hold 16 GB of sparse weight files; they go when the tests end (the screenshot stays).
const roots: string[] = [];
after(() => Promise.all(roots.map((root) => rm(root, { recursive: true, force: true }))));
async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tunepipe-report-'));
  roots.push(root);
  return root;
}

const gates = {
  evaluate: { gate: { bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } }, baseline: 'evaluate-base' },
  'evaluate-gptq': { gate: { bleu4: { min: 40 } } },
};

async function finishedRun(): Promise<string> {
  const root = await tempRoot();
  await writeArtifacts(root);
  // The post-deploy Job writes next to the serve stage's hash, as `tunepipe verify --out` does in-cluster.
  const server = await fakeOpenAiServer({
    models: [PIPELINE],
    reply: (messages) => (/你是谁|Who are you/.test(messages.at(-1)!.content) ? '我是小聚，由Aron开发的AI助手。' : '市盈率是股价除以每股收益。'),
  });
  try {
    const code = await verifyCommand(
      {
        endpoint: server.url,
        servedModelName: PIPELINE,
        expectName: '小聚',
        datasetDir: localDir(root, 'convert'),
        datasets: ['identity.test', 'fintech.test'],
        out: localDir(root, 'serve'),
      },
      { stdout: () => {}, stderr: () => {}, env: {} },
    );
    assert.equal(code, 0);
  } finally {
    await server.close();
  }
  return root;
}

test('gathers timeline, loss curves, evaluations with gates, shards and the endpoint', async () => {
  const root = await finishedRun();
  const data = await gatherRunReport({ compiled, artifactsDir: root, runs, gates, now: new Date('2025-05-01T08:00:00Z') });
  assert.deepEqual(data.problems, []);
  assert.equal(data.generatedAt, '2025-05-01T08:00:00.000Z');
  assert.deepEqual(
    data.stages.map((s) => [s.name, s.status, s.cacheHit, s.durationSeconds]),
    [
      ['fetch-model', 'cached', true, undefined],
      ['convert', 'cached', true, undefined],
      ['sft', 'done', false, 1542],
      ['merge', 'done', false, 412],
      ['quantize', 'done', false, 1890],
      ['evaluate-base', 'done', false, 61],
      ['evaluate', 'done', false, 58],
      ['evaluate-merged', 'done', false, 49],
      ['evaluate-gptq', 'done', false, 40],
      ['serve', 'done', false, 184],
    ],
  );
  assert.equal(data.training!.train.length, 60);
  assert.equal(data.training!.eval.length, 3);
  assert.equal(data.training!.summary['train_runtime'], 1530.1399);

  assert.deepEqual(data.evaluations.map((e) => [e.model, e.stage, e.samples, e.gate?.passed]), [
    ['base', 'evaluate-base', 4, undefined],
    ['adapter', 'evaluate', 4, true],
    ['merged', 'evaluate-merged', 4, undefined],
    ['gptq', 'evaluate-gptq', 4, false],
    ['served', 'serve', 4, undefined],
  ]);
  const adapter = data.evaluations[1]!;
  assert.deepEqual(adapter.gate!.verdicts.map((v) => v.message), [
    'predict_bleu-4 = 41.29 ≥ 20.00 (required)',
    'predict_rouge-l = 52.77 ≥ 22.55 (baseline 17.55 + 5.00)',
  ]);
  assert.equal(data.evaluations[3]!.gate!.verdicts[0]!.message, 'predict_bleu-4 = 38.77 < 40.00 (required)');
  assert.match(data.evaluations[4]!.method, /GPTQ/);

  const merge = data.artifacts.find((a) => a.stage === 'merge')!;
  assert.equal(merge.complete, true);
  assert.deepEqual(merge.shards!.map((s) => s.name), [1, 2, 3, 4, 5].map((i) => `model-0000${i}-of-00005.safetensors`));
  assert.equal(merge.shards!.reduce((sum, s) => sum + s.bytes, 0), 16_060_522_496);
  assert.equal(data.artifacts.find((a) => a.stage === 'fetch-model')!.shards, undefined);

  assert.deepEqual(
    { url: data.endpoint!.url, name: data.endpoint!.servedModelName, passed: data.endpoint!.postDeploy!.passed },
    { url: 'http://llama3-fintech-serve.tunepipe.svc.cluster.local:8000/v1', name: PIPELINE, passed: true },
  );
});

test('without runner records: markers and LLaMA-Factory files give status and durations; problems are listed', async () => {
  const root = await tempRoot();
  await writeArtifacts(root);
  await rm(join(localDir(root, 'evaluate-gptq'), '.tunepipe-complete'));
  await writeFile(join(localDir(root, 'quantize'), '.tunepipe-complete'), '{"stage":"quantize","hash":"0000","files":3}');
  await writeFile(join(localDir(root, 'sft'), 'trainer_log.jsonl'), `${await readFile(join(localDir(root, 'sft'), 'trainer_log.jsonl'), 'utf8')}{"current_steps": 30`);
  const data = await gatherRunReport({ compiled, artifactsDir: root, gates: { evaluate: { gate: { rougeL: { minOverBaseline: 5 } }, baseline: 'evaluate-base' } } });
  const status = Object.fromEntries(data.stages.map((s) => [s.name, [s.status, s.durationSeconds, s.durationSource]]));
  assert.deepEqual(status['sft'], ['done', 1530.1399, 'all_results.json']);
  assert.deepEqual(status['evaluate'], ['done', 21.3402, 'predict_results.json']);
  assert.deepEqual(status['evaluate-gptq'], ['pending', undefined, undefined]);
  assert.deepEqual(status['quantize'], ['pending', undefined, undefined]);
  assert.equal(data.training!.train.length, 60, 'the readable part of a damaged log is still drawn');
  assert.deepEqual(data.problems.map((p) => p.code), ['trainer-log.json', 'report.marker-hash']);
  assert.match(data.problems[0]!.path, /trainer_log\.jsonl:65$/);
  const { html, markdown } = renderReport(data);
  assert.match(html, /Problems while gathering/);
  assert.match(markdown, /## Problems while gathering/);
});

test('a gate stored on the compiled stage is used', async () => {
  const root = await tempRoot();
  await writeArtifacts(root);
  const withGate = {
    ...compiled,
    stages: compiled.stages.map((s) => (s.name === 'evaluate-merged' ? { ...s, gate: { gate: { bleu4: { min: 50 } } } } : s)),
  };
  const data = await gatherRunReport({ compiled: withGate, artifactsDir: root });
  assert.equal(data.evaluations.find((e) => e.stage === 'evaluate-merged')!.gate!.verdicts[0]!.message, 'predict_bleu-4 = 41.02 < 50.00 (required)');
});

test('the compiler\'s gate shape and the verdict the evaluate pod enforced (gate.json)', async () => {
  const root = await tempRoot();
  await writeArtifacts(root);
  const basePath = `${byName('evaluate-base').artifactPath}/predict_results.json`;
  const withGate = {
    ...compiled,
    stages: compiled.stages.map((s) =>
      s.name === 'evaluate'
        ? { ...s, gate: { rules: [{ metric: 'predict_rouge-l', comparison: 'minOverBaseline', value: 40 }], baselineResults: basePath } }
        : s,
    ),
  };
  const computed = await gatherRunReport({ compiled: withGate, artifactsDir: root });
  // 17.5528 + 40 = 57.5528 > 52.7716
  assert.equal(computed.evaluations.find((e) => e.stage === 'evaluate')!.gate!.verdicts[0]!.message, 'predict_rouge-l = 52.77 < 57.55 (baseline 17.55 + 40.00)');

  const enforced = { passed: true, summary: 'gate passed (1/1 rules)', verdicts: [{ rule: { metric: 'predict_bleu-4', comparison: 'min', value: 20 }, passed: true, message: 'predict_bleu-4 = 41.29 ≥ 20.00 (required)' }] };
  await writeFile(join(localDir(root, 'evaluate'), 'gate.json'), JSON.stringify(enforced));
  const fromPod = await gatherRunReport({ compiled: withGate, artifactsDir: root });
  assert.equal(fromPod.evaluations.find((e) => e.stage === 'evaluate')!.gate!.summary, 'gate passed (1/1 rules)');
  assert.deepEqual(fromPod.problems, []);
});

test('a failed gate shows as failed with metric, threshold and value, from the work folder it left', async () => {
  const root = await tempRoot();
  await writeArtifacts(root);
  // What a gated evaluate leaves when its gate fails: no marker, the tool's output still in <out>.partial.
  const dir = localDir(root, 'evaluate-gptq');
  await rm(join(dir, '.tunepipe-complete'));
  await rename(dir, `${dir}.partial`);
  const results = JSON.parse(await readFile(join(`${dir}.partial`, 'predict_results.json'), 'utf8')) as Record<string, number>;
  await writeFile(join(`${dir}.partial`, 'gate.json'), JSON.stringify(evaluateGate([{ metric: 'predict_bleu-4', comparison: 'min', value: 40 }], results)));

  const withoutRecords = await gatherRunReport({ compiled, artifactsDir: root });
  const stage = withoutRecords.stages.find((s) => s.name === 'evaluate-gptq')!;
  assert.deepEqual([stage.status, stage.reason], ['failed', 'gate failed: bleu4 38.77 < min 40'], 'said as the runner says it');
  const evaluation = withoutRecords.evaluations.find((e) => e.stage === 'evaluate-gptq')!;
  assert.equal(evaluation.gate?.passed, false);
  assert.equal(evaluation.metrics['predict_bleu-4'], results['predict_bleu-4']);
  assert.deepEqual(withoutRecords.problems, []);

  // The runner's records give the durations and the headline it printed.
  const records = [
    { stage: 'sft', status: 'done' as const, startedAt: '2025-04-30T14:55:20Z', finishedAt: '2025-04-30T15:21:02Z' },
    { stage: 'evaluate-gptq', status: 'failed' as const, durationSeconds: 95, reason: 'gate failed: bleu4 38.77 < min 40' },
  ];
  const data = await gatherRunReport({ compiled, artifactsDir: root, runs: records });
  assert.deepEqual(data.stages.find((s) => s.name === 'sft')!.durationSeconds, 1542);
  const gated = data.stages.find((s) => s.name === 'evaluate-gptq')!;
  assert.deepEqual([gated.status, gated.durationSeconds, gated.reason], ['failed', 95, 'gate failed: bleu4 38.77 < min 40']);

  const { html, markdown } = renderReport(data);
  assert.match(html, /<span class="badge fail">failed<\/span><br><span class="reason">gate failed: bleu4 38\.77 &lt; min 40<\/span>/);
  assert.match(html, /<span class="badge fail">gate failed<\/span><table class="verdicts">.*<td><code>predict_bleu-4<\/code><\/td><td>≥ 40\.00<\/td><td class="num">38\.77<\/td><td>✗<\/td>/s);
  assert.match(html, /<div class="meta">[^\n]*<span class="badge fail">gate failed<\/span><\/div>/, 'the header says the run failed its gate');
  assert.match(markdown, /\| evaluate-gptq \| evaluate \| \S+ \| failed: gate failed: bleu4 38\.77 &lt; min 40 \| 1m 35s \|/);
  assert.match(markdown, /Gate of evaluate-gptq: \*\*failed\*\*\n\n\| Metric \| Threshold \| Value \| Result \|\n.*\n\| predict\\_bleu-4 \| ≥ 40\.00 \| 38\.77 \| ✗ FAIL \|/);
});

test('every text is escaped in HTML and Markdown', () => {
  const evil = '<img src=x onerror="alert(1)"> | `x` & y';
  const data: RunReportData = {
    pipeline: evil,
    namespace: 'ns',
    generatedAt: '2025-05-01T00:00:00.000Z',
    stages: [{ name: evil, kind: 'sft', hash: 'abcdef0123456789', status: 'failed', cacheHit: false, gpus: 1, durationSeconds: 5 }],
    training: { stage: evil, train: [{ step: 1, value: 2 }], eval: [], summary: {} },
    evaluations: [{ model: 'adapter', stage: evil, method: evil, metrics: { 'predict_bleu-4': 1 } }],
    artifacts: [{ stage: evil, kind: 'merge', path: evil, complete: false, bytes: 1, files: 1, shards: [{ name: evil, bytes: 1 }] }],
    endpoint: { serviceName: evil, namespace: 'ns', port: 8000, url: evil, servedModelName: evil, postDeploy: { passed: false, lines: [evil, '```'] } },
    problems: [{ path: evil, code: 'x', message: evil }],
  };
  const { html, markdown } = renderReport(data);
  assert.ok(!html.includes('<img'), 'no raw tag from data in HTML');
  assert.ok(html.includes('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'));
  assert.ok(!/<script/i.test(html));
  // Code spans and fenced blocks show their content literally; everywhere else tags are escaped.
  const prose = markdown.replace(/^```$[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');
  assert.ok(!prose.includes('<img'), 'no raw tag from data in Markdown prose');
  assert.ok(markdown.includes('&lt;img src=x onerror="alert(1)"&gt; \\| \\`x\\` &amp; y'), 'cells escape pipes and backticks');
  // A stray code fence in the post-deploy lines cannot close the fenced block early.
  assert.equal(markdown.match(/^```$/gm)!.length % 2, 0);
});

test('chart: nice ticks and one point per step', () => {
  assert.deepEqual(niceTicks(0, 300, 6), [0, 50, 100, 150, 200, 250, 300]);
  assert.deepEqual(niceTicks(0.3, 1.5, 5), [0.4, 0.6, 0.8, 1, 1.2, 1.4]);
  const svg = lineChartSvg([{ id: 'train', label: 'loss', color: '#000', points: [{ step: 5, value: 1 }, { step: 10, value: 0.5 }] }], {
    title: 't',
    xLabel: 'step',
    yLabel: 'loss',
    xMax: 10,
  });
  assert.match(svg, /<path class="series series-train" data-series="train" data-points="2" d="M\S+ \S+ L\S+ \S+"/);
  assert.equal(svg.match(/<circle /g)!.length, 2);
});

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM} (apt-get install -y chromium); the browser test cannot run`;

test('the HTML report renders in headless Chromium with its chart and tables', { skip: noChromium, timeout: 120_000 }, async (t) => {
  const root = await finishedRun();
  const outDir = join(root, 'out');
  const written = await reportCommand({ compiled, artifactsDir: root, runs, gates, outDir, now: new Date('2025-05-01T08:00:00Z') });
  assert.equal(written.htmlPath, join(outDir, 'report.html'));
  const markdown = await readFile(written.markdownPath, 'utf8');
  assert.match(markdown, /^# llama3-fintech/);
  assert.match(markdown, /\| 300 \| 1\.0199 \|/);
  assert.match(markdown, /\| LoRA adapter \| evaluate \| 4 \| 41\.29 \| 58\.90 \| 39\.44 \| 52\.77 \| 21 s \| 0\.187 \| passed \|/);

  const { chromium } = await import('playwright-core');
  const work = await mkdtemp(join(tmpdir(), 'tunepipe-chromium-'));
  const context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  try {
    const external: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(pathToFileURL(written.htmlPath).href);

    const train = page.locator('#loss-chart svg path[data-series="train"]');
    assert.equal(await train.getAttribute('data-points'), '60');
    assert.equal((await train.getAttribute('d'))!.match(/[ML]/g)!.length, 60);
    assert.equal(await page.locator('#loss-chart svg g.points-train circle').count(), 60);
    assert.equal(await page.locator('#loss-chart svg g.points-eval circle').count(), 3);
    const box = await page.locator('#loss-chart svg').boundingBox();
    assert.ok(box && box.width > 300 && box.height > 150, `chart is visible: ${JSON.stringify(box)}`);
    assert.equal(await page.locator('#loss-chart svg .axis-label').count(), 2);
    assert.match(await page.locator('p.trend').innerText(), /^Eval loss was lowest at step 100 \(0\.8903\) and rose to 1\.0199 by step 300/);

    const rows = page.locator('#eval-table > tbody > tr');
    assert.equal(await rows.count(), 5);
    assert.match((await page.locator('#eval-table tr[data-model="adapter"]').innerText()).replace(/\s+/g, ' '), /41\.29 58\.90 39\.44 52\.77 .*gate passed/);
    assert.match((await page.locator('#eval-table tr[data-model="gptq"]').innerText()).replace(/\s+/g, ' '), /gate failed Metric Threshold Value predict_bleu-4 ≥ 40\.00 38\.77 ✗/i);
    assert.equal(await page.locator('#timeline tbody tr').count(), 10);
    assert.equal(await page.locator('#timeline .bar.cached').count(), 0, 'cached stages have no duration bar');
    assert.match(await page.locator('#timeline tr[data-stage="fetch-model"]').innerText(), /cache hit/);
    assert.equal(await page.locator('table.shards[data-stage="merge"] tbody tr').count(), 5);
    assert.match(await page.locator('#endpoint').innerText(), /http:\/\/llama3-fintech-serve\.tunepipe\.svc\.cluster\.local:8000\/v1/);

    const screenshot = join(work, 'report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const png = await readFile(screenshot);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok((await stat(screenshot)).size > 20_000, 'the screenshot has content');
    t.diagnostic(`screenshot: ${screenshot}`);
    assert.deepEqual(external, [], 'the report is self-contained');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
