import { didYouMean, type Issue } from './issues.ts';

/**
 * Keys LLaMA-Factory writes into `predict_results.json` after `do_predict` with
 * `predict_with_generate` (BLEU/ROUGE are ×100; runtime in seconds).
 */
export const PREDICT_METRICS = [
  'predict_bleu-4',
  'predict_rouge-1',
  'predict_rouge-2',
  'predict_rouge-l',
  'predict_runtime',
  'predict_samples_per_second',
  'predict_steps_per_second',
  'predict_model_preparation_time',
] as const;

export type PredictMetric = (typeof PREDICT_METRICS)[number];

/** Short names a pipeline author may use instead of LLaMA-Factory's keys. */
export const METRIC_ALIASES = {
  bleu4: 'predict_bleu-4',
  rouge1: 'predict_rouge-1',
  rouge2: 'predict_rouge-2',
  rougeL: 'predict_rouge-l',
  runtime: 'predict_runtime',
  samplesPerSecond: 'predict_samples_per_second',
  stepsPerSecond: 'predict_steps_per_second',
} as const satisfies Record<string, PredictMetric>;

export type MetricAlias = keyof typeof METRIC_ALIASES;
export type GateMetric = PredictMetric | MetricAlias;

/** Metrics on a 0–100 scale, where a bound above 100 can never pass. */
const PERCENT_METRICS: ReadonlySet<PredictMetric> = new Set([
  'predict_bleu-4',
  'predict_rouge-1',
  'predict_rouge-2',
  'predict_rouge-l',
]);

/** What one metric must satisfy. Every bound given must hold. */
export interface GateCondition {
  /** Pass when the score is at least this. */
  readonly min?: number;
  /** Pass when the score is at most this (e.g. `runtime`). */
  readonly max?: number;
  /** Pass when the score is at least the baseline's plus this; negative allows a bounded regression. */
  readonly minOverBaseline?: number;
  /** Pass when the score is at most the baseline's plus this (lower-is-better metrics). */
  readonly maxOverBaseline?: number;
}

/**
 * Scores an `evaluate` stage must reach before `serve` may roll out, keyed by metric:
 * `{ bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } }`. Keys are the short aliases or
 * LLaMA-Factory's own `predict_results.json` keys (`'predict_bleu-4'`).
 */
export type Gate = { readonly [M in GateMetric]?: GateCondition };

export type GateComparison = keyof GateCondition;
const COMPARISONS: readonly GateComparison[] = ['min', 'max', 'minOverBaseline', 'maxOverBaseline'];

/** One normalized rule: the form that goes into compiled config and verdicts. */
export interface GateRule {
  readonly metric: PredictMetric;
  readonly comparison: GateComparison;
  readonly value: number;
}

export interface GateVerdict {
  readonly rule: GateRule;
  readonly passed: boolean;
  /** The score found in the results, if any. */
  readonly actual?: number;
  /** The baseline's score, for rules relative to a baseline. */
  readonly baseline?: number;
  /** The bound the score was compared with (baseline + offset for relative rules). */
  readonly required?: number;
  /** Why the rule could not be judged, when a value is there but is not a number: `is not a number (NaN): no predictions were scored`. */
  readonly reason?: string;
  /** e.g. `predict_bleu-4 = 18.20 < 20.00 (required)`. */
  readonly message: string;
}

export interface GateReport {
  readonly passed: boolean;
  readonly verdicts: readonly GateVerdict[];
  /**
   * Why the gate failed whatever its rules say: no predictions, only empty predictions, a metric
   * that is not a number. Absent when there are none.
   */
  readonly problems?: readonly string[];
  /** One line for logs and the report. */
  readonly summary: string;
}

/** Numeric results as read from `predict_results.json` (other values are ignored). */
export type MetricResults = Readonly<Record<string, unknown>>;

/** What the results were computed from, when known, so that a gate never passes on nothing. */
export interface GateEvidence {
  /** Predictions scored (rows of `generated_predictions.jsonl`, or answers of a served model). */
  readonly predictions: number;
  /** Of those, predictions that are empty or whitespace only. */
  readonly emptyPredictions: number;
}

