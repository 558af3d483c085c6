import { isUtf8 } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import type { DatasetFileInput, DatasetSourceInput } from '../context.ts';
import type { Issue } from '../issues.ts';
import {
  alpacaColumns,
  firstInvalidUtf8,
  invalidUtf8Policy,
  readAlpacaRow,
  readConversation,
  readTextRow,
  rowEncoding,
  rowShape,
  sharegptColumns,
  textColumn,
  CsvSplitter,
  type AlpacaColumns,
  type CsvSplit,
  type RowShape,
  type SharegptColumns,
} from './row-formats.ts';

/**
 * Synth-time row checks of the dataset and calibration files a compile ships (the ones with
 * ConfigMap content; a remote file is only read by the convert Job).
 *
 * Severity: the converter quarantines a row it cannot use (quarantine.jsonl, with the reason and
 * the line) and converts the rest, so nothing is lost silently: a few bad rows are a warning
 * (`dataset.row-field` / `dataset.row-parse`), capped at ROW_ISSUE_CAP per file plus one count.
 * A file none of whose rows is usable is an error: that is a wrong format or column mapping rather
 * than dirty data, the file would contribute nothing, and a source made only of such files stops
 * the convert Job ("no valid rows"). So are files the converter refuses whole (a .jsonl that is
 * a JSON array, a CSV header without the mapped column, an empty file).
 */

export const ROW_ISSUE_CAP = 20;
/** A ConfigMap carries at most ~1 MiB of base64; this bounds the gunzip of a hostile payload. */
const MAX_DECODED_BYTES = 512 * 1024 * 1024;

interface RowProblem {
  readonly line: number;
  readonly code: 'dataset.row-field' | 'dataset.row-parse';
  /** The missing or unusable field, when the problem is one. */
  readonly field?: string;
  readonly detail: string;
}

type Found = Omit<RowProblem, 'line'>;

/** The whole file is unusable, at this line. */
interface FileProblem {
  readonly line: number;
  readonly field?: string;
  readonly detail: string;
  readonly fix: string;
}

interface FileScan {
  rows: number;
  readonly problems: RowProblem[];
  fileProblem?: FileProblem;
}

/** What a file's rows are read with besides their shape. */
interface ScanContext {
  readonly alpaca: AlpacaColumns;
  readonly sharegpt: SharegptColumns;
  readonly textField: string;
  /** How a `.txt` corpus splits into documents. */
  readonly separator: 'blank-line' | 'line' | 'file';
  /** Where the decoded text stands in for bytes that are not UTF-8 (none when the descriptor lets the converter replace them). */
  readonly invalidUtf8: BadBytes;
}

export function rowFieldIssues(sourceName: string, loaded: DatasetSourceInput, pathPrefix: string): Issue[] {
  const issues: Issue[] = [];
  for (const file of loaded.files) {
    const shape = rowShape(loaded.descriptor, file.path);
    if (!shape) continue;
    const bytes = decode(file);
    if (bytes === undefined) continue;
    const { text: content, bad } = decodeText(bytes);
    const where = `datasets/${sourceName}/${file.path}`;
    const separator = loaded.descriptor['separator'];
    const context: ScanContext = {
      alpaca: alpacaColumns(loaded.descriptor),
      sharegpt: sharegptColumns(loaded.descriptor),
      textField: textColumn(loaded.descriptor),
      separator: separator === 'line' || separator === 'file' ? separator : 'blank-line',
      invalidUtf8: invalidUtf8Policy(loaded.descriptor) === 'quarantine' ? bad : NO_BAD_BYTES,
    };
    const scan = scanFile(content, shape, file.path, context);
    issues.push(...fileIssues(scan, shape, where, sourceName, pathPrefix));
  }
  return issues;
}

function decode(file: DatasetFileInput): Buffer | undefined {
  if (file.gzipBase64 === undefined) return undefined;
  try {
    let bytes = gunzipSync(Buffer.from(file.gzipBase64, 'base64'), { maxOutputLength: MAX_DECODED_BYTES });
    // A `.gz` data file travels gzipped once more.
    if (rowEncoding(file.path).gzip && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes, { maxOutputLength: MAX_DECODED_BYTES });
    return bytes;
  } catch {
    // Undecodable content is the loader's problem, not the rows'; the convert Job reports it.
    return undefined;
  }
}

