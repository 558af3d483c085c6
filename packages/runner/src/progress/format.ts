import { METRIC_ALIASES, redactSecrets, type GateReport, type GateVerdict } from '@tunepipe/core';
import type { RunResult, StageState, StageStatus } from '../types.ts';
import type { BarReading, CheckpointResume, LogProgress } from './parse.ts';

const SYMBOL: Record<StageStatus, string> = {
  waiting: '·',
  cached: '✓',
  queued: '⏸',
  starting: '…',
  running: '▶',
  retrying: '↻',
  done: '✓',
  failed: '✗',
  blocked: '⊘',
  skipped: '-',
  stopped: '■',
};

/** `75` → `1m15s`, `3700` → `1h01m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** tqdm-style clock: `17:17`, `1:02:03`. */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${String(m).padStart(2, '0')}:${sec}`;
}

export function renderBar(fraction: number, width = 20): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

function percent(bar: BarReading): number {
  return bar.total > 0 ? Math.floor((100 * bar.current) / bar.total) : 0;
}

/** The bar that best says how far the stage is: training steps, else the current phase. */
export function mainBar(progress: LogProgress | undefined): BarReading | undefined {
  return progress?.training ?? progress?.phase;
}

/** `100/300 · loss 0.8376 · lr 3.77e-05 · epoch 3.23 · 1846 tok/s · ETA 17:17` */
export function formatNumbers(progress: LogProgress): string {
  const parts: string[] = [];
  const bar = mainBar(progress);
  if (bar) parts.push(`${bar.label ? `${bar.label} ` : ''}${bar.current}/${bar.total}`);
  const n = progress.numbers;
  if (progress.training) {
    if (n.loss !== undefined) parts.push(`loss ${n.loss.toFixed(4)}`);
    if (n.learningRate !== undefined) parts.push(`lr ${pythonExponential(n.learningRate)}`);
    if (n.epoch !== undefined) parts.push(`epoch ${n.epoch.toFixed(2)}`);
    if (n.tokensPerSecond !== undefined) parts.push(`${Math.round(n.tokensPerSecond)} tok/s`);
  }
  if (bar?.etaSeconds !== undefined && bar.current < bar.total) parts.push(`ETA ${formatClock(bar.etaSeconds)}`);
  return parts.join(' · ');
}

/** `4.9978e-05` the way Python prints it (two-digit exponent), which is what the log shows. */
function pythonExponential(value: number): string {
  return value.toExponential(2).replace(/e([+-])(\d)$/, 'e$10$2');
}

function doneSummary(state: StageState): string {
  const parts: string[] = [];
  if (state.startedAt !== undefined && state.finishedAt !== undefined) {
    parts.push(`in ${formatDuration((state.finishedAt - state.startedAt) / 1000)}`);
  }
  const p = state.progress;
  if (p?.trainSummary) {
    if (p.trainSummary.loss !== undefined) parts.push(`train_loss ${p.trainSummary.loss.toFixed(4)}`);
    parts.push(`train_runtime ${formatClock(p.trainSummary.runtimeSeconds)}`);
  }
  if (p?.numbers.evalLoss !== undefined) parts.push(`eval_loss ${p.numbers.evalLoss.toFixed(4)}`);
  const predict = p?.metrics['predict'];
  if (predict) {
    for (const key of ['predict_bleu-4', 'predict_rouge-l']) {
      const v = predict[key];
      if (v !== undefined) parts.push(`${key.replace('predict_', '')} ${v}`);
    }
  }
  if (state.endpoint) parts.push(`serving at ${state.endpoint}`);
  return parts.join(' · ');
}

function elapsedLine(state: StageState, now: number): string | undefined {
  if (state.startedAt === undefined) return undefined;
  const elapsed = formatDuration((now - state.startedAt) / 1000);
  return `${elapsed} elapsed · ~${formatDuration(state.expectedSeconds)} expected`;
}

export interface LineOptions {
  readonly nameWidth: number;
  /** Draw a bar (TTY) or a bare percentage (plain logs). */
  readonly bar: boolean;
  readonly now: number;
  /** Colours the status symbol and word (a terminal that wants colour). @default none */
  readonly paint?: (status: StageStatus, text: string) => string;
}

const ANSI: Partial<Record<StageStatus, number>> = { done: 32, cached: 32, failed: 31, blocked: 31, queued: 33, retrying: 33, stopped: 33, running: 36 };

/** Colours a status the way a terminal shows it (green done, red failed, yellow waiting on something). */
export function ansiStatus(status: StageStatus, text: string): string {
  const code = ANSI[status];
  return code === undefined ? text : `\x1b[${code}m${text}\x1b[39m`;
}

/** Whether a terminal stream should get colour: a TTY, `NO_COLOR` unset, `TERM` not dumb (`FORCE_COLOR` wins). */
export function wantsColour(stream: { isTTY?: boolean }, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  if (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0') return true;
  return Boolean(stream.isTTY) && env['TERM'] !== 'dumb';
}

/**
 * A start that did not resume from the newest checkpoint, worded as `tunepipe status --target
 * local` words its note (runner local/resume-note.ts): `resumed from checkpoint-300:
 * checkpoint-400 was never sealed (…); moved to /artifacts/…/<hash>.broken/`.
 */
export function formatCheckpointResume(resume: CheckpointResume): string {
  const from = resume.resumeFrom ? `resumed from ${resume.resumeFrom}` : 'started from step 0';
  return `${from}: ${resume.movedAside.map((m) => `${m.name} ${m.reason}`).join('; ')}; moved to ${resume.aside}/`;
}

/** The same, short enough for a stage's line: `checkpoint-400 not trusted; resumed from checkpoint-300`. */
export function shortCheckpointResume(resume: CheckpointResume): string {
  const names = resume.movedAside.map((m) => m.name);
  const from = resume.resumeFrom ? `resumed from ${resume.resumeFrom}` : 'started from step 0';
  return `${names.join(', ')} not trusted; ${from}`;
}

/** One stage as one line: name, status, then a bar and numbers or the reason it waits. */
export function formatStageLine(state: StageState, options: LineOptions): string {
  const word = `${SYMBOL[state.status]} ${state.status.padEnd(8)}`;
  const head = `${state.stage.padEnd(options.nameWidth)}  ${options.paint ? options.paint(state.status, word) : word}`;
  const tail: string[] = [];
  const bar = mainBar(state.progress);
  const active = state.status === 'running' || state.status === 'retrying' || state.status === 'starting';
  switch (state.status) {
    case 'done':
      tail.push(doneSummary(state));
      break;
    case 'failed':
      tail.push(state.failure ? `${state.failure.reason}${state.failure.message ? `: ${firstLine(redactSecrets(state.failure.message))}` : ''}` : '');
      break;
    default:
      if (active && bar && state.progress) {
        const pct = `${String(percent(bar)).padStart(3)}%`;
        tail.push(options.bar ? `${renderBar(bar.current / Math.max(1, bar.total))} ${pct}` : pct);
        tail.push(formatNumbers(state.progress));
        // The bar is rank 0's; the gang's other ranks show only as a count.
        if (state.gang) tail.push(`gang ${state.gang.running}/${state.gang.size} running`);
      } else if (active && state.status === 'running') {
        const line = elapsedLine(state, options.now);
        if (line) tail.push(line);
      }
      if (active && state.progress?.checkpointResume) tail.push(`(${shortCheckpointResume(state.progress.checkpointResume)})`);
      if (state.detail && (state.status !== 'running' || !bar)) tail.push(state.detail);
      else if (state.detail && state.status === 'running' && state.preemptions > 0) tail.push(`(${state.detail})`);
  }
  if (state.forced && (state.status === 'waiting' || state.status === 'starting')) tail.push('(forced)');
  return `${head} ${tail.filter(Boolean).join('  ')}`.trimEnd();
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

/**
 * The block printed for a failed stage: reason, then the last log lines, with secret-shaped
 * values (a token a tool printed) redacted.
 */
export function formatFailure(state: StageState): string {
  const f = state.failure;
  if (!f) return `✗ ${state.stage} failed`;
  const lines = [`✗ ${state.stage} failed: ${f.reason}${f.message ? ` — ${redactSecrets(f.message)}` : ''}`];
  if (f.logTail.length > 0) {
    lines.push(`  last ${f.logTail.length} log lines${f.source ? ` of ${f.source}` : ''}:`);
    for (const line of f.logTail) lines.push(`  │ ${redactSecrets(line)}`);
  }
  return lines.join('\n');
}

export interface SummaryOptions {
  /** How to invoke the CLI in hints. @default 'tunepipe' */
  readonly command?: string;
}

/** What the user reads when the run ends: outcome, failures with their logs, how to go on. */
export function formatSummary(result: RunResult, options: SummaryOptions = {}): string {
  const cmd = options.command ?? 'tunepipe';
  const count = (status: string) => result.stages.filter((s) => s.status === status).length;
  const took = formatDuration((result.finishedAt - result.startedAt) / 1000);
  const tally = `${count('done')} run, ${count('cached')} cached${count('skipped') ? `, ${count('skipped')} skipped` : ''}`;
  const lines: string[] = [];
  switch (result.outcome) {
    case 'succeeded':
      lines.push(`✓ ${result.pipeline} finished in ${took}: ${tally}`);
      for (const s of result.stages) if (s.endpoint) lines.push(`  ${s.stage}: ${s.endpoint}`);
      break;
    case 'failed':
      lines.push(`✗ ${result.pipeline} failed after ${took}: ${tally}, ${count('failed')} failed, ${count('blocked')} blocked`);
      for (const s of result.stages) if (s.status === 'failed') lines.push(formatFailure(s));
      break;
    case 'detached': {
      // `cmd` is how to invoke the CLI (`tunepipe`), never a whole command line.
      const ns = `--namespace ${result.where}`;
      const active = result.stages.find((s) => s.status === 'running' || s.status === 'retrying' || s.status === 'queued');
      lines.push(`Detached after ${took}; the Jobs keep running in namespace ${result.where}.`);
      lines.push(`  ${cmd} status ${result.pipeline} ${ns}                 where it is`);
      if (active) lines.push(`  ${cmd} logs ${result.pipeline} ${active.stage} -f ${ns}        follow ${active.stage}`);
      lines.push(`  ${cmd} run ${result.pipeline} --target cluster ${ns}   reattach (finished stages show as cached)`);
      lines.push(`  ${cmd} cancel ${result.pipeline} ${ns}                 stop it`);
      break;
    }
    case 'stopped':
      lines.push(`■ ${result.pipeline} stopped after ${took}: ${tally}. Run it again to continue; sft resumes from its last checkpoint.`);
      break;
  }
  return lines.join('\n');
}

const SHORT_METRIC: ReadonlyMap<string, string> = new Map(Object.entries(METRIC_ALIASES).map(([alias, key]) => [key, alias]));
/** `18.2`, `20`: as few digits as say the number to two decimals. */
const short = (n: number) => String(Number(n.toFixed(2)));

function verdictWords(v: GateVerdict): string {
  const metric = SHORT_METRIC.get(v.rule.metric) ?? v.rule.metric;
  const lower = v.rule.comparison === 'min' || v.rule.comparison === 'minOverBaseline';
  if (v.actual === undefined) return `${metric} ${v.reason ?? 'missing from the results'}`;
  const symbol = lower ? (v.passed ? '≥' : '<') : v.passed ? '≤' : '>';
  const relative = v.rule.comparison === 'minOverBaseline' || v.rule.comparison === 'maxOverBaseline';
  if (!relative) return `${metric} ${short(v.actual)} ${symbol} ${v.rule.comparison} ${short(v.rule.value)}`;
  const offset = `${v.rule.value < 0 ? '−' : '+'} ${short(Math.abs(v.rule.value))}`;
  return v.baseline === undefined ? `${metric} ${short(v.actual)}, no baseline to compare with (baseline ${offset})` : `${metric} ${short(v.actual)} ${symbol} baseline ${short(v.baseline)} ${offset}`;
}

/** A gate's verdict in one line, as a failure headline: `gate failed: bleu4 18.2 < min 20`. */
export function gateHeadline(report: Pick<GateReport, 'passed' | 'verdicts' | 'problems'>): string {
  if (report.passed) return `gate passed (${report.verdicts.length}/${report.verdicts.length} rules)`;
  // Problems first: "every prediction is empty" explains the failed rules after it.
  return `gate failed: ${[...(report.problems ?? []), ...report.verdicts.filter((v) => !v.passed).map(verdictWords)].join('; ')}`;
}

/** The headline `tunepipe gate` printed last, found in a log tail (a cluster's failed gate container). */
export function gateHeadlineInLog(lines: readonly string[]): string | undefined {
  return [...lines].reverse().find((l) => l.startsWith('gate failed: '));
}
