/**
 * What a row of each dataset format must hold, read from a dataset descriptor. This is the part of
 * the converter's row rules (packages/convert/src/rows.ts, descriptor.ts) that check() needs at
 * synth time; core cannot import convert (convert depends on core), so the description lives here
 * and convert's normalizers are the reference it must agree with.
 */

/** A field a row needs: `name` in the file, `label` the format's own name for it. */
export interface RowField {
  readonly name: string;
  readonly label: string;
}

export type RowShape =
  /** JSON objects with these non-blank string fields (alpaca; a `text` corpus in .jsonl). */
  | { readonly kind: 'object'; readonly format: string; readonly fields: readonly RowField[] }
  /** JSON objects with a non-empty message list (sharegpt); `field` undefined = `conversations`, else `messages`. */
  | { readonly kind: 'messages'; readonly format: 'sharegpt'; readonly field: string | undefined }
  /** A header row naming these columns, then rows whose cells for them are not blank (csv/tsv). */
  | { readonly kind: 'table'; readonly format: 'csv' | 'tsv'; readonly delimiter: ',' | '\t'; readonly fields: readonly RowField[] }
  /** Plain text documents: any non-blank text is a row. */
  | { readonly kind: 'text'; readonly format: 'text' };

export type RowEncoding = 'json' | 'jsonl' | 'csv' | 'tsv' | 'txt';

