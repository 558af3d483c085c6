import { formatIssue, type GateVerdict } from '@tunepipe/core';
import { lineChartSvg } from './chart.ts';
import type { EvalModelKind, ReportStage, RunReportData } from './data.ts';
import { escapeHtml as h, escapeMarkdown, escapeMarkdownCell as md } from './escape.ts';
import { formatBytes, formatDuration, formatMetric } from './format.ts';

const MODEL_LABEL: Record<EvalModelKind, string> = {
  base: 'base model',
  adapter: 'LoRA adapter',
  merged: 'merged',
  gptq: 'GPTQ',
  served: 'served (vLLM)',
};

const METRIC_COLUMNS = [
  ['predict_bleu-4', 'BLEU-4'],
  ['predict_rouge-1', 'ROUGE-1'],
  ['predict_rouge-2', 'ROUGE-2'],
  ['predict_rouge-l', 'ROUGE-L'],
] as const;

const STATUS_TEXT: Record<ReportStage['status'], string> = {
  done: 'ran',
  cached: 'cached',
  failed: 'failed',
  running: 'running',
  queued: 'queued',
  pending: 'not run',
};

const CSS = `
:root { color-scheme: light; --fg:#1d2330; --muted:#5d6677; --line:#d9dee7; --ok:#1f7a3a; --bad:#b3261e; --accent:#2f5fb3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", sans-serif; color: var(--fg); margin: 0; background: #f6f7fa; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
.meta { color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
section h2 { margin: 0 0 12px; font-size: 18px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, monospace; background: #eef1f6; padding: 1px 4px; border-radius: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pass { background: #e3f4e8; color: var(--ok); }
.fail { background: #fbe4e2; color: var(--bad); }
.neutral { background: #eef1f6; color: var(--muted); }
.bar { height: 10px; border-radius: 5px; background: var(--accent); min-width: 2px; }
.bar.cached { background: repeating-linear-gradient(45deg, #b9c3d6, #b9c3d6 4px, #dfe4ee 4px, #dfe4ee 8px); }
.bar.failed { background: var(--bad); }
.verdicts { margin: 4px 0 0; font-size: 12px; width: auto; }
.verdicts th, .verdicts td { padding: 2px 6px; }
.verdicts tr.fail-line td { color: var(--bad); }
.reason { color: var(--bad); font-size: 12px; }
.chart { max-width: 100%; height: auto; background: #fff; }
.chart .grid { stroke: #eceff4; }
.chart .axis, .chart .tick-mark { stroke: #8a93a3; }
.chart .tick, .chart .legend { font-size: 11px; fill: var(--muted); }
.chart .axis-label { font-size: 12px; fill: var(--fg); }
.chart .chart-title { font-size: 13px; font-weight: 600; fill: var(--fg); }
pre { background: #f3f5f9; padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12px; }
`;

function gateBadge(passed: boolean | undefined): string {
  if (passed === undefined) return '<span class="badge neutral">no gate</span>';
  return passed ? '<span class="badge pass">gate passed</span>' : '<span class="badge fail">gate failed</span>';
}

/** The bound a gate rule sets, with the number it came to: `≥ 20.00`, `≥ baseline 17.55 + 5.00 = 22.55`. */
export function thresholdOf(v: GateVerdict): string {
  const lower = v.rule.comparison === 'min' || v.rule.comparison === 'minOverBaseline';
  const symbol = lower ? '≥' : '≤';
  if (v.rule.comparison === 'min' || v.rule.comparison === 'max') return `${symbol} ${v.rule.value.toFixed(2)}`;
  const offset = `${v.rule.value < 0 ? '−' : '+'} ${Math.abs(v.rule.value).toFixed(2)}`;
  return v.baseline !== undefined && v.required !== undefined ? `${symbol} baseline ${v.baseline.toFixed(2)} ${offset} = ${v.required.toFixed(2)}` : `${symbol} baseline ${offset}`;
}

const valueOf = (v: GateVerdict) => (v.actual === undefined ? 'missing' : v.actual.toFixed(2));