/** Bytes that are not UTF-8: the index of the U+FFFD standing for each in the text, and its offset in the file. */
interface BadBytes {
  readonly chars: readonly number[];
  readonly offsets: readonly number[];
}
const NO_BAD_BYTES: BadBytes = { chars: [], offsets: [] };

/**
 * The file as text, without a byte order mark, each run of bytes that are not UTF-8 read as one
 * U+FFFD whose place is noted: a row is then not valid UTF-8 exactly when its characters include
 * one of those places (a U+FFFD written as UTF-8 is text like any other). A bad byte never
 * swallows the ASCII after it, so quotes, brackets and line breaks split the rows as the
 * converter's byte readers split them, and a row never starts inside a run.
 */
function decodeText(bytes: Buffer): { text: string; bad: BadBytes } {
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  if (isUtf8(bytes)) return { text: bytes.toString('utf8', bom), bad: NO_BAD_BYTES };
  const parts: string[] = [];
  const chars: number[] = [];
  const offsets: number[] = [];
  let length = 0;
  for (let pos = bom; pos < bytes.length; ) {
    const badByte = firstInvalidUtf8(bytes, pos, bytes.length);
    const end = badByte === -1 ? bytes.length : badByte;
    const good = bytes.toString('utf8', pos, end);
    parts.push(good);
    length += good.length;
    if (badByte === -1) break;
    parts.push('\uFFFD');
    chars.push(length);
    offsets.push(badByte);
    length++;
    // The rest of the run: bytes that cannot begin any character (continuations, C0, C1, F5–FF).
    pos = badByte + 1;
    while (pos < bytes.length && ((bytes[pos]! >= 0x80 && bytes[pos]! <= 0xc1) || bytes[pos]! >= 0xf5)) pos++;
  }
  return { text: parts.join(''), bad: { chars, offsets } };
}

/** The file offset of the first bad byte among the characters [start, end) of the text, or undefined. */
function invalidUtf8At(context: ScanContext, start: number, end: number): number | undefined {
  const { chars, offsets } = context.invalidUtf8;
  if (chars.length === 0) return undefined;
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chars[mid]! < start) lo = mid + 1;
    else hi = mid;
  }
  return lo < chars.length && chars[lo]! < end ? offsets[lo] : undefined;
}

const invalidUtf8Problem = (offset: number): Found => ({ code: 'dataset.row-parse', field: INVALID_UTF8, detail: `the row is not valid UTF-8 (byte offset ${offset} of the file)` });
/** The `field` of an encoding problem, for its fix. */
const INVALID_UTF8 = '(encoding)';

