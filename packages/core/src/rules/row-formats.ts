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

/**
 * How far a quoted CSV/TSV field may run before the reader stops trusting its quote. A stray `"`
 * opens a field that only the next `"` closes, so every row after it would be read into one
 * record (and, with no closing quote at all, the rest of the file). Past these limits the quote is
 * taken to be stray: the record up to the quote's line is quarantined (`csv_unclosed_quote`) and
 * reading resumes on the line after it, so the rows that follow are read as rows.
 */
export interface CsvLimits {
  /** Physical lines a record may span (through quoted line breaks). @default 64 */
  readonly maxLines: number;
  /** Characters a quoted field that spans lines may hold. @default 1 Mi */
  readonly maxQuotedChars: number;
}

export const CSV_LIMITS: CsvLimits = { maxLines: 64, maxQuotedChars: 1024 * 1024 };

/** Why a delimited record cannot be used as it stands. */
export interface CsvProblem {
  readonly reason: 'csv_unclosed_quote' | 'malformed_csv';
  readonly detail: string;
}

/** One record as the splitter delimited it. `tags` are the ones its physical lines were pushed with. */
export interface CsvSplit<T> {
  /** 1-based physical line where the record starts. */
  readonly line: number;
  /** Physical lines it spans (more than 1 when a quoted field holds line breaks). */
  readonly lines: number;
  /** Its lines joined with `\n`, without the final line's `\r`. */
  readonly raw: string;
  readonly tags: readonly T[];
  /** Unquoted cells; empty for `csv_unclosed_quote`. */
  readonly fields: readonly string[];
  readonly problem?: CsvProblem;
}

interface PhysicalLine<T> {
  readonly text: string;
  readonly line: number;
  readonly tag: T;
}

/**
 * RFC 4180 records from physical lines (the converter's stream and check()'s synth-time read both
 * use it, so they delimit records alike). A field is quoted when `"` is its first character; `""`
 * inside it is a quote; a quote inside an unquoted field is text. Empty lines between records are
 * layout. A closing quote followed by something other than a delimiter or the line end makes the
 * record `malformed_csv`.
 */
export class CsvSplitter<T> {
  private readonly queue: PhysicalLine<T>[] = [];
  /** The lines of the record in progress (non-empty only inside a quoted field). */
  private pending: PhysicalLine<T>[] = [];
  private fields: string[] = [];
  private field = '';
  private quoted = false;
  private atFieldStart = true;
  private badQuote: string | undefined;
  /** Index in `pending` of the line where the open quoted field starts. */
  private quoteAt = 0;
  private nextLine = 1;
  private draining = false;

  constructor(
    private readonly delimiter: ',' | '\t',
    private readonly onRecord: (record: CsvSplit<T>) => void,
    private readonly limits: CsvLimits = CSV_LIMITS,
  ) {}

  /** The next physical line, without its `\n`. */
  push(text: string, tag: T): void {
    this.queue.push({ text, line: this.nextLine++, tag });
    this.drain();
  }

  /** End of input: a quoted field still open is never closed. */
  end(): void {
    this.drain();
    while (this.pending.length > 0) {
      this.cut('is never closed (the file ends inside it)');
      this.drain();
    }
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0) this.consume(this.queue.shift()!);
    } finally {
      this.draining = false;
    }
  }

  private consume(l: PhysicalLine<T>): void {
    if (this.pending.length === 0 && (l.text === '' || l.text === '\r')) return;
    this.pending.push(l);
    const text = l.text;
    const n = text.length;
    let i = 0;
    for (;;) {
      if (this.quoted) {
        const q = text.indexOf('"', i);
        if (q === -1) {
          this.field += text.slice(i) + '\n';
          if (this.pending.length >= this.limits.maxLines) this.cut(`is not closed within ${this.limits.maxLines} lines`);
          else if (this.field.length > this.limits.maxQuotedChars) this.cut(`runs past ${this.limits.maxQuotedChars} characters without being closed`);
          return;
        }
        this.field += text.slice(i, q);
        if (text.charCodeAt(q + 1) === 34) {
          this.field += '"';
          i = q + 2;
          continue;
        }
        this.quoted = false;
        if (this.quoteAt < this.pending.length - 1 && this.field.length > this.limits.maxQuotedChars) {
          this.cut(`runs past ${this.limits.maxQuotedChars} characters before its closing quote`);
          return;
        }
        i = q + 1;
        if (i < n && text[i] !== this.delimiter && !(i === n - 1 && text.charCodeAt(i) === 13)) {
          // Across lines, a quote that cannot be a closing one is most likely the next stray quote
          // (or the opening quote of a later field): the one that opened this field was stray.
          if (this.quoteAt < this.pending.length - 1) {
            this.cut(`is ended on line ${l.line} by a quote followed by ${JSON.stringify(text[i])}, not by a delimiter`);
            return;
          }
          this.badQuote ??= `a closing quote is followed by ${JSON.stringify(text[i])}, not by a delimiter (a quote inside a quoted field is written "")`;
        }
      } else if (this.atFieldStart && text.charCodeAt(i) === 34) {
        this.quoted = true;
        this.atFieldStart = false;
        this.quoteAt = this.pending.length - 1;
        i++;
        continue;
      }
      const next = text.indexOf(this.delimiter, i);
      if (next === -1) {
        const end = n > i && text.charCodeAt(n - 1) === 13 ? n - 1 : n;
        this.fields.push(this.field + text.slice(i, end));
        this.emit();
        return;
      }
      this.fields.push(this.field + text.slice(i, next));
      this.field = '';
      this.atFieldStart = true;
      i = next + 1;
    }
  }

  private emit(): void {
    const lines = this.pending;
    const fields = this.fields;
    const problem: CsvProblem | undefined = this.badQuote === undefined ? undefined : { reason: 'malformed_csv', detail: this.badQuote };
    this.reset();
    this.onRecord({ ...this.spanOf(lines), fields, ...(problem ? { problem } : {}) });
  }

  /** Quarantines the record up to the open quote's line and reads the lines after it again. */
  private cut(why: string): void {
    const taken = this.pending.slice(0, this.quoteAt + 1);
    const replay = this.pending.slice(this.quoteAt + 1);
    const quoteLine = taken[taken.length - 1]!.line;
    this.reset();
    this.queue.unshift(...replay);
    this.onRecord({
      ...this.spanOf(taken),
      fields: [],
      problem: { reason: 'csv_unclosed_quote', detail: `the quoted field opened on line ${quoteLine} ${why}; the lines after it are read as rows` },
    });
  }

  private spanOf(lines: readonly PhysicalLine<T>[]): Pick<CsvSplit<T>, 'line' | 'lines' | 'raw' | 'tags'> {
    let raw = lines.length === 1 ? lines[0]!.text : lines.map((l) => l.text).join('\n');
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    return { line: lines[0]!.line, lines: lines.length, raw, tags: lines.map((l) => l.tag) };
  }

  private reset(): void {
    this.pending = [];
    this.fields = [];
    this.field = '';
    this.quoted = false;
    this.atFieldStart = true;
    this.badQuote = undefined;
    this.quoteAt = 0;
  }
}
