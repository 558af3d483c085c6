import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { evaluateGate, GATE_FAILED_EXIT_CODE, PREDICT_METRICS, zodParse, type GateEvidence, type GateReport, type GateRule } from '@tunepipe/core';
import { parseGeneratedPredictions, parsePythonJson } from '@tunepipe/eval';
import { gateHeadline } from '@tunepipe/runner';
import { UserError } from '../errors.ts';

const GateFile = z.object({
  rules: z.array(z.object({ metric: z.enum(PREDICT_METRICS), comparison: z.enum(['min', 'max', 'minOverBaseline', 'maxOverBaseline']), value: z.number() })),
  baselineResults: z.string().nullable(),
});

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** JSON as Python writes it: LLaMA-Factory's NaN scores are a verdict for the gate, not a format error. */
function readJson(path: string, what: string): unknown {
  const text = readText(path, what);
  try {
    return parsePythonJson(text);
  } catch (error) {
    throw new UserError(`${what} ${path} is not JSON: ${(error as Error).message}`);
  }
}

/**
 * How many predictions the results were computed from, and how many are empty, from the
 * `generated_predictions.jsonl` LLaMA-Factory writes next to `predict_results.json`. Unreadable
 * lines count as predictions (not as empty ones); no file means no evidence.
 */
function predictionEvidence(resultsFile: string): GateEvidence | undefined {
  const file = join(dirname(resultsFile), 'generated_predictions.jsonl');
  if (!existsSync(file)) return undefined;
  const read = parseGeneratedPredictions(readText(file, 'predictions'), file);
  const rows = read.value ?? [];
  return { predictions: rows.length + read.issues.length, emptyPredictions: rows.filter((row) => row.predict.trim() === '').length };
}

export interface GateCommandOptions {
  readonly rules: string;
  readonly results: string;
  readonly out?: string;
}

/** Judges an evaluation's predict_results.json; exit code GATE_FAILED_EXIT_CODE when a rule fails. */
export function gateCommand(options: GateCommandOptions, write: (text: string) => void): number {
  const parsed = zodParse(GateFile, readJson(options.rules, 'gate rules'), { area: 'gate.file', pathPrefix: options.rules, fix: 'the compiler writes this file into the evaluate stage; regenerate it with `tunepipe synth`' });
  if (!parsed.ok) throw new UserError(`gate rules ${options.rules} are malformed`, parsed.issues);
  const results = readJson(options.results, 'results');
  if (results === null || typeof results !== 'object' || Array.isArray(results)) {
    throw new UserError(`results ${options.results} are not a JSON object of metrics (predict_results.json)`);
  }
  const baseline = parsed.value.baselineResults ? (readJson(parsed.value.baselineResults, 'baseline results') as Record<string, unknown>) : undefined;
  const report: GateReport = evaluateGate(parsed.value.rules as GateRule[], results as Record<string, unknown>, baseline, predictionEvidence(options.results));
  for (const problem of report.problems ?? []) write(`FAIL  ${problem}\n`);
  for (const verdict of report.verdicts) write(`${verdict.passed ? 'pass' : 'FAIL'}  ${verdict.message}\n`);
  // The last line is the verdict a failed stage is headlined with (runners look for `gate failed: `).
  write(`${report.passed ? report.summary : gateHeadline(report)}\n`);
  if (options.out) writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  return report.passed ? 0 : GATE_FAILED_EXIT_CODE;
}
