import { isUtf8 } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import type { DatasetFileInput, DatasetSourceInput } from '../context.ts';
import type { Issue } from '../issues.ts';
import { firstInvalidUtf8, invalidUtf8Policy, readConversation, rowEncoding, rowShape, sharegptColumns, type RowShape, type SharegptColumns } from './row-formats.ts';

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
  readonly sharegpt: SharegptColumns;
  /** How a `.txt` corpus splits into documents. */
  readonly separator: 'blank-line' | 'line' | 'file';
  /**
   * Lines (1-based) holding bytes that are not UTF-8, with the file offset of the first such byte;
   * empty when the file is valid or the descriptor lets the converter replace them.
   */
  readonly invalidUtf8: ReadonlyMap<number, number>;
}

export function rowFieldIssues(sourceName: string, loaded: DatasetSourceInput, pathPrefix: string): Issue[] {
  const issues: Issue[] = [];
  for (const file of loaded.files) {
    const shape = rowShape(loaded.descriptor, file.path);
    if (!shape) continue;
    const bytes = decode(file);
    if (bytes === undefined) continue;
    const content = bytes.toString('utf8').replace(/^\uFEFF/, '');
    const where = `datasets/${sourceName}/${file.path}`;
    const separator = loaded.descriptor['separator'];
    const context: ScanContext = {
      sharegpt: sharegptColumns(loaded.descriptor),
      separator: separator === 'line' || separator === 'file' ? separator : 'blank-line',
      invalidUtf8: invalidUtf8Policy(loaded.descriptor) === 'quarantine' ? invalidUtf8Lines(bytes) : new Map(),
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

/** The lines of `bytes` that are not UTF-8, each with the offset of its first bad byte. */
function invalidUtf8Lines(bytes: Buffer): Map<number, number> {
  const lines = new Map<number, number>();
  if (isUtf8(bytes)) return lines;
  let line = 1;
  for (let start = 0; start <= bytes.length; line++) {
    let end = bytes.indexOf(10, start);
    if (end === -1) end = bytes.length;
    const bad = isUtf8(bytes.subarray(start, end)) ? -1 : firstInvalidUtf8(bytes, start, end);
    if (bad !== -1) lines.set(line, bad);
    start = end + 1;
  }
  return lines;
}

/**
 * The offset of the bad byte behind a record read from lines first..last, or undefined. Bad bytes
 * decode to U+FFFD, so a record without one holds none (another record on the same line does).
 */
function invalidUtf8At(context: ScanContext, first: number, last: number, text: string): number | undefined {
  if (context.invalidUtf8.size === 0 || !text.includes('\uFFFD')) return undefined;
  for (let line = first; line <= last; line++) {
    const offset = context.invalidUtf8.get(line);
    if (offset !== undefined) return offset;
  }
  return undefined;
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
      .map(([field, n]) => (field === 'unparseable' ? `${n} cannot be parsed` : field === INVALID_UTF8 ? `${n} are not valid UTF-8` : `${n} lack a usable \`${field}\``));
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
  const onRecord = (line: number, raw: string) => {
    scan.rows++;
    const lastLine = line + countNewlines(raw);
    const badByte = invalidUtf8At(context, line, lastLine, raw);
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
    const problem = shape.kind === 'object' ? objectProblem(value, shape.fields) : messagesProblem(value, context.sharegpt);
    if (problem) scan.problems.push({ line, ...problem });
  };
  if (encoding === 'jsonl') jsonLines(content, scan, onRecord);
  else jsonArray(content, scan, onRecord);
  return scan;
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** A `.txt` corpus, cut into documents as the converter cuts it (dataset.yaml `separator`). */
function scanText(content: string, context: ScanContext, scan: FileScan): void {
  const lines = content.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  let docStart = 0;
  let doc: string[] = [];
  const flush = (lastLine: number) => {
    const text = doc.join('\n');
    doc = [];
    if (text.trim() === '') return;
    scan.rows++;
    const badByte = invalidUtf8At(context, docStart, lastLine, text);
    if (badByte !== undefined) scan.problems.push({ line: docStart, ...invalidUtf8Problem(badByte) });
  };
  lines.forEach((line, i) => {
    const number = i + 1;
    if (context.separator !== 'file' && line.trim() === '') {
      flush(number - 1);
      return;
    }
    if (doc.length === 0) docStart = number;
    doc.push(line);
    if (context.separator === 'line') flush(number);
  });
  flush(lines.length);
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

type Found = Omit<RowProblem, 'line'>;

function objectProblem(value: unknown, fields: readonly { name: string; label: string }[]): Found | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { code: 'dataset.row-parse', detail: `the row is ${typeName(value)}, not a JSON object` };
  const row = value as Record<string, unknown>;
  for (const { name, label } of fields) {
    const named = name === label ? `\`${name}\`` : `\`${name}\` (${label})`;
    const v = row[name];
    if (v === undefined || v === null) return { code: 'dataset.row-field', field: name, detail: `${named} is missing` };
    if (typeof v !== 'string') return { code: 'dataset.row-field', field: name, detail: `${named} is ${typeName(v)}, not text` };
    if (v.trim() === '') return { code: 'dataset.row-field', field: name, detail: `${named} is empty` };
  }
  return undefined;
}

function messagesProblem(value: unknown, columns: SharegptColumns): Found | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { code: 'dataset.row-parse', detail: `the row is ${typeName(value)}, not a JSON object` };
  const conversation = readConversation(value, columns);
  return conversation.ok ? undefined : { code: 'dataset.row-field', field: conversation.field, detail: conversation.detail };
}

/** JSON Lines: one record per non-blank line; a first record that is not an object means the file is something else. */
function jsonLines(content: string, scan: FileScan, onRecord: (line: number, raw: string) => void): void {
  const lines = content.split('\n');
  let first = true;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (raw.trim() === '') continue;
    if (first) {
      first = false;
      if (!raw.trimStart().startsWith('{')) {
        scan.fileProblem = raw.trimStart().startsWith('[')
          ? { line: i + 1, detail: 'the file is a JSON array, not JSON Lines', fix: 'name the file .json, or write one object per line' }
          : { line: i + 1, detail: 'the file is not JSON Lines (one JSON object per line)', fix: 'convert the file to one JSON object per line, or declare its real format in dataset.yaml' };
        return;
      }
    }
    onRecord(i + 1, raw);
  }
}

/**
 * A top-level JSON array, cut into its elements with the line each starts on, so one broken
 * element is one bad row (as in the converter) and the rest are still checked.
 */
function jsonArray(content: string, scan: FileScan, onRecord: (line: number, raw: string) => void): void {
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
    if (content[i] === ']') return;
    const startLine = line;
    const start = i;
    let depth = 0;
    let inString = false;
    for (; i < n; i++) {
      const c = content[i];
      if (c === '\n') line++;
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0) break;
        depth--;
      } else if (c === ',' && depth === 0) break;
    }
    onRecord(startLine, content.slice(start, i).trim());
  }
}