function verdictsHtml(verdicts: readonly GateVerdict[]): string {
  const rows = verdicts.map((v) => `<tr class="${v.passed ? 'pass-line' : 'fail-line'}" title="${h(v.message)}"><td><code>${h(v.rule.metric)}</code></td><td>${h(thresholdOf(v))}</td><td class="num">${h(valueOf(v))}</td><td>${v.passed ? '✓' : '✗'}</td></tr>`);
  return `<table class="verdicts"><thead><tr><th>Metric</th><th>Threshold</th><th class="num">Value</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function timelineHtml(data: RunReportData): string {
  const longest = Math.max(1, ...data.stages.map((s) => s.durationSeconds ?? 0));
  const rows = data.stages.map((s) => {
    const width = s.durationSeconds !== undefined ? Math.max(1, (s.durationSeconds / longest) * 100) : 0;
    const barClass = s.cacheHit ? 'bar cached' : s.status === 'failed' ? 'bar failed' : 'bar';
    const statusClass = s.status === 'failed' ? 'fail' : s.status === 'done' || s.cacheHit ? 'pass' : 'neutral';
    return `<tr data-stage="${h(s.name)}">
<td><strong>${h(s.name)}</strong><br><span class="meta">${h(s.kind)}${s.gpus > 0 ? ` · ${h(s.gpus)}× ${h(s.gpuType ?? 'GPU')}` : ''}</span></td>
<td><code>${h(s.hash.slice(0, 8))}</code></td>
<td><span class="badge ${statusClass}">${h(s.cacheHit ? 'cache hit' : STATUS_TEXT[s.status])}</span>${s.reason ? `<br><span class="reason">${h(s.reason)}</span>` : ''}</td>
<td class="num">${h(formatDuration(s.durationSeconds))}${s.durationSource && s.durationSource !== 'runner' ? `<br><span class="meta">${h(s.durationSource)}</span>` : ''}</td>
<td class="num">${h(formatDuration(s.expectedSeconds))}</td>
<td style="width:32%">${width > 0 ? `<div class="${barClass}" style="width:${width.toFixed(1)}%"></div>` : ''}</td>
</tr>`;
  });
  return `<table id="timeline"><thead><tr><th>Stage</th><th>Hash</th><th>Status</th><th class="num">Duration</th><th class="num">Expected</th><th>Timeline</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

/** A plain-words note when held-out loss rose after its minimum (the seed run does this). */
export function evalLossTrend(training: NonNullable<RunReportData['training']>): string | undefined {
  const points = training.eval;
  if (points.length < 2) return undefined;
  const best = points.reduce((a, p) => (p.value < a.value ? p : a));
  const last = points.at(-1)!;
  if (best === last) return undefined;
  return `Eval loss was lowest at step ${best.step} (${best.value.toFixed(4)}) and rose to ${last.value.toFixed(4)} by step ${last.step}: later steps fit the training data better but held-out data worse (fewer epochs or an earlier checkpoint may generalise better).`;
}

function trainingHtml(data: RunReportData): string {
  const t = data.training;
  if (!t) return '<p class="meta">No trainer_log.jsonl found for this run.</p>';
  const chart = lineChartSvg(
    [
      { id: 'train', label: 'training loss', color: '#2f5fb3', points: t.train },
      { id: 'eval', label: 'eval loss', color: '#d9480f', points: t.eval, dashed: true },
    ],
    { title: `Loss by step — ${t.stage}`, xLabel: 'step', yLabel: 'loss', ...(t.totalSteps !== undefined ? { xMax: t.totalSteps } : {}) },
  );
  const facts = Object.entries(t.summary)
    .filter(([k]) => /^(train_loss|train_runtime|train_samples_per_second|epoch|num_input_tokens_seen|eval_loss)$/.test(k))
    .map(([k, v]) => `<tr><th>${h(k)}</th><td class="num">${h(k === 'train_runtime' ? `${formatDuration(v)} (${v} s)` : v)}</td></tr>`);
  const trend = evalLossTrend(t);
  return `<figure id="loss-chart">${chart}</figure>${trend ? `<p class="trend">${h(trend)}</p>` : ''}${facts.length ? `<table class="facts" style="width:auto">${facts.join('')}</table>` : ''}`;
}

function evaluationHtml(data: RunReportData): string {
  if (data.evaluations.length === 0) return '<p class="meta">No evaluation results found.</p>';
  const rows = data.evaluations.map((e) => {
    const cells = METRIC_COLUMNS.map(([key]) => `<td class="num">${h(formatMetric(e.metrics[key]))}</td>`).join('');
    // Problems (no predictions, NaN scores) fail a gate whatever its rules say, so they show first.
    const problems = e.gate?.problems?.length ? `<ul class="gate-problems">${e.gate.problems.map((p) => `<li class="fail-line">✗ ${h(p)}</li>`).join('')}</ul>` : '';
    const verdicts = e.gate ? problems + verdictsHtml(e.gate.verdicts) : '';
    return `<tr data-model="${h(e.model)}">
<td><strong>${h(MODEL_LABEL[e.model])}</strong><br><span class="meta">${h(e.stage)} · ${h(e.method)}</span></td>
<td class="num">${h(e.samples ?? '—')}</td>${cells}
<td class="num">${h(formatDuration(e.metrics['predict_runtime']))}</td>
<td class="num">${h(formatMetric(e.metrics['predict_samples_per_second'], 3))}</td>
<td>${gateBadge(e.gate?.passed)}${verdicts}</td>
</tr>`;
  });
  return `<table id="eval-table"><thead><tr><th>Model</th><th class="num">Samples</th>${METRIC_COLUMNS.map(([, l]) => `<th class="num">${h(l)}</th>`).join('')}<th class="num">Runtime</th><th class="num">Samples/s</th><th>Gate</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>
<p class="meta">BLEU-4 is character-level with smoothing method 3 and ROUGE are F-scores over jieba words, ×100, as LLaMA-Factory computes them.</p>`;
}

function artifactsHtml(data: RunReportData): string {
  if (data.artifacts.length === 0) return '<p class="meta">No artifacts found.</p>';
  const rows = data.artifacts.map(
    (a) => `<tr><td><strong>${h(a.stage)}</strong><br><code>${h(a.path)}</code></td><td>${a.complete ? '<span class="badge pass">complete</span>' : '<span class="badge neutral">incomplete</span>'}</td><td class="num">${h(a.files)}</td><td class="num">${h(formatBytes(a.bytes))}</td></tr>`,
  );
  const shardLists = data.artifacts
    .filter((a) => a.shards && a.shards.length > 0)
    .map(
      (a) => `<h3>${h(a.stage)}: ${h(a.shards!.length)} weight file${a.shards!.length === 1 ? '' : 's'}</h3>
<table class="shards" data-stage="${h(a.stage)}"><thead><tr><th>File</th><th class="num">Size</th></tr></thead><tbody>${a.shards!
        .map((s) => `<tr><td><code>${h(s.name)}</code></td><td class="num">${h(formatBytes(s.bytes))}</td></tr>`)
        .join('')}</tbody></table>`,
    );
  return `<table id="artifacts"><thead><tr><th>Stage / path</th><th>State</th><th class="num">Files</th><th class="num">Size</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>${shardLists.join('\n')}`;
}

function endpointHtml(data: RunReportData): string {
  const e = data.endpoint;
  if (!e) return '<p class="meta">This pipeline serves no model.</p>';
  const check = e.postDeploy
    ? `<p>${e.postDeploy.passed ? '<span class="badge pass">post-deploy check passed</span>' : '<span class="badge fail">post-deploy check failed</span>'}</p><pre>${h(e.postDeploy.lines.join('\n'))}</pre>`
    : '<p class="meta">No post-deploy check results yet.</p>';
  return `<table id="endpoint" style="width:auto"><tr><th>URL</th><td><code>${h(e.url)}</code></td></tr>
<tr><th>Service</th><td><code>${h(e.serviceName)}</code> in <code>${h(e.namespace)}</code>, port ${h(e.port)}</td></tr>
<tr><th>Model name</th><td><code>${h(e.servedModelName)}</code></td></tr>
${e.modelPath ? `<tr><th>Weights</th><td><code>${h(e.modelPath)}</code></td></tr>` : ''}</table>${check}`;
}

function overallGate(data: RunReportData): boolean | undefined {
  const gates = data.evaluations.filter((e) => e.gate).map((e) => e.gate!.passed);
  return gates.length === 0 ? undefined : gates.every(Boolean);
}

/** The run report as one self-contained HTML page (inline CSS and SVG, no scripts) and as Markdown. */
export function renderReport(data: RunReportData): { html: string; markdown: string } {
  return { html: renderHtml(data), markdown: renderMarkdown(data) };
}

function renderHtml(data: RunReportData): string {
  const cached = data.stages.filter((s) => s.cacheHit).length;
  const problems = data.problems.length
    ? `<section id="problems"><h2>Problems while gathering</h2><pre>${h(data.problems.map(formatIssue).join('\n'))}</pre></section>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(`tunepipe report — ${data.pipeline}`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>${h(data.pipeline)}</h1>
<div class="meta">namespace <code>${h(data.namespace)}</code> · ${h(data.stages.length)} stages, ${h(cached)} cache hit${cached === 1 ? '' : 's'} · generated ${h(data.generatedAt)} · ${gateBadge(overallGate(data))}</div>
</header>
<section><h2>Stage timeline</h2>${timelineHtml(data)}</section>
<section><h2>Training</h2>${trainingHtml(data)}</section>
<section><h2>Evaluation</h2>${evaluationHtml(data)}</section>
<section><h2>Artifacts</h2>${artifactsHtml(data)}</section>
<section><h2>Endpoint</h2>${endpointHtml(data)}</section>
${problems}
</main>
</body>
</html>
`;
}

function mdTable(head: readonly string[], rows: readonly (readonly unknown[])[], numeric: ReadonlySet<number> = new Set()): string {
  const align = head.map((_, i) => (numeric.has(i) ? '---:' : '---'));
  return [head.map(md), align, ...rows.map((r) => r.map(md))].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Inline code: backticks cannot be escaped inside a code span, so they become quotes. */
function mdCode(value: unknown): string {
  return `\`${String(value).replace(/`/g, "'").replace(/\r?\n/g, ' ')}\``;
}

