import { readFile } from 'node:fs/promises';
import { zodParse, type Issue } from '@tunepipe/core';
import { z } from 'zod';
import { redactedExcerpt } from './redact.ts';

// Readers for what LLaMA-Factory writes into a stage's output_dir. Every problem becomes an Issue
// naming the file (and line), the bad value and what to do; nothing throws for bad content.

/** What a reader found: the valid content (absent when the file is unusable) and every problem. */
export interface ReadResult<T> {
  /** The readable part; rows listed in `issues` are not in it. */
  readonly value?: T;
  readonly issues: readonly Issue[];
}

/** Python's json.dumps writes NaN/Infinity for diverged losses; JSON.parse rejects them. */
const NON_FINITE: Readonly<Record<string, number>> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
};
const SENTINEL = '\u0000tunepipe-non-finite:';

/** JSON.parse that also accepts Python's bare NaN, Infinity and -Infinity tokens. */
export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!/NaN|Infinity/.test(text)) throw error;
  }
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
      continue;
    }
    const token = ['-Infinity', 'Infinity', 'NaN'].find((t) => text.startsWith(t, i));
    if (token) {
      out += JSON.stringify(SENTINEL + token);
      i += token.length - 1;
      continue;
    }
    out += ch;
  }
  return JSON.parse(out, (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(SENTINEL) ? NON_FINITE[value.slice(SENTINEL.length)] : value,
  );
}

/** Any JSON number, NaN and ±Infinity included (a diverged loss is data, not a format error). */
const float = z.custom<number>((v) => typeof v === 'number', { message: 'must be a number', params: { rule: 'type' } });
const count = z.number().int().nonnegative();

/** One row of `generated_predictions.jsonl` (template-rendered prompt, decoded prediction and label). */
export const PredictionRowSchema = z.looseObject({ prompt: z.string(), predict: z.string(), label: z.string() });
export type PredictionRow = z.infer<typeof PredictionRowSchema>;

/** `predict_results.json`, `all_results.json`, `train_results.json`, `eval_results.json`: flat numbers. */
export const MetricsFileSchema = z.record(z.string(), float);
export type MetricsFile = z.infer<typeof MetricsFileSchema>;

/**
 * One line of `trainer_log.jsonl` as LLaMA-Factory's LogCallback writes it (keys whose value is
 * None are left out; prediction progress lines carry only the step fields).
 */
export const TrainerLogEntrySchema = z.looseObject({
  current_steps: count,
  total_steps: count,
  loss: float.optional(),
  eval_loss: float.optional(),
  predict_loss: float.optional(),
  reward: float.optional(),
  accuracy: float.optional(),
  lr: float.optional(),
  epoch: float.optional(),
  percentage: float,
  elapsed_time: z.string(),
  remaining_time: z.string(),
  throughput: float.optional(),
  total_tokens: count.optional(),
  vram_allocated: float.optional(),
  vram_reserved: float.optional(),
});
export type TrainerLogEntry = z.infer<typeof TrainerLogEntrySchema>;


const excerpt = (line: string) => redactedExcerpt(line, 120);

function parseJsonLines<T>(text: string, file: string, schema: z.ZodType<T>, fix: string, code: string): ReadResult<T[]> {
  const rows: T[] = [];
  const issues: Issue[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    const where = `${file}:${index + 1}`;
    let data: unknown;
    try {
      data = parsePythonJson(line);
    } catch (error) {
      const last = index === lines.length - 1 || (index === lines.length - 2 && lines[lines.length - 1] === '');
      issues.push({
        path: where,
        code: `${code}.json`,
        message: `not JSON (${(error as Error).message})${last ? '; a truncated last line usually means the writer was killed' : ''}`,
        value: excerpt(line),
        fix,
      });
      return;
    }
    const parsed = zodParse(schema, data, { area: code, pathPrefix: where, fix });
    if (parsed.ok) rows.push(parsed.value);
    else issues.push(...parsed.issues);
  });
  return { value: rows, issues };
}

function parseJsonFile<T>(text: string, file: string, schema: z.ZodType<T>, fix: string, code: string): ReadResult<T> {
  let data: unknown;
  try {
    data = parsePythonJson(text);
  } catch (error) {
    return { issues: [{ path: file, code: `${code}.json`, message: `not JSON (${(error as Error).message})`, value: excerpt(text.trim()), fix }] };
  }
  const parsed = zodParse(schema, data, { area: code, pathPrefix: file, fix });
  return parsed.ok ? { value: parsed.value, issues: [] } : { issues: parsed.issues };
}