function fileIssues(scan: FileScan, shape: RowShape, where: string, sourceName: string, path: string): Issue[] {
  const descriptor = `datasets/${sourceName}/dataset.yaml`;
  if (scan.fileProblem) {
    const p = scan.fileProblem;
    return [{ code: 'dataset.row-field', path, value: `${where}:${p.line}`, message: `${where}:${p.line}: ${p.detail}; the converter cannot read any row of the file`, fix: p.fix }];
  }
  if (scan.rows === 0) {
    return [{ code: 'dataset.row-field', path, value: where, message: `${where} has no rows`, fix: `add rows, or remove the file from ${descriptor}` }];
  }
  if (scan.problems.length === 0) return [];
  if (scan.problems.length === scan.rows) {
    const first = scan.problems[0]!;
    const byField = new Map<string, number>();
    for (const p of scan.problems) byField.set(p.field ?? 'unparseable', (byField.get(p.field ?? 'unparseable') ?? 0) + 1);
    const counts = [...byField]
      .sort((a, b) => b[1] - a[1])
      .map(([field, n]) => (field === 'unparseable' ? `${n} cannot be parsed` : field === INVALID_UTF8 ? `${n} ${n === 1 ? 'is' : 'are'} not valid UTF-8` : `${n} lack a usable \`${field}\``));
    return [
      {
        code: first.code,
        path,
        value: `${where}:${first.line}`,
        message: `no row of ${where} is usable (${scan.rows} row${scan.rows === 1 ? '' : 's'}: ${counts.join(', ')}); first at line ${first.line}: ${first.detail}`,
        fix: fixFor(shape, first.field, descriptor),
      },
    ];
  }
  const issues: Issue[] = scan.problems.slice(0, ROW_ISSUE_CAP).map((p) => ({
    code: p.code,
    path,
    value: `${where}:${p.line}`,
    message: `${where}:${p.line}: ${p.detail}; the converter quarantines the row`,
    fix: fixFor(shape, p.field, descriptor),
    severity: 'warning' as const,
  }));
  const rest = scan.problems.length - ROW_ISSUE_CAP;
  if (rest > 0) {
    issues.push({
      code: 'dataset.row-field',
      path,
      value: where,
      message: `${where}: ${rest} more row${rest === 1 ? '' : 's'} cannot be used (${scan.problems.length} of ${scan.rows} in all); the converter quarantines them`,
      fix: 'see quarantine.jsonl in the convert output for every row and its reason',
      severity: 'warning',
    });
  }
  return issues;
}

function fixFor(shape: RowShape, field: string | undefined, descriptor: string): string {
  if (field === undefined) return 'fix the row so it is one valid JSON object';
  if (field === INVALID_UTF8) return `re-save the file as UTF-8 (e.g. \`iconv -f <its encoding> -t UTF-8\`), or let the converter replace bad bytes with U+FFFD: \`encoding: { invalid: replace }\` in ${descriptor}`;
  switch (shape.kind) {
    case 'object': {
      const f = shape.fields.find((x) => x.name === field);
      if (f === undefined) return /\[\d+\]$/.test(field) || field === 'history' ? `make \`${field.replace(/\[\d+\]$/, '')}\` a list of [prompt, response] pairs of text, or leave it out` : `make \`${field}\` text, or leave it out`;
      return f && f.name === f.label
        ? `give every row a non-empty \`${field}\`, or, if your rows call it something else, map it in ${descriptor}: columns: { ${field}: <your field> }`
        : `give every row a non-empty \`${field}\` (the field ${descriptor} maps to ${f?.label ?? field})`;
    }
    case 'messages':
      return `give every row a non-empty message list of {from, value} or {role, content} turns${shape.field ? '' : `, or map the field in ${descriptor}: columns: { messages: <your field> }`}`;
    case 'table':
      return `fill the \`${field}\` column, or map another column in ${descriptor} columns`;
    case 'text':
      return 'give the document some text';
  }
}

function scanFile(content: string, shape: RowShape, path: string, context: ScanContext): FileScan {
  const scan: FileScan = { rows: 0, problems: [] };
  const { encoding } = rowEncoding(path);
  if (shape.kind === 'text') {
    scanText(content, context, scan);
    return scan;
  }
  if (shape.kind === 'table') {
    scanTable(content, shape, scan, context);
    return scan;
  }
  const onRecord = (line: number, raw: string, start: number, end: number) => {
    scan.rows++;
    const badByte = invalidUtf8At(context, start, end);
    if (badByte !== undefined) {
      scan.problems.push({ line, ...invalidUtf8Problem(badByte) });
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      scan.problems.push({ line, code: 'dataset.row-parse', detail: `the row is not valid JSON (${(e as Error).message})` });
      return;
    }
    const problem = shape.kind === 'object' ? objectProblem(value, shape, context) : messagesProblem(value, context.sharegpt);
    if (problem) scan.problems.push({ line, ...problem });
  };
  if (encoding === 'jsonl') jsonLines(content, scan, onRecord);
  else jsonArray(content, scan, onRecord);
  return scan;
}