function renderMarkdown(data: RunReportData): string {
  const out: string[] = [];
  const cached = data.stages.filter((s) => s.cacheHit).length;
  const gate = overallGate(data);
  out.push(
    `# ${escapeMarkdown(data.pipeline)}`,
    '',
    `namespace ${mdCode(data.namespace)} · ${data.stages.length} stages, ${cached} cache hit${cached === 1 ? '' : 's'} · generated ${escapeMarkdown(data.generatedAt)} · ${gate === undefined ? 'no gate' : gate ? 'gate passed' : '**gate failed**'}`,
    '',
    '## Stage timeline',
    '',
    mdTable(
      ['Stage', 'Kind', 'Hash', 'Status', 'Duration', 'Expected'],
      data.stages.map((s) => [
        s.name,
        s.kind,
        s.hash.slice(0, 8),
        `${s.cacheHit ? 'cache hit' : STATUS_TEXT[s.status]}${s.reason ? `: ${s.reason}` : ''}`,
        `${formatDuration(s.durationSeconds)}${s.durationSource && s.durationSource !== 'runner' ? ` (${s.durationSource})` : ''}`,
        formatDuration(s.expectedSeconds),
      ]),
      new Set([4, 5]),
    ),
    '',
    '## Training',
    '',
  );
  const t = data.training;
  if (t) {
    const last = t.train.at(-1);
    const min = t.train.reduce<(typeof t.train)[number] | undefined>((a, p) => (a === undefined || p.value < a.value ? p : a), undefined);
    out.push(
      `${t.train.length} training-loss points${t.totalSteps !== undefined ? ` over ${t.totalSteps} steps` : ''} (stage ${escapeMarkdown(t.stage)}; the chart is in report.html).`,
      '',
      ...(t.train[0] && last && min
        ? [`- loss: ${t.train[0].value} at step ${t.train[0].step} → ${last.value} at step ${last.step} (lowest ${min.value} at step ${min.step})`]
        : []),
      ...(t.summary['train_loss'] !== undefined ? [`- train_loss (mean): ${t.summary['train_loss']}`] : []),
      ...(t.summary['train_runtime'] !== undefined ? [`- train_runtime: ${formatDuration(t.summary['train_runtime'])}`] : []),
      '',
    );
    if (t.eval.length > 0) out.push(mdTable(['Step', 'Eval loss'], t.eval.map((p) => [p.step, p.value.toFixed(4)]), new Set([0, 1])), '');
    const trend = evalLossTrend(t);
    if (trend) out.push(escapeMarkdown(trend), '');
  } else out.push('No trainer_log.jsonl found for this run.', '');
  out.push('## Evaluation', '');
  if (data.evaluations.length > 0) {
    out.push(
      mdTable(
        ['Model', 'Stage', 'Samples', ...METRIC_COLUMNS.map(([, l]) => l), 'Runtime', 'Samples/s', 'Gate'],
        data.evaluations.map((e) => [
          MODEL_LABEL[e.model],
          e.stage,
          e.samples ?? '—',
          ...METRIC_COLUMNS.map(([k]) => formatMetric(e.metrics[k])),
          formatDuration(e.metrics['predict_runtime']),
          formatMetric(e.metrics['predict_samples_per_second'], 3),
          e.gate ? (e.gate.passed ? 'passed' : 'FAILED') : 'no gate',
        ]),
        new Set([2, 3, 4, 5, 6, 7, 8]),
      ),
      '',
    );
    for (const e of data.evaluations.filter((x) => x.gate)) {
      out.push(
        `Gate of ${escapeMarkdown(e.stage)}: ${e.gate!.passed ? 'passed' : '**failed**'}`,
        '',
        ...(e.gate!.problems ?? []).flatMap((p) => [`- ✗ ${escapeMarkdown(p)}`]),
        ...(e.gate!.problems?.length ? [''] : []),
        mdTable(['Metric', 'Threshold', 'Value', 'Result'], e.gate!.verdicts.map((v) => [v.rule.metric, thresholdOf(v), valueOf(v), v.passed ? '✓ pass' : '✗ FAIL']), new Set([2])),
        '',
      );
    }
  } else out.push('No evaluation results found.', '');
  out.push('## Artifacts', '');
  if (data.artifacts.length > 0) {
    out.push(
      mdTable(
        ['Stage', 'Path', 'State', 'Files', 'Size'],
        data.artifacts.map((a) => [a.stage, a.path, a.complete ? 'complete' : 'incomplete', a.files, formatBytes(a.bytes)]),
        new Set([3, 4]),
      ),
      '',
    );
    for (const a of data.artifacts.filter((x) => x.shards && x.shards.length > 0)) {
      out.push(`${escapeMarkdown(a.stage)}: ${a.shards!.length} weight files`, '', mdTable(['File', 'Size'], a.shards!.map((s) => [s.name, formatBytes(s.bytes)]), new Set([1])), '');
    }
  } else out.push('No artifacts found.', '');
  out.push('## Endpoint', '');
  const e = data.endpoint;
  if (e) {
    out.push(
      `- URL: ${mdCode(e.url)}`,
      `- Service: ${mdCode(e.serviceName)} in ${mdCode(e.namespace)}, port ${e.port}`,
      `- Model name: ${mdCode(e.servedModelName)}`,
      ...(e.modelPath ? [`- Weights: ${mdCode(e.modelPath)}`] : []),
      '',
    );
    if (e.postDeploy) out.push(`Post-deploy check ${e.postDeploy.passed ? 'passed' : '**failed**'}:`, '', '```', ...e.postDeploy.lines.map((l) => l.replace(/```/g, "'''")), '```', '');
  } else out.push('This pipeline serves no model.', '');
  if (data.problems.length > 0) out.push('## Problems while gathering', '', '```', ...data.problems.map((p) => formatIssue(p).replace(/```/g, "'''")), '```', '');
  return out.join('\n');
}