const PREDICT_FIX = 'regenerate it with llamafactory-cli train (do_predict: true, predict_with_generate: true)';

/** Parses `generated_predictions.jsonl` text; `file` names it in issues. */
export function parseGeneratedPredictions(text: string, file = 'generated_predictions.jsonl'): ReadResult<PredictionRow[]> {
  return parseJsonLines(text, file, PredictionRowSchema, PREDICT_FIX, 'predictions');
}

/** Parses `predict_results.json`; it must hold at least one `predict_*` number. */
export function parsePredictResults(text: string, file = 'predict_results.json'): ReadResult<MetricsFile> {
  const result = parseJsonFile(text, file, MetricsFileSchema, PREDICT_FIX, 'predict-results');
  if (result.value && !Object.keys(result.value).some((k) => k.startsWith('predict_'))) {
    return {
      issues: [
        {
          path: file,
          code: 'predict-results.no-predict-keys',
          message: 'no predict_* metric in the file',
          value: Object.keys(result.value),
          fix: `expected keys such as predict_bleu-4 and predict_rouge-l; ${PREDICT_FIX}`,
        },
      ],
    };
  }
  return result;
}

/** Parses `all_results.json` / `train_results.json` / `eval_results.json` (flat metric numbers). */
export function parseResultsFile(text: string, file: string): ReadResult<MetricsFile> {
  return parseJsonFile(text, file, MetricsFileSchema, 'it is written by llamafactory-cli train at the end of a run; re-run the stage', 'results');
}

/** Parses `trainer_log.jsonl`. */
export function parseTrainerLog(text: string, file = 'trainer_log.jsonl'): ReadResult<TrainerLogEntry[]> {
  return parseJsonLines(text, file, TrainerLogEntrySchema, 'it is appended by LLaMA-Factory while training; re-run the stage if it is damaged', 'trainer-log');
}

async function readText(file: string): Promise<{ text?: string; issue?: Issue }> {
  try {
    return { text: await readFile(file, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      issue: {
        path: file,
        code: code === 'ENOENT' ? 'file.missing' : 'file.unreadable',
        message: code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? (error as Error).message})`,
        fix: code === 'ENOENT' ? 'check the path, or that the stage has finished (its .tunepipe-complete marker exists)' : 'check its permissions',
      },
    };
  }
}

function fromFile<T>(parse: (text: string, file: string) => ReadResult<T>) {
  return async (file: string): Promise<ReadResult<T>> => {
    const { text, issue } = await readText(file);
    return text === undefined ? { issues: [issue!] } : parse(text, file);
  };
}

/** Reads `generated_predictions.jsonl`. */
export const readGeneratedPredictions = fromFile(parseGeneratedPredictions);
/** Reads `predict_results.json`. */
export const readPredictResults = fromFile(parsePredictResults);
/** Reads `all_results.json`, `train_results.json` or `eval_results.json`. */
export const readResultsFile = fromFile(parseResultsFile);
/** Reads `trainer_log.jsonl`. */
export const readTrainerLog = fromFile(parseTrainerLog);

export interface CurvePoint {
  readonly step: number;
  readonly value: number;
}

export interface LossCurves {
  readonly train: readonly CurvePoint[];
  readonly eval: readonly CurvePoint[];
  readonly totalSteps?: number;
}

/**
 * Training and eval loss by step. A resumed run appends the steps after its checkpoint again, so
 * the last entry for a step wins; non-finite losses are kept out of the curve (the report lists them).
 */
export function lossCurves(entries: readonly TrainerLogEntry[]): LossCurves {
  const train = new Map<number, number>();
  const evaluation = new Map<number, number>();
  let totalSteps: number | undefined;
  for (const entry of entries) {
    if (entry.total_steps > 0) totalSteps = entry.total_steps;
    if (entry.loss !== undefined && Number.isFinite(entry.loss)) train.set(entry.current_steps, entry.loss);
    if (entry.eval_loss !== undefined && Number.isFinite(entry.eval_loss)) evaluation.set(entry.current_steps, entry.eval_loss);
  }
  const sorted = (m: Map<number, number>) => [...m].sort(([a], [b]) => a - b).map(([step, value]) => ({ step, value }));
  return { train: sorted(train), eval: sorted(evaluation), ...(totalSteps !== undefined ? { totalSteps } : {}) };
}