/** A `.txt` corpus, cut into documents as the converter cuts it (dataset.yaml `separator`). */
function scanText(content: string, context: ScanContext, scan: FileScan): void {
  const lines = content.split('\n');
  const firstText = lines.findIndex((line) => line.trim() !== '');
  if (firstText !== -1 && lines[firstText]!.includes('\u0000')) {
    scan.fileProblem = { line: firstText + 1, detail: 'the file is binary, not text', fix: 'give a UTF-8 text file' };
    return;
  }
  let doc: string[] = [];
  let docLine = 0;
  let docStart = 0;
  const flush = (end: number) => {
    const text = doc.join('\n');
    doc = [];
    if (text.trim() === '') return;
    scan.rows++;
    const badByte = invalidUtf8At(context, docStart, end);
    if (badByte !== undefined) scan.problems.push({ line: docLine, ...invalidUtf8Problem(badByte) });
  };
  let start = 0;
  lines.forEach((raw, i) => {
    const end = start + raw.length;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (context.separator !== 'file' && line.trim() === '') flush(start);
    else {
      if (doc.length === 0) {
        docLine = i + 1;
        docStart = start;
      }
      doc.push(line);
      if (context.separator === 'line') flush(end);
    }
    start = end + 1;
  });
  flush(content.length);
}

/** Alpaca rows and `.jsonl` corpus rows, by the rules the converter applies (row-formats.ts). */
function objectProblem(value: unknown, shape: Extract<RowShape, { kind: 'object' }>, context: ScanContext): Found | undefined {
  const row = shape.format === 'alpaca' ? readAlpacaRow(value, context.alpaca) : readTextRow(value, context.textField);
  if (row.ok) return undefined;
  // Not an object at all: a parse problem, not a field problem.
  if (row.field === '') return { code: 'dataset.row-parse', detail: row.detail };
  return { code: 'dataset.row-field', field: row.field, detail: row.detail };
}

function messagesProblem(value: unknown, columns: SharegptColumns): Found | undefined {
  const conversation = readConversation(value, columns);
  if (conversation.ok) return undefined;
  if (conversation.field === '') return { code: 'dataset.row-parse', detail: conversation.detail };
  return { code: 'dataset.row-field', field: conversation.field, detail: conversation.detail };
}

/** JSON Lines: one record per non-blank line; a first record that is not an object means the file is something else. */
type OnRecord = (line: number, raw: string, start: number, end: number) => void;

function jsonLines(content: string, scan: FileScan, onRecord: OnRecord): void {
  const lines = content.split('\n');
  let first = true;
  let start = 0;
  for (let i = 0; i < lines.length; start += lines[i]!.length + 1, i++) {
    const raw = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    // Blank as the converter sees it: a line of other Unicode spaces is a (malformed) row there.
    if (raw.length === 0 || (raw.charCodeAt(0) <= 32 && raw.trim() === '')) continue;
    if (first) {
      first = false;
      if (!raw.trimStart().startsWith('{')) {
        scan.fileProblem = raw.trimStart().startsWith('[')
          ? { line: i + 1, detail: 'the file is a JSON array, not JSON Lines', fix: 'name the file .json, or write one object per line' }
          : { line: i + 1, detail: 'the file is not JSON Lines (one JSON object per line)', fix: 'convert the file to one JSON object per line, or declare its real format in dataset.yaml' };
        return;
      }
    }
    onRecord(i + 1, raw, start, start + lines[i]!.length);
  }
}

/**
 * A top-level JSON array, cut into its elements with the line each starts on, so one broken
 * element is one bad row (as in the converter) and the rest are still checked.
 */
