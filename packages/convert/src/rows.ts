import type { DatasetDescriptor } from './descriptor.ts';
import { measureText, type TextMeasure } from './tokens.ts';

/** Why a row is not in the output. Every quarantined row carries exactly one. */
export const QUARANTINE_REASONS = [
  'malformed_json',
  'malformed_csv',
  'wrong_type',
  'missing_field',
  'empty_field',
  'wrong_role',
  'non_alternating',
  'system_not_first',
  'duplicate',
  'too_long',
  'max_samples',
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

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** A required string field: present, a string, not blank. */
function requiredString(obj: Record<string, unknown>, field: string, label: string): string | RejectedRow {
  const v = obj[field];
  if (v === undefined || v === null) return reject('missing_field', `\`${label}\` is missing${field === label ? '' : ` (field '${field}')`}`);
  if (typeof v !== 'string') return reject('wrong_type', `\`${label}\` must be a string, got ${typeName(v)}`);
  if (v.trim() === '') return reject('empty_field', `\`${label}\` is empty`);
  return v;
}

function optionalString(obj: Record<string, unknown>, field: string, label: string): string | undefined | RejectedRow {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return reject('wrong_type', `\`${label}\` must be a string, got ${typeName(v)}`);
  return v;
}

const isRejected = (v: unknown): v is RejectedRow => typeof v === 'object' && v !== null && (v as RejectedRow).ok === false;

export interface AlpacaColumns {
  readonly instruction: string;
  readonly input: string;
  readonly output: string;
  readonly system: string;
  readonly history: string;
}

export const DEFAULT_ALPACA_COLUMNS: AlpacaColumns = { instruction: 'instruction', input: 'input', output: 'output', system: 'system', history: 'history' };

export function alpacaColumns(descriptor: DatasetDescriptor): AlpacaColumns {
  const c = (descriptor.format === 'alpaca' || descriptor.format === 'csv' || descriptor.format === 'tsv' ? descriptor.columns : undefined) ?? {};
  return {
    instruction: c.instruction ?? 'instruction',
    input: c.input ?? 'input',
    output: c.output ?? 'output',
    system: c.system ?? 'system',
    history: 'history' in c && c.history !== undefined ? c.history : 'history',
  };
}

/** Alpaca row → `{"instruction","input","output"[,"system"][,"history"]}`. */
export function normalizeAlpaca(value: unknown, cols: AlpacaColumns, fill: Fill, wantText: boolean): RowResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return reject('wrong_type', `a row must be a JSON object, got ${typeName(value)}`);
  const obj = value as Record<string, unknown>;
  const instruction = requiredString(obj, cols.instruction, 'instruction');
  if (isRejected(instruction)) return instruction;
  const output = requiredString(obj, cols.output, 'output');
  if (isRejected(output)) return output;
  const input = optionalString(obj, cols.input, 'input');
  if (isRejected(input)) return input;
  const system = optionalString(obj, cols.system, 'system');
  if (isRejected(system)) return system;
  const historyValue = obj[cols.history];
  let history: [string, string][] | undefined;
  if (historyValue !== undefined && historyValue !== null) {
    if (!Array.isArray(historyValue)) return reject('wrong_type', `\`history\` must be a list of [prompt, response] pairs, got ${typeName(historyValue)}`);
    history = [];
    for (let i = 0; i < historyValue.length; i++) {
      const pair: unknown = historyValue[i];
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        return reject('wrong_type', `\`history[${i}]\` must be a [prompt, response] pair of strings`);
      }
      if (pair[0].trim() === '' || pair[1].trim() === '') return reject('empty_field', `\`history[${i}]\` has an empty turn`);
      history.push([fill(pair[0]), fill(pair[1])]);
    }
    if (history.length === 0) history = undefined;
  }
  const out: Record<string, unknown> = { instruction: fill(instruction), input: input === undefined ? '' : fill(input), output: fill(output) };
  let flags = 0;
  const measure: TextMeasure = { cjk: 0, otherBytes: 0 };
  measureText(out['instruction'] as string, measure);
  measureText(out['input'] as string, measure);
  measureText(out['output'] as string, measure);
  let messages = 2;
  if (system !== undefined && system !== '') {
    out['system'] = fill(system);
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

/** Canonical ShareGPT roles (LLaMA-Factory's default tags) and the names accepted for each. */
const ROLE_ALIASES: Readonly<Record<string, 'human' | 'gpt' | 'system' | 'observation' | 'function_call'>> = {
  human: 'human',
  user: 'human',
  gpt: 'gpt',
  assistant: 'gpt',
  system: 'system',
  observation: 'observation',
  tool: 'observation',
  function_call: 'function_call',
};

export interface SharegptColumns {
  readonly messages: string | undefined;
  readonly system: string;
  readonly tools: string;
}

export function sharegptColumns(descriptor: DatasetDescriptor): SharegptColumns {
  const c = descriptor.format === 'sharegpt' ? descriptor.columns : undefined;
  return { messages: c?.messages, system: c?.system ?? 'system', tools: c?.tools ?? 'tools' };
}

/**
 * ShareGPT row (`from`/`value` or OpenAI-style `role`/`content` messages) →
 * `{"conversations":[{"from","value"}…][,"system"][,"tools"]}` with LLaMA-Factory's default tags.
 * The turn rules are LLaMA-Factory's (which otherwise drops a broken row with only a warning):
 * an optional system message first, then user/observation and assistant/function_call
 * alternating, ending with the assistant.
 */
export function normalizeSharegpt(value: unknown, cols: SharegptColumns, fill: Fill, wantText: boolean): RowResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return reject('wrong_type', `a row must be a JSON object, got ${typeName(value)}`);
  const obj = value as Record<string, unknown>;
  const field = cols.messages ?? (obj['conversations'] !== undefined ? 'conversations' : 'messages');
  const list = obj[field];
  if (list === undefined || list === null) return reject('missing_field', `the message list \`${cols.messages ?? 'conversations'}\` is missing${cols.messages ? '' : " (also looked for 'messages')"}`);
  if (!Array.isArray(list)) return reject('wrong_type', `\`${field}\` must be a list of messages, got ${typeName(list)}`);
  if (list.length === 0) return reject('empty_field', `\`${field}\` has no messages`);
  let system = optionalString(obj, cols.system, 'system');
  if (isRejected(system)) return system;
  const tools = optionalString(obj, cols.tools, 'tools');
  if (isRejected(tools)) return tools;
  const turns: { from: string; value: string }[] = [];
  const measure: TextMeasure = { cjk: 0, otherBytes: 0 };
  for (let i = 0; i < list.length; i++) {
    const m: unknown = list[i];
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return reject('wrong_type', `\`${field}[${i}]\` must be an object, got ${typeName(m)}`);
    const msg = m as Record<string, unknown>;
    const fromValue = 'from' in msg || 'value' in msg;
    const roleKey = fromValue ? 'from' : 'role';
    const contentKey = fromValue ? 'value' : 'content';
    const role = msg[roleKey];
    const content = msg[contentKey];
    if (role === undefined || role === null) return reject('missing_field', `\`${field}[${i}].${roleKey}\` is missing`);
    if (typeof role !== 'string') return reject('wrong_type', `\`${field}[${i}].${roleKey}\` must be a string, got ${typeName(role)}`);
    const canonical = ROLE_ALIASES[role];
    if (canonical === undefined) {
      return reject('wrong_role', `\`${field}[${i}].${roleKey}\` is '${role.slice(0, 40)}'; use ${fromValue ? 'human, gpt, system, observation or function_call' : 'user, assistant, system or tool'}`);
    }
    if (content === undefined || content === null) return reject('missing_field', `\`${field}[${i}].${contentKey}\` is missing`);
    if (typeof content !== 'string') {
      return reject('wrong_type', `\`${field}[${i}].${contentKey}\` must be a string, got ${typeName(content)}${Array.isArray(content) ? ' (multi-part content: join the text parts into one string)' : ''}`);
    }
    if (content.trim() === '') return reject('empty_field', `\`${field}[${i}].${contentKey}\` is empty`);
    if (canonical === 'system') {
      if (i !== 0) return reject('system_not_first', `\`${field}[${i}]\` is a system message; only the first message may be one`);
      if (system !== undefined && system !== '') return reject('system_not_first', `the system prompt is given twice: in \`${cols.system}\` and as \`${field}[0]\``);
      system = content;
      continue;
    }
    const position = turns.length;
    const userSide = canonical === 'human' || canonical === 'observation';
    if (position % 2 === 0 && !userSide) return reject('non_alternating', `\`${field}[${i}]\` is '${role}' where a user (or tool result) turn must come`);
    if (position % 2 === 1 && userSide) return reject('non_alternating', `\`${field}[${i}]\` is '${role}' where an assistant turn must come`);
    const filled = fill(content);
    measureText(filled, measure);
    turns.push({ from: canonical, value: filled });
  }
  if (turns.length === 0) return reject('empty_field', `\`${field}\` has only a system message`);
  if (turns.length % 2 !== 0) return reject('non_alternating', 'the conversation must end with an assistant turn');
  const out: Record<string, unknown> = { conversations: turns };
  let flags = 0;
  let messages = turns.length;
  if (system !== undefined && system !== '') {
    out['system'] = fill(system);
    measureText(out['system'] as string, measure);
    flags |= HAS_SYSTEM;
    messages++;
  }
  if (tools !== undefined && tools !== '') {
    out['tools'] = tools;
    measureText(tools, measure);
    flags |= HAS_TOOLS;
  }
  const text = wantText ? (): string => [out['system'] as string | undefined, ...turns.map((t) => t.value)].filter((s) => s !== undefined).join('\n') : undefined;
  return { ok: true, line: JSON.stringify(out), measure, messages, flags, text };
}

/** Text corpus document → `{"text": …}`. */
export function normalizeText(value: unknown, textField: string | undefined, fill: Fill): RowResult {
  let text: string;
  if (textField === undefined) {
    text = value as string;
  } else {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return reject('wrong_type', `a row must be a JSON object, got ${typeName(value)}`);
    const t = requiredString(value as Record<string, unknown>, textField, textField);
    if (isRejected(t)) return t;
    text = t;
  }
  const filled = fill(text);
  const measure = measureText(filled, { cjk: 0, otherBytes: 0 });
  return { ok: true, line: JSON.stringify({ text: filled }), measure, messages: 0, flags: 0, text: () => filled };
}