/** RFC 4180 records (quoted fields may hold delimiters, quotes as `""`, and newlines), with their first line. */
function* tableRecords(content: string, delimiter: string): Generator<{ line: number; lastLine: number; fields: string[]; error?: string }> {
  let line = 1;
  let i = 0;
  const n = content.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    let error: string | undefined;
    let atFieldStart = true;
    for (; i < n; i++) {
      const c = content[i]!;
      if (quoted) {
        if (c === '"') {
          if (content[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else {
          if (c === '\n') line++;
          field += c;
        }
        continue;
      }
      if (c === '"' && atFieldStart) {
        quoted = true;
        atFieldStart = false;
      } else if (c === delimiter) {
        fields.push(field);
        field = '';
        atFieldStart = true;
      } else if (c === '\n') {
        line++;
        i++;
        break;
      } else if (c !== '\r' || content[i + 1] !== '\n') {
        field += c;
        atFieldStart = false;
      }
    }
    if (quoted) error = 'a quoted field is never closed';
    fields.push(field);
    if (fields.length === 1 && fields[0]!.trim() === '' && error === undefined) continue;
    // `line` has moved past the record's line break, if it had one.
    const lastLine = i > 0 && content[i - 1] === '\n' ? line - 1 : line;
    yield error === undefined ? { line: startLine, lastLine, fields } : { line: startLine, lastLine, fields, error };
  }
}

function scanTable(content: string, shape: Extract<RowShape, { kind: 'table' }>, scan: FileScan, context: ScanContext): void {
  let header: string[] | undefined;
  for (const record of tableRecords(content, shape.delimiter)) {
    if (header === undefined) {
      header = record.fields.map((h) => h.trim());
      const missing = shape.fields.filter((f) => !header!.includes(f.name));
      if (missing.length > 0) {
        scan.fileProblem = {
          line: record.line,
          field: missing[0]!.name,
          detail: `the header row lacks the column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m.name}' (${m.label})`).join(', ')}`,
          fix: 'fix `columns` in dataset.yaml to name headers that exist, or add the header row',
        };
        return;
      }
      continue;
    }
    scan.rows++;
    if (record.error !== undefined || record.fields.length !== header.length) {
      scan.problems.push({ line: record.line, code: 'dataset.row-parse', detail: record.error ?? `the row has ${record.fields.length} fields, the header ${header.length}` });
      continue;
    }
    const badByte = invalidUtf8At(context, record.line, record.lastLine, record.fields.join(''));
    if (badByte !== undefined) {
      scan.problems.push({ line: record.line, ...invalidUtf8Problem(badByte) });
      continue;
    }
    for (const f of shape.fields) {
      const cell = record.fields[header.indexOf(f.name)]!;
      if (cell.trim() === '') {
        scan.problems.push({ line: record.line, code: 'dataset.row-field', field: f.name, detail: `column '${f.name}' (${f.label}) is empty` });
        break;
      }
    }
  }
}