/** How a data file is read, from its name (the converter's fileEncoding): `.json` array, `.jsonl`, … each optionally `.gz`. */
export function rowEncoding(path: string): { readonly encoding: RowEncoding | undefined; readonly gzip: boolean } {
  const gzip = path.endsWith('.gz');
  const base = gzip ? path.slice(0, -3) : path;
  const ext = base.slice(base.lastIndexOf('.') + 1).toLowerCase();
  const byExt: Record<string, RowEncoding> = { json: 'json', jsonl: 'jsonl', ndjson: 'jsonl', csv: 'csv', tsv: 'tsv', tab: 'tsv', txt: 'txt' };
  return { encoding: Object.hasOwn(byExt, ext) ? byExt[ext] : undefined, gzip };
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The row shape of one file of a source, or undefined when the descriptor and the file name do not
 * fit together (the descriptor check reports that).
 */
export function rowShape(descriptor: Readonly<Record<string, unknown>>, path: string): RowShape | undefined {
  const format = descriptor['format'];
  const columns = (typeof descriptor['columns'] === 'object' && descriptor['columns'] !== null ? descriptor['columns'] : {}) as Record<string, unknown>;
  const { encoding } = rowEncoding(path);
  switch (format) {
    case 'alpaca':
      if (encoding !== 'json' && encoding !== 'jsonl') return undefined;
      return {
        kind: 'object',
        format,
        fields: [
          { name: text(columns['instruction']) ?? 'instruction', label: 'instruction' },
          { name: text(columns['output']) ?? 'output', label: 'output' },
        ],
      };
    case 'sharegpt':
      if (encoding !== 'json' && encoding !== 'jsonl') return undefined;
      return { kind: 'messages', format, field: text(columns['messages']) };
    case 'csv':
    case 'tsv': {
      if (encoding !== format) return undefined;
      const instruction = text(columns['instruction']);
      const output = text(columns['output']);
      if (instruction === undefined || output === undefined) return undefined;
      return { kind: 'table', format, delimiter: format === 'csv' ? ',' : '\t', fields: [{ name: instruction, label: 'instruction' }, { name: output, label: 'output' }] };
    }
    case 'text':
      if (encoding === 'txt') return { kind: 'text', format };
      if (encoding === 'jsonl') return { kind: 'object', format, fields: [{ name: text(columns['text']) ?? 'text', label: 'text' }] };
      return undefined;
    default:
      return undefined;
  }
}

/**
 * What becomes of bytes that are not UTF-8 (`encoding: { invalid }` in dataset.yaml): by default
 * the row holding them is quarantined (`invalid_utf8`); `replace` keeps it with U+FFFD in their place.
 */
export type InvalidUtf8Policy = 'quarantine' | 'replace';

export function invalidUtf8Policy(descriptor: Readonly<Record<string, unknown>>): InvalidUtf8Policy {
  const encoding = descriptor['encoding'];
  return typeof encoding === 'object' && encoding !== null && (encoding as Record<string, unknown>)['invalid'] === 'replace' ? 'replace' : 'quarantine';
}

/**
 * Index of the first byte in `bytes[start, end)` that does not begin a well-formed UTF-8 sequence
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), or -1 when the range is valid.
 * A sequence cut off by `end` counts as invalid. Callers check `isUtf8` first: this is the slow path.
 */
export function firstInvalidUtf8(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let i = start;
  while (i < end) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + need >= end) return i;
    const second = bytes[i + 1]!;
    if (second < lo || second > hi) return i;
    for (let k = 2; k <= need; k++) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** ShareGPT roles in LLaMA-Factory's default tags. */
export type SharegptRole = 'human' | 'gpt' | 'system' | 'observation' | 'function_call';

/**
 * The role names a message may use, `from` style and OpenAI `role` style. A Map, not an object:
 * a role named `constructor` or `__proto__` must not find Object.prototype's members.
 */
const ROLE_NAMES: ReadonlyMap<string, SharegptRole> = new Map([
  ['human', 'human'],
  ['user', 'human'],
  ['gpt', 'gpt'],
  ['assistant', 'gpt'],
  ['system', 'system'],
  ['observation', 'observation'],
  ['tool', 'observation'],
  ['function_call', 'function_call'],
]);

export function sharegptRole(name: string): SharegptRole | undefined {
  return ROLE_NAMES.get(name);
}

/** Where a ShareGPT row keeps its messages, system prompt and tools (dataset.yaml `columns`). */
export interface SharegptColumns {
  /** undefined: `conversations`, else `messages`. */
  readonly messages: string | undefined;
  readonly system: string;
  readonly tools: string;
}

export function sharegptColumns(descriptor: Readonly<Record<string, unknown>>): SharegptColumns {
  const columns = (descriptor['format'] === 'sharegpt' && typeof descriptor['columns'] === 'object' && descriptor['columns'] !== null ? descriptor['columns'] : {}) as Record<string, unknown>;
  return { messages: text(columns['messages']), system: text(columns['system']) ?? 'system', tools: text(columns['tools']) ?? 'tools' };
}

/** Why a row cannot be used: the converter's quarantine reason for it. */
export type RowRejection = 'wrong_type' | 'missing_field' | 'empty_field' | 'wrong_role' | 'non_alternating' | 'system_not_first';

export interface RowDefect {
  readonly ok: false;
  readonly reason: RowRejection;
  /** The field at fault, as a path into the row (`conversations[2].from`). */
  readonly field: string;
  readonly detail: string;
  /** A hint for this particular defect, for the converter's quarantine line. */
  readonly hint?: string;
}

export interface Conversation {
  readonly ok: true;
  /** The field the messages were read from. */
  readonly field: string;
  /** User/observation and assistant/function_call turns, alternating, the assistant last. */
  readonly turns: readonly { readonly role: Exclude<SharegptRole, 'system'>; readonly content: string }[];
  /** From the system column or a leading system message; undefined when neither is there or blank. */
  readonly system: string | undefined;
  /** The tools column (a JSON text); undefined when absent or blank. */
  readonly tools: string | undefined;
}

const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);
const defect = (reason: RowRejection, field: string, detail: string, hint?: string): RowDefect => ({ ok: false, reason, field, detail, ...(hint ? { hint } : {}) });

