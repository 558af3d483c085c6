import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { evaluateGate, GATE_FAILED_EXIT_CODE, PREDICT_METRICS, zodParse, type GateReport, type GateRule } from '@tunepipe/core';
import { gateHeadline } from '@tunepipe/runner';
import { UserError } from '../errors.ts';

const GateFile = z.object({
  rules: z.array(z.object({ metric: z.enum(PREDICT_METRICS), comparison: z.enum(['min', 'max', 'minOverBaseline', 'maxOverBaseline']), value: z.number() })),
  baselineResults: z.string().nullable(),
});

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${what} ${path} is not JSON: ${(error as Error).message}`);
  }
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
  const results = readJson(options.results, 'results') as Record<string, unknown>;
  const baseline = parsed.value.baselineResults ? (readJson(parsed.value.baselineResults, 'baseline results') as Record<string, unknown>) : undefined;
  const report: GateReport = evaluateGate(parsed.value.rules as GateRule[], results, baseline);
  for (const verdict of report.verdicts) write(`${verdict.passed ? 'pass' : 'FAIL'}  ${verdict.message}\n`);
  // The last line is the verdict a failed stage is headlined with (runners look for `gate failed: `).
  write(`${report.passed ? report.summary : gateHeadline(report)}\n`);
  if (options.out) writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  return report.passed ? 0 : GATE_FAILED_EXIT_CODE;
}