export function resolveMetric(name: string): PredictMetric | undefined {
  if ((PREDICT_METRICS as readonly string[]).includes(name)) return name as PredictMetric;
  return Object.hasOwn(METRIC_ALIASES, name) ? METRIC_ALIASES[name as MetricAlias] : undefined;
}

export function isRelative(comparison: GateComparison): boolean {
  return comparison === 'minOverBaseline' || comparison === 'maxOverBaseline';
}

/**
 * The gate as a list of rules in a canonical order (metric order of `PREDICT_METRICS`, then
 * min, max, minOverBaseline, maxOverBaseline), so equal gates hash equally however they were written.
 * Unknown metrics and non-numeric bounds are left out here; `checkGate` reports them.
 */
export function gateRules(gate: Gate | readonly GateRule[]): GateRule[] {
  const rules: GateRule[] = [];
  // Not a gate at all (null, a number from a JSON config): checkGate reports it; no rule comes of it.
  if (gate === null || typeof gate !== 'object') return rules;
  if (Array.isArray(gate)) {
    rules.push(...(gate as readonly GateRule[]));
  } else {
    for (const [key, condition] of Object.entries(gate as Gate)) {
      const metric = resolveMetric(key);
      if (metric === undefined || condition === undefined || condition === null) continue;
      for (const comparison of COMPARISONS) {
        const value: unknown = (condition as Record<string, unknown>)[comparison];
        if (typeof value === 'number' && Number.isFinite(value)) rules.push({ metric, comparison, value });
      }
    }
  }
  const order = (r: GateRule) => PREDICT_METRICS.indexOf(r.metric) * COMPARISONS.length + COMPARISONS.indexOf(r.comparison);
  const seen = new Set<string>();
  return rules
    .sort((a, b) => order(a) - order(b) || a.value - b.value)
    .filter((r) => {
      const key = `${r.metric}|${r.comparison}|${r.value}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
}

/** True when some rule compares against a baseline evaluation. */
export function gateNeedsBaseline(gate: Gate | readonly GateRule[]): boolean {
  return gateRules(gate).some((r) => isRelative(r.comparison));
}

/**
 * Every problem of a gate as written (untyped callers included): unknown metrics or bounds,
 * non-numeric or contradictory bounds, bounds that can never pass, and relative rules without a baseline.
 */
export function checkGate(gate: unknown, options: { readonly path: string; readonly hasBaseline: boolean }): Issue[] {
  const { path } = options;
  const issues: Issue[] = [];
  if (gate === undefined) return issues;
  if (gate === null || typeof gate !== 'object' || Array.isArray(gate)) {
    return [
      {
        path,
        code: 'gate.not-an-object',
        message: 'a gate is an object keyed by metric',
        value: gate,
        fix: "write e.g. { bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } }",
      },
    ];
  }
  const known = [...Object.keys(METRIC_ALIASES), ...PREDICT_METRICS];
  const bounds = new Map<PredictMetric, { min?: number; max?: number }>();
  for (const [key, condition] of Object.entries(gate)) {
    const at = `${path}.${key}`;
    const metric = resolveMetric(key);
    if (metric === undefined) {
      const hint = didYouMean(key, known);
      issues.push({
        path: at,
        code: 'gate.unknown-metric',
        message: `unknown metric '${key}'`,
        value: key,
        fix: hint ?? `use one of ${known.join(', ')}`,
      });
      continue;
    }
    if (condition === null || typeof condition !== 'object' || Array.isArray(condition)) {
      issues.push({
        path: at,
        code: 'gate.not-a-condition',
        message: 'a metric maps to bounds such as { min: 20 }',
        value: condition,
        fix: `write { min: … }, { max: … }, { minOverBaseline: … } or { maxOverBaseline: … }`,
      });
      continue;
    }
    const entries = Object.entries(condition as Record<string, unknown>);
    if (entries.length === 0) {
      issues.push({
        path: at,
        code: 'gate.empty-condition',
        message: 'no bound given, so this metric gates nothing',
        value: condition,
        fix: 'add a bound such as { min: 20 } or remove the key',
      });
    }
    for (const [comparison, value] of entries) {
      const cAt = `${at}.${comparison}`;
      if (!(COMPARISONS as readonly string[]).includes(comparison)) {
        issues.push({
          path: cAt,
          code: 'gate.unknown-bound',
          message: `unknown bound '${comparison}'`,
          value: comparison,
          fix: didYouMean(comparison, COMPARISONS) ?? `use one of ${COMPARISONS.join(', ')}`,
        });
        continue;
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        issues.push({ path: cAt, code: 'gate.not-a-number', message: 'a bound must be a finite number', value, fix: 'write a number, e.g. 20' });
        continue;
      }
      if (isRelative(comparison as GateComparison) && !options.hasBaseline) {
        issues.push({
          path: cAt,
          code: 'gate.needs-baseline',
          message: `'${comparison}' compares with a baseline evaluation, but none is wired`,
          value,
          fix: 'set `baseline` to the evaluate stage of the base model, or use min/max',
        });
      }
      if (PERCENT_METRICS.has(metric) && comparison === 'min' && value > 100) {
        issues.push({
          path: cAt,
          code: 'gate.unreachable',
          message: `${metric} is on a 0–100 scale, so min ${value} can never pass`,
          value,
          fix: 'LLaMA-Factory reports BLEU/ROUGE ×100: write e.g. 20 for 0.20',
        });
      }
      if (comparison === 'min' || comparison === 'max') {
        bounds.set(metric, { ...bounds.get(metric), [comparison]: value });
      }
    }
  }
  for (const [metric, { min, max }] of bounds) {
    if (min !== undefined && max !== undefined && min > max) {
      issues.push({
        path: `${path}.${metric}`,
        code: 'gate.contradiction',
        message: `min ${min} is above max ${max}, so the gate can never pass`,
        value: { min, max },
        fix: 'swap or correct the bounds',
      });
    }
  }
  return issues;
}

function numberAt(results: MetricResults | undefined, metric: PredictMetric): number | undefined {
  const value = results?.[metric];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * Why a value that is present cannot be compared, or undefined when it is a finite number or
 * absent. NumPy's mean of no scores is NaN, which is how LLaMA-Factory reports an evaluation
 * that scored no predictions; a string "NaN" is read the same way.
 */
function notANumber(key: string, value: unknown): string | undefined {
  if (value === undefined || (typeof value === 'number' && Number.isFinite(value))) return undefined;
  const nan = (typeof value === 'number' && Number.isNaN(value)) || value === 'NaN';
  if (nan) return `${key} is not a number (NaN)${PERCENT_METRICS.has(key as PredictMetric) ? ': no predictions were scored' : ''}`;
  if (typeof value === 'number') return `${key} is not finite (${value})`;
  return `${key} is not a number (${JSON.stringify(value) ?? String(value)})`;
}

/** Failures of the results as a whole: no predictions, all of them empty, NaN metrics no rule covers. */
function evidenceProblems(results: MetricResults, judged: ReadonlySet<string>, evidence?: GateEvidence): string[] {
  const problems: string[] = [];
  if (evidence && evidence.predictions === 0) problems.push('no predictions were scored: the prediction set has no rows');
  else if (evidence && evidence.emptyPredictions >= evidence.predictions) {
    problems.push(`every prediction is empty (${evidence.emptyPredictions} of ${evidence.predictions}): the model produced no text to judge`);
  }
  for (const [key, value] of Object.entries(results)) {
    if (judged.has(key) || !(typeof value === 'number' && Number.isNaN(value))) continue;
    problems.push(notANumber(key, value)!);
  }
  return problems;
}

/** Two decimals, or four when two would print equal numbers on both sides of a comparison. */
function formatPair(a: number, b: number): [string, string] {
  for (const digits of [2, 4, 6]) {
    const x = a.toFixed(digits);
    const y = b.toFixed(digits);
    if (x !== y || a === b) return [x, y];
  }
  return [String(a), String(b)];
}

function describeBound(rule: GateRule, baseline?: number): string {
  const offset = Math.abs(rule.value).toFixed(2);
  const sign = rule.value < 0 ? '−' : '+';
  switch (rule.comparison) {
    case 'min':
      return 'required';
    case 'max':
      return 'allowed';
    case 'minOverBaseline':
    case 'maxOverBaseline':
      return baseline === undefined ? `baseline ${sign} ${offset}` : `baseline ${baseline.toFixed(2)} ${sign} ${offset}`;
  }
}

function symbolOf(comparison: GateComparison, passed: boolean): string {
  const lower = comparison === 'min' || comparison === 'minOverBaseline';
  if (lower) return passed ? '≥' : '<';
  return passed ? '≤' : '>';
}

/**
 * Judges `results` (a `predict_results.json`) against the gate, with `baseline` (the base
 * model's results) for relative rules. A metric missing from the results, or not a number, fails
 * its rule. With `evidence`, an evaluation of no predictions, or of empty ones only, fails too;
 * so does a NaN metric in the results that no rule names.
 */
export function evaluateGate(
  gate: Gate | readonly GateRule[],
  results: MetricResults,
  baseline?: MetricResults,
  evidence?: GateEvidence,
): GateReport {
  const rules = gateRules(gate);
  const verdicts = rules.map((rule): GateVerdict => {
    const actual = numberAt(results, rule.metric);
    const relative = isRelative(rule.comparison);
    const base = relative ? numberAt(baseline, rule.metric) : undefined;
    const lowerBound = rule.comparison === 'min' || rule.comparison === 'minOverBaseline';
    const wanted = `${lowerBound ? '≥' : '≤'} ${relative ? `baseline ${rule.value < 0 ? '−' : '+'} ${Math.abs(rule.value).toFixed(2)}` : rule.value.toFixed(2)}`;
    if (actual === undefined) {
      const reason = notANumber(rule.metric, results[rule.metric]);
      if (reason) return { rule, passed: false, reason: reason.slice(rule.metric.length + 1), message: `${reason} (required ${wanted})` };
      return { rule, passed: false, message: `${rule.metric}: missing from the results (required ${wanted})` };
    }
    if (relative && base === undefined) {
      const invalid = baseline === undefined ? undefined : notANumber(rule.metric, baseline[rule.metric]);
      const why = baseline === undefined ? 'no baseline results were given' : invalid ? `the baseline's ${invalid}` : `the baseline has no ${rule.metric}`;
      return { rule, passed: false, actual, message: `${rule.metric} = ${actual.toFixed(2)}, but ${why} (required ${wanted})` };
    }
    const required = relative ? base! + rule.value : rule.value;
    const passed = lowerBound ? actual >= required : actual <= required;
    const [shownActual, shownRequired] = formatPair(actual, required);
    return {
      rule,
      passed,
      actual,
      ...(base !== undefined ? { baseline: base } : {}),
      required,
      message: `${rule.metric} = ${shownActual} ${symbolOf(rule.comparison, passed)} ${shownRequired} (${describeBound(rule, base)})`,
    };
  });
  const problems = evidenceProblems(results, new Set(rules.map((r) => r.metric)), evidence);
  const failed = verdicts.filter((v) => !v.passed);
  const passed = failed.length === 0 && problems.length === 0;
  const why = [...problems, ...failed.map((v) => v.message)].join('; ');
  const problemCount = problems.length === 0 ? '' : `, ${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  const summary = passed
    ? verdicts.length === 0
      ? 'gate passed (no rules)'
      : `gate passed (${verdicts.length}/${verdicts.length} rules)`
    : `gate failed (${failed.length} of ${verdicts.length} rules${problemCount}): ${why}`;
  return { passed, verdicts, ...(problems.length > 0 ? { problems } : {}), summary };
}