function jsonArray(content: string, scan: FileScan, onRecord: OnRecord): void {
  let line = 1;
  let i = 0;
  const n = content.length;
  const skipSpace = () => {
    while (i < n && (content[i] === ' ' || content[i] === '\n' || content[i] === '\r' || content[i] === '\t')) {
      if (content[i] === '\n') line++;
      i++;
    }
  };
  skipSpace();
  if (i === n) return;
  if (content[i] !== '[') {
    scan.fileProblem =
      content[i] === '{'
        ? { line, detail: 'the file is not a JSON array of rows (it starts with `{`)', fix: 'if it holds one object per line, name it .jsonl; if it is one object wrapping a list, extract the list' }
        : { line, detail: 'the file is not a JSON array of rows', fix: 'declare the real format in dataset.yaml, or convert the file to a JSON array' };
    return;
  }
  i++;
  for (;;) {
    skipSpace();
    while (i < n && content[i] === ',') {
      i++;
      skipSpace();
    }
    if (i >= n) {
      scan.fileProblem = { line, detail: 'the array is not closed (the file ends before its `]`)', fix: 'the file is truncated or has an unbalanced bracket or quote; fix it' };
      return;
    }
    if (content[i] === ']') {
      const rest = content.slice(i + 1).trim();
      if (rest !== '') scan.fileProblem = { line, detail: `unexpected text after the closing \`]\` of the array: ${JSON.stringify(rest.slice(0, 40))}`, fix: 'remove the trailing text; a .json file holds exactly one array' };
      return;
    }
    const startLine = line;
    const start = i;
    let depth = 0;
    let inString = false;
    let escaped = false;
    for (; i < n; i++) {
      const c = content[i];
      if (c === '\n') line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0 && c === ']') break;
        // A stray `}` makes this element unparseable but, as in the converter, does not end it.
        if (depth > 0) depth--;
      } else if (c === ',' && depth === 0) break;
    }
    onRecord(startLine, content.slice(start, i).trim(), start, i);
  }
}

/**
 * Calls `onRecord` for the file's CSV/TSV records, delimited by the converter's splitter (a stray
 * quote is cut at CSV_LIMITS as there), with the character range each spans in `content`.
 */
function tableRecords(content: string, delimiter: ',' | '\t', onRecord: (split: CsvSplit<number>, start: number, end: number) => boolean): void {
  let stop = false;
  const splitter = new CsvSplitter<number>(delimiter, (split) => {
    if (stop) return;
    const last = split.tags[split.tags.length - 1]!;
    const lineEnd = content.indexOf('\n', last);
    stop = !onRecord(split, split.tags[0]!, lineEnd === -1 ? content.length : lineEnd);
  });
  // Lines as the converter streams them: no empty line after a final line break.
  for (let start = 0; start < content.length && !stop; ) {
    const nl = content.indexOf('\n', start);
    const end = nl === -1 ? content.length : nl;
    splitter.push(content.slice(start, end), start);
    start = end + 1;
  }
  if (!stop) splitter.end();
}

function scanTable(content: string, shape: Extract<RowShape, { kind: 'table' }>, scan: FileScan, context: ScanContext): void {
  let header: string[] | undefined;
  tableRecords(content, shape.delimiter, (split, start, end) => {
    if (header === undefined) {
      if (split.problem) {
        scan.fileProblem = { line: split.line, detail: `the header row cannot be parsed (${split.problem.detail})`, fix: 'fix the header row (quotes must enclose whole fields)' };
        return false;
      }
      header = split.fields.map((h) => h.trim());
      const missing = shape.fields.filter((f) => !header!.includes(f.name));
      if (missing.length > 0) {
        scan.fileProblem = {
          line: split.line,
          field: missing[0]!.name,
          detail: `the header row lacks the column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m.name}' (${m.label})`).join(', ')}`,
          fix: 'fix `columns` in dataset.yaml to name headers that exist, or add the header row',
        };
        return false;
      }
      return true;
    }
    scan.rows++;
    if (split.problem || split.fields.length !== header.length) {
      scan.problems.push({ line: split.line, code: 'dataset.row-parse', detail: split.problem?.detail ?? `the row has ${split.fields.length} fields, the header ${header.length}` });
      return true;
    }
    const badByte = invalidUtf8At(context, start, end);
    if (badByte !== undefined) {
      scan.problems.push({ line: split.line, ...invalidUtf8Problem(badByte) });
      return true;
    }
    for (const f of shape.fields) {
      const cell = split.fields[header.indexOf(f.name)]!;
      if (cell.trim() === '') {
        scan.problems.push({ line: split.line, code: 'dataset.row-field', field: f.name, detail: `column '${f.name}' (${f.label}) is empty` });
        break;
      }
    }
    return true;
  });
}