function optionalText(row: Record<string, unknown>, field: string): string | undefined | RowDefect {
  const v = row[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return defect('wrong_type', field, `\`${field}\` is ${kindOf(v)}, not text`);
  return v;
}

/**
 * A ShareGPT row read the way LLaMA-Factory reads it, which otherwise drops a broken row with only
 * a warning: every message an object whose role and content are text — `{from, value}` when it
 * has either key, else `{role, content}` —, a known role, an optional system message first, then
 * user/observation and assistant/function_call turns alternating, ending with the assistant.
 * The converter quarantines a row this refuses, and check() warns about it: one rule for both.
 */
export function readConversation(value: unknown, columns: SharegptColumns): Conversation | RowDefect {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return defect('wrong_type', '', `the row is ${kindOf(value)}, not a JSON object`);
  const row = value as Record<string, unknown>;
  const field = columns.messages ?? (row['conversations'] !== undefined ? 'conversations' : 'messages');
  const list = row[field];
  if (list === undefined || list === null) {
    return defect('missing_field', columns.messages ?? 'conversations', columns.messages ? `the message list \`${columns.messages}\` is missing` : 'the message list is missing (neither `conversations` nor `messages`)');
  }
  if (!Array.isArray(list)) return defect('wrong_type', field, `\`${field}\` is ${kindOf(list)}, not a list of messages`);
  if (list.length === 0) return defect('empty_field', field, `\`${field}\` has no messages`);
  let system = optionalText(row, columns.system);
  if (typeof system === 'object') return system;
  const tools = optionalText(row, columns.tools);
  if (typeof tools === 'object') return tools;
  const turns: { role: Exclude<SharegptRole, 'system'>; content: string }[] = [];
  for (let i = 0; i < list.length; i++) {
    const at = `${field}[${i}]`;
    const m: unknown = list[i];
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return defect('wrong_type', at, `\`${at}\` is ${kindOf(m)}, not a message object`);
    const message = m as Record<string, unknown>;
    const fromStyle = Object.hasOwn(message, 'from') || Object.hasOwn(message, 'value');
    const roleKey = fromStyle ? 'from' : 'role';
    const contentKey = fromStyle ? 'value' : 'content';
    const name = message[roleKey];
    const content = message[contentKey];
    if (name === undefined || name === null) return defect('missing_field', `${at}.${roleKey}`, `\`${at}.${roleKey}\` is missing`);
    if (typeof name !== 'string') return defect('wrong_type', `${at}.${roleKey}`, `\`${at}.${roleKey}\` is ${kindOf(name)}, not text`);
    if (content === undefined || content === null) return defect('missing_field', `${at}.${contentKey}`, `\`${at}.${contentKey}\` is missing`);
    if (typeof content !== 'string') {
      return defect('wrong_type', `${at}.${contentKey}`, `\`${at}.${contentKey}\` is ${kindOf(content)}, not text`, Array.isArray(content) ? 'multi-part content: join the text parts into one string' : undefined);
    }
    if (content.trim() === '') return defect('empty_field', `${at}.${contentKey}`, `\`${at}.${contentKey}\` is empty`);
    const role = sharegptRole(name);
    if (role === undefined) {
      return defect('wrong_role', `${at}.${roleKey}`, `\`${at}.${roleKey}\` is ${JSON.stringify(name.slice(0, 40))}; use ${fromStyle ? 'human, gpt, system, observation or function_call' : 'user, assistant, system or tool'}`);
    }
    if (role === 'system') {
      if (i !== 0) return defect('system_not_first', at, `\`${at}\` is a system message; only the first message may be one`);
      if (system !== undefined && system !== '') return defect('system_not_first', at, `the system prompt is given twice: in \`${columns.system}\` and as \`${at}\``);
      system = content;
      continue;
    }
    const userSide = role === 'human' || role === 'observation';
    if (turns.length % 2 === 0 && !userSide) return defect('non_alternating', at, `\`${at}\` is ${JSON.stringify(name)} where a user (or tool result) turn must come`);
    if (turns.length % 2 === 1 && userSide) return defect('non_alternating', at, `\`${at}\` is ${JSON.stringify(name)} where an assistant turn must come`);
    turns.push({ role, content });
  }
  if (turns.length === 0) return defect('empty_field', field, `\`${field}\` has only a system message`);
  if (turns.length % 2 !== 0) return defect('non_alternating', field, 'the conversation must end with an assistant turn');
  return { ok: true, field, turns, system: system === '' ? undefined : system, tools: tools === '' ? undefined : tools };
}

/** Where an Alpaca row keeps its fields (dataset.yaml `columns`, defaults Alpaca's own names). */
export interface AlpacaColumns {
  readonly instruction: string;
  readonly input: string;
  readonly output: string;
  readonly system: string;
  readonly history: string;
}

export function alpacaColumns(descriptor: Readonly<Record<string, unknown>>): AlpacaColumns {
  const format = descriptor['format'];
  const columns = ((format === 'alpaca' || format === 'csv' || format === 'tsv') && typeof descriptor['columns'] === 'object' && descriptor['columns'] !== null ? descriptor['columns'] : {}) as Record<string, unknown>;
  return {
    instruction: text(columns['instruction']) ?? 'instruction',
    input: text(columns['input']) ?? 'input',
    output: text(columns['output']) ?? 'output',
    system: text(columns['system']) ?? 'system',
    history: text(columns['history']) ?? 'history',
  };
}

export interface AlpacaRow {
  readonly ok: true;
  readonly instruction: string;
  readonly input: string | undefined;
  readonly output: string;
  readonly system: string | undefined;
  /** undefined when absent or empty. */
  readonly history: readonly (readonly [string, string])[] | undefined;
}

/**
 * An Alpaca row: `instruction` and `output` non-blank text, `input` and `system` text when present,
 * `history` a list of [prompt, response] pairs of non-blank text. Names are the file's (mapped by
 * `columns`), with the Alpaca name in parentheses when they differ.
 */
export function readAlpacaRow(value: unknown, columns: AlpacaColumns): AlpacaRow | RowDefect {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return defect('wrong_type', '', `the row is ${kindOf(value)}, not a JSON object`);
  const row = value as Record<string, unknown>;
  const instruction = requiredAlpaca(row, columns, 'instruction');
  if (typeof instruction !== 'string') return instruction;
  const output = requiredAlpaca(row, columns, 'output');
  if (typeof output !== 'string') return output;
  const input = optionalAlpaca(row, columns, 'input');
  if (typeof input === 'object') return input;
  const system = optionalAlpaca(row, columns, 'system');
  if (typeof system === 'object') return system;
  const historyName = columns.history;
  const historyValue = own(row, historyName);
  let history: [string, string][] | undefined;
  if (historyValue !== undefined && historyValue !== null) {
    if (!Array.isArray(historyValue)) return defect('wrong_type', historyName, `${alpacaName(columns, 'history')} is ${kindOf(historyValue)}, not a list of [prompt, response] pairs`);
    history = [];
    for (let i = 0; i < historyValue.length; i++) {
      const pair: unknown = historyValue[i];
      const at = `${historyName}[${i}]`;
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return defect('wrong_type', at, `\`${at}\` is not a [prompt, response] pair of text`);
      if (pair[0].trim() === '' || pair[1].trim() === '') return defect('empty_field', at, `\`${at}\` has an empty turn`);
      history.push([pair[0], pair[1]]);
    }
  }
  return { ok: true, instruction, input, output, system, history: history && history.length > 0 ? history : undefined };
}

/** A field of the row itself (an inherited name such as `constructor` is not one). */
const own = (row: Record<string, unknown>, name: string): unknown => (Object.hasOwn(row, name) ? row[name] : undefined);
/** How a message names a field: the file's name, with the Alpaca name when they differ. */
const alpacaName = (columns: AlpacaColumns, label: keyof AlpacaColumns): string => (columns[label] === label ? `\`${label}\`` : `\`${columns[label]}\` (${label})`);

function requiredAlpaca(row: Record<string, unknown>, columns: AlpacaColumns, label: 'instruction' | 'output'): string | RowDefect {
  const name = columns[label];
  const v = own(row, name);
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (v === undefined || v === null) return defect('missing_field', name, `${alpacaName(columns, label)} is missing`);
  if (typeof v !== 'string') return defect('wrong_type', name, `${alpacaName(columns, label)} is ${kindOf(v)}, not text`);
  return defect('empty_field', name, `${alpacaName(columns, label)} is empty`);
}

function optionalAlpaca(row: Record<string, unknown>, columns: AlpacaColumns, label: 'input' | 'system'): string | undefined | RowDefect {
  const v = own(row, columns[label]);
  if (v === undefined || v === null || typeof v === 'string') return v ?? undefined;
  return defect('wrong_type', columns[label], `${alpacaName(columns, label)} is ${kindOf(v)}, not text`);
}

/** The text field of a `.jsonl` corpus (`columns.text`, default `text`). */
export function textColumn(descriptor: Readonly<Record<string, unknown>>): string {
  const columns = (descriptor['format'] === 'text' && typeof descriptor['columns'] === 'object' && descriptor['columns'] !== null ? descriptor['columns'] : {}) as Record<string, unknown>;
  return text(columns['text']) ?? 'text';
}

/** A `.jsonl` corpus row: an object whose text field is non-blank text. */
export function readTextRow(value: unknown, field: string): { readonly ok: true; readonly text: string } | RowDefect {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return defect('wrong_type', '', `the row is ${kindOf(value)}, not a JSON object`);
  const row = value as Record<string, unknown>;
  const named = field === 'text' ? '`text`' : `\`${field}\` (text)`;
  const v = Object.hasOwn(row, field) ? row[field] : undefined;
  if (v === undefined || v === null) return defect('missing_field', field, `${named} is missing`);
  if (typeof v !== 'string') return defect('wrong_type', field, `${named} is ${kindOf(v)}, not text`);
  if (v.trim() === '') return defect('empty_field', field, `${named} is empty`);
  return { ok: true, text: v };
}
