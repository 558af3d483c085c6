import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { evaluateGate, GATE_FAILED_EXIT_CODE, PREDICT_METRICS, type GateReport, type GateRule } from '@tunepipe/core';
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
  const parsed = GateFile.safeParse(readJson(options.rules, 'gate rules'));
  if (!parsed.success) {
    throw new UserError(`gate rules ${options.rules} are malformed`, parsed.error.issues.map((i) => ({ code: 'gate.file', path: i.path.join('.') || '(root)', message: i.message })));
  }
  const results = readJson(options.results, 'results') as Record<string, unknown>;
  const baseline = parsed.data.baselineResults ? (readJson(parsed.data.baselineResults, 'baseline results') as Record<string, unknown>) : undefined;
  const report: GateReport = evaluateGate(parsed.data.rules as GateRule[], results, baseline);
  for (const verdict of report.verdicts) write(`${verdict.passed ? 'pass' : 'FAIL'}  ${verdict.message}\n`);
  write(`${report.summary}\n`);
  if (options.out) writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  return report.passed ? 0 : GATE_FAILED_EXIT_CODE;
}
