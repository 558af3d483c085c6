import { alpacaColumns as alpacaColumnsOf, readAlpacaRow, readConversation, readTextRow, sharegptColumns as sharegptColumnsOf, type AlpacaColumns, type SharegptColumns } from '@tunepipe/core/row-formats';
import type { DatasetDescriptor } from './descriptor.ts';
import { measureText, type TextMeasure } from './tokens.ts';

/** Why a row is not in the output. Every quarantined row carries exactly one. */
export const QUARANTINE_REASONS = [
  'malformed_json',
  'malformed_csv',
  'csv_unclosed_quote',
  'wrong_type',
  'missing_field',
  'empty_field',
  'wrong_role',
  'non_alternating',
  'system_not_first',
  'duplicate',
  'too_long',
  'max_samples',
  'invalid_utf8',
] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

/** Bits of `NormalizedRow.flags`: which optional columns the row fills. */
export const HAS_SYSTEM = 1;
export const HAS_HISTORY = 2;
export const HAS_TOOLS = 4;

export interface NormalizedRow {
  readonly ok: true;
  /** The output line (JSON object, keys in a fixed order), placeholders filled. */
  readonly line: string;
  /** Character-class counts of the row's content, for the token estimates. */
  readonly measure: TextMeasure;
  /** Messages the chat template will render (for the per-message overhead of the upper estimate). */
  readonly messages: number;
  readonly flags: number;
  /** Plain text of the row, for calibration (computed only when asked for). */
  readonly text: (() => string) | undefined;
}

export interface RejectedRow {
  readonly ok: false;
  readonly reason: QuarantineReason;
  readonly detail: string;
}

export type RowResult = NormalizedRow | RejectedRow;

const reject = (reason: QuarantineReason, detail: string): RejectedRow => ({ ok: false, reason, detail });

type Fill = (s: string) => string;

/** `{{key}}` / `{{ key }}` placeholders filled from `vars`; unknown keys are left as they are. */
export function makeFill(vars: Readonly<Record<string, string>>, enabled: boolean): Fill {
  if (!enabled || Object.keys(vars).length === 0) return (s) => s;
  const re = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
  return (s) => (s.includes('{{') ? s.replace(re, (m, key: string) => (Object.hasOwn(vars, key) ? vars[key]! : m)) : s);
}

export type { AlpacaColumns, SharegptColumns } from '@tunepipe/core/row-formats';

export const DEFAULT_ALPACA_COLUMNS: AlpacaColumns = { instruction: 'instruction', input: 'input', output: 'output', system: 'system', history: 'history' };

export function alpacaColumns(descriptor: DatasetDescriptor): AlpacaColumns {
  return alpacaColumnsOf(descriptor);
}

/**
 * Alpaca row → `{"instruction","input","output"[,"system"][,"history"]}`. What makes a row usable
 * is core's readAlpacaRow, the rule check() warns with at synth time.
 */
export function normalizeAlpaca(value: unknown, cols: AlpacaColumns, fill: Fill, wantText: boolean): RowResult {
  const row = readAlpacaRow(value, cols);
  if (!row.ok) return reject(row.reason, row.detail);
  const history = row.history?.map(([p, r]): [string, string] => [fill(p), fill(r)]);
  const out: Record<string, unknown> = { instruction: fill(row.instruction), input: row.input === undefined ? '' : fill(row.input), output: fill(row.output) };
  let flags = 0;
  const measure: TextMeasure = { cjk: 0, otherBytes: 0 };
  measureText(out['instruction'] as string, measure);
  measureText(out['input'] as string, measure);
  measureText(out['output'] as string, measure);
  let messages = 2;
  if (row.system !== undefined && row.system !== '') {
    out['system'] = fill(row.system);
    measureText(out['system'] as string, measure);
    flags |= HAS_SYSTEM;
    messages++;
  }
  if (history !== undefined) {
    out['history'] = history;
    for (const [p, r] of history) {
      measureText(p, measure);
      measureText(r, measure);
    }
    flags |= HAS_HISTORY;
    messages += 2 * history.length;
  }
  const text = wantText
    ? (): string =>
        [out['system'], ...(history ?? []).flat(), out['instruction'], out['input'], out['output']]
          .filter((s): s is string => typeof s === 'string' && s !== '')
          .join('\n')
    : undefined;
  return { ok: true, line: JSON.stringify(out), measure, messages, flags, text };
}

export function sharegptColumns(descriptor: DatasetDescriptor): SharegptColumns {
  return sharegptColumnsOf(descriptor);
}

/**
 * ShareGPT row (`from`/`value` or OpenAI-style `role`/`content` messages) →
 * `{"conversations":[{"from","value"}…][,"system"][,"tools"]}` with LLaMA-Factory's default tags.
 * What makes a row usable is core's readConversation, the rule check() warns with at synth time.
 */
export function normalizeSharegpt(value: unknown, cols: SharegptColumns, fill: Fill, wantText: boolean): RowResult {
  const conversation = readConversation(value, cols);
  if (!conversation.ok) return reject(conversation.reason, conversation.hint ? `${conversation.detail} (${conversation.hint})` : conversation.detail);
  const measure: TextMeasure = { cjk: 0, otherBytes: 0 };
  const turns = conversation.turns.map((t) => {
    const filled = fill(t.content);
    measureText(filled, measure);
    return { from: t.role, value: filled };
  });
  const out: Record<string, unknown> = { conversations: turns };
  let flags = 0;
  let messages = turns.length;
  const { system, tools } = conversation;
  if (system !== undefined) {
    out['system'] = fill(system);
    measureText(out['system'] as string, measure);
    flags |= HAS_SYSTEM;
    messages++;
  }
  if (tools !== undefined) {
    out['tools'] = tools;
    measureText(tools, measure);
    flags |= HAS_TOOLS;
  }
  const text = wantText ? (): string => [out['system'] as string | undefined, ...turns.map((t) => t.value)].filter((s) => s !== undefined).join('\n') : undefined;
  return { ok: true, line: JSON.stringify(out), measure, messages, flags, text };
}

/** Text corpus document → `{"text": …}`: a `.txt` document as it is, or the text field of a `.jsonl` row (core's readTextRow). */
export function normalizeText(value: unknown, textField: string | undefined, fill: Fill): RowResult {
  let text: string;
  if (textField === undefined) {
    text = value as string;
  } else {
    const row = readTextRow(value, textField);
    if (!row.ok) return reject(row.reason, row.detail);
    text = row.text;
  }
  const filled = fill(text);
  const measure = measureText(filled, { cjk: 0, otherBytes: 0 });
  return { ok: true, line: JSON.stringify({ text: filled }), measure, messages: 0, flags: 0, text: () => filled };
}
