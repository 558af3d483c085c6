import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Transform, type Readable } from 'node:stream';
import { CSV_LIMITS, CsvSplitter, firstInvalidUtf8, type CsvLimits } from '@tunepipe/core/row-formats';
import type { FileEncoding } from './descriptor.ts';

/** One record as found in a file, before any interpretation. */
export interface RawRecord {
  /** 1-based record number within the file (JSON array element, non-blank line, CSV row, text document). */
  readonly record: number;
  /** 1-based line where the record starts. */
  readonly line: number;
  /** The record's text exactly as in the file (bytes that are not UTF-8 read as U+FFFD). */
  readonly raw: string;
  /** Offset in the (decompressed) file of the record's first byte that is not UTF-8, if it has one. */
  readonly invalidUtf8?: number;
}

/** A record, with the offset of its first bad byte when there is one (-1: none). */
function recordOf(record: number, line: number, raw: string, badByte: number): RawRecord {
  return badByte === -1 ? { record, line, raw } : { record, line, raw, invalidUtf8: badByte };
}

/** The first byte of `bytes[start, end)` that is not UTF-8, as an offset from `base`; -1 when there is none. */
function badByteAt(bytes: Buffer, start: number, end: number, base: number): number {
  if (isUtf8(bytes.subarray(start, end))) return -1;
  return base + firstInvalidUtf8(bytes, start, end);
}

/** The file as a whole is not what its descriptor says: one error instead of a row error per line. */
export class FileFormatError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = 'FileFormatError';
  }
}

const CHUNK = 1 << 20;
/** A single JSON-array element (or text document) larger than this means the bracket structure is broken. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** A line longer than this is refused rather than held in memory. */
export const MAX_LINE_BYTES = 3 * MAX_RECORD_BYTES;
const mib = (bytes: number): string => `${bytes / 1024 / 1024} MiB`;

const GZIP_MAGIC = [0x1f, 0x8b];

/** Streams `path` as bytes, gunzipping `.gz`; checks the gzip magic against the name both ways. */
export function openBytes(path: string, gzip: boolean, onBytes?: (chunk: Buffer) => void): Readable {
  const file = createReadStream(path, { highWaterMark: CHUNK });
  let checked = false;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (!checked) {
        checked = true;
        const isGzip = chunk[0] === GZIP_MAGIC[0] && chunk[1] === GZIP_MAGIC[1];
        if (gzip && !isGzip) {
          done(new FileFormatError('the file name ends in .gz but the content is not gzip', 'remove the .gz suffix (in the file name and the descriptor), or gzip the file'));
          return;
        }
        if (!gzip && isGzip) {
          done(new FileFormatError('the content is gzip-compressed but the name does not end in .gz', 'rename the file to end in .gz (and update the descriptor)'));
          return;
        }
      }
      onBytes?.(chunk);
      done(null, chunk);
    },
  });
  file.on('error', (e) => tap.destroy(e));
  const tapped = file.pipe(tap);
  if (!gzip) return tapped;
  const gunzip = createGunzip({ chunkSize: CHUNK });
  tapped.on('error', (e) => gunzip.destroy(e));
  return tapped.pipe(gunzip);
}

function describeStart(text: string): string {
  const start = text.replace(/^\uFEFF/, '').trimStart();
  if (start === '') return 'the file is empty';
  if (start.includes('\u0000')) return 'the file is binary (parquet, arrow or another binary format)';
  const firstLine = start.split('\n', 1)[0]!.slice(0, 60);
  if (start[0] === '[') return `it starts like a JSON array: ${JSON.stringify(firstLine)}`;
  if (start[0] === '{') return `it starts like a JSON object: ${JSON.stringify(firstLine)}`;
  if (/^[^,\t\n]+(,[^,\n]*)+\r?\n/.test(start)) return `it looks like CSV: ${JSON.stringify(firstLine)}`;
  if (/^[^\t\n]+(\t[^\t\n]*)+\r?\n/.test(start)) return `it looks like TSV: ${JSON.stringify(firstLine)}`;
  return `it starts with ${JSON.stringify(firstLine)}`;
}

/**
 * Text is decoded in pieces of at most this many bytes: V8 puts strings over ~128 KiB in its
 * large-object space, which only a full mark-compact frees, so big decoded chunks pile up as old
 * garbage (measured: +4 MB per scavenge and a heap swinging between 45 and 90 MB).
 */
const DECODE_BYTES = 32 * 1024;

/**
 * Calls `onLine` for every line of a byte stream (without the `\n`), with the file offset of the
 * line's first byte that is not UTF-8 (-1: none; such bytes read as U+FFFD). Lines are cut on the
 * byte 0x0A, which never occurs inside a multi-byte UTF-8 character, so runs of complete lines are
 * checked and decoded with one call each (much faster than a StringDecoder per chunk).
 */
export async function forEachLine(bytes: AsyncIterable<unknown>, onLine: (line: string, badByte: number) => void): Promise<void> {
  // The unfinished line, in pieces: joined once when its end arrives, so a long line costs linear time.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** File offset of the first pending byte (or of the next piece). */
  let offset = 0;
  for await (const piece of bytes) {
    let chunk = piece as Buffer;
    const last = chunk.lastIndexOf(10);
    if (last === -1) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes > MAX_LINE_BYTES) throw new FileFormatError(`a line is longer than ${mib(MAX_LINE_BYTES)}`, 'split the data into one record per line');
      continue;
    }
    let end = last;
    if (pendingBytes > 0) {
      end += pendingBytes;
      chunk = Buffer.concat([...pending, chunk]);
    }
    pending = [];
    pendingBytes = 0;
    emitLines(chunk, end, offset, onLine);
    offset += end + 1;
    if (end + 1 < chunk.length) {
      pending = [chunk.subarray(end + 1)];
      pendingBytes = chunk.length - end - 1;
    }
  }
  if (pendingBytes > 0) {
    const rest = Buffer.concat(pending);
    onLine(rest.toString('utf8'), badByteAt(rest, 0, rest.length, offset));
  }
}

/** The lines of `chunk[0, end)`, `chunk[end]` being a line break; `base` is the file offset of `chunk[0]`. */
function emitLines(chunk: Buffer, end: number, base: number, onLine: (line: string, badByte: number) => void): void {
  // Decode in newline-aligned segments of at most DECODE_BYTES (one longer line alone).
  let pos = 0;
  while (pos <= end) {
    let segEnd = end;
    if (end - pos > DECODE_BYTES) {
      segEnd = chunk.lastIndexOf(10, pos + DECODE_BYTES);
      if (segEnd < pos) segEnd = chunk.indexOf(10, pos + DECODE_BYTES);
    }
    if (isUtf8(chunk.subarray(pos, segEnd))) {
      const text = chunk.toString('utf8', pos, segEnd);
      let start = 0;
      let nl: number;
      while ((nl = text.indexOf('\n', start)) !== -1) {
        onLine(text.slice(start, nl), -1);
        start = nl + 1;
      }
      onLine(start === 0 ? text : text.slice(start), -1);
    } else {
      // Rare: line by line, to say which lines hold the bad bytes.
      for (let lineStart = pos; ; ) {
        const lineEnd = chunk.indexOf(10, lineStart);
        const stop = lineEnd === -1 || lineEnd > segEnd ? segEnd : lineEnd;
        onLine(chunk.toString('utf8', lineStart, stop), badByteAt(chunk, lineStart, stop, base));
        if (stop >= segEnd) break;
        lineStart = stop + 1;
      }
    }
    pos = segEnd + 1;
  }
}

/** JSON Lines: one record per non-blank line. Blank lines are layout, not records. */
export async function readJsonl(bytes: Readable, onRecord: (r: RawRecord) => void): Promise<void> {
  let line = 0;
  let record = 0;
  let sniffed = false;
  await forEachLine(bytes, (text, badByte) => {
    line++;
    let end = text.length;
    if (end > 0 && text.charCodeAt(end - 1) === 13) end--;
    const raw = end === text.length ? text : text.slice(0, end);
    if (raw.length === 0 || (raw.charCodeAt(0) <= 32 && raw.trim() === '')) return;
    if (!sniffed) {
      sniffed = true;
      const first = raw.replace(/^\uFEFF/, '').trimStart();
      if (first[0] !== '{') {
        throw new FileFormatError(
          `not JSON Lines (one JSON object per line): ${describeStart(raw + '\n')}`,
          first[0] === '[' ? 'this is a JSON array: name the file .json, or write one object per line' : 'convert the file to one JSON object per line, or declare its real format in dataset.yaml',
        );
      }
    }
    record++;
    onRecord(recordOf(record, line, record === 1 ? raw.replace(/^\uFEFF/, '') : raw, badByte));
  });
  if (!sniffed) throw new FileFormatError('the file has no records (it is empty)', 'add rows, or remove the file from the descriptor');
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const EMPTY = Buffer.alloc(0);

/**
 * A top-level JSON array, split into elements by a bracket/string scanner so each element is parsed
 * on its own: memory holds one element at a time, and a broken element is quarantined without
 * losing its neighbours. The scanner reads bytes: every character it looks for is ASCII, which
 * never occurs inside a multi-byte UTF-8 character, so each element is checked for bytes that are
 * not UTF-8 and decoded on its own.
 */
export async function readJsonArray(bytes: Readable, onRecord: (r: RawRecord) => void): Promise<void> {
  // Widened on purpose: `scan` changes it, which the narrowing after the loop would not see.
  let state = 'start' as 'start' | 'between' | 'element' | 'end';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let line = 1;
  let elementLine = 1;
  /** File offset of the current element's first byte. */
  let elementStart = 0;
  let record = 0;
  let parts: Buffer[] = [];
  let partsLength = 0;
  let sawAny = false;
  /** File offset of the current chunk's first byte. */
  let offset = 0;
  /** The first bytes of the file while they could still be a cut-off byte order mark. */
  let head: Buffer | undefined;

  const finishElement = (chunk: Buffer, from: number, to: number): void => {
    const piece = chunk.subarray(from, to);
    const element = partsLength === 0 ? piece : Buffer.concat([...parts, piece]);
    parts = [];
    partsLength = 0;
    record++;
    onRecord(recordOf(record, elementLine, element.toString('utf8').trim(), badByteAt(element, 0, element.length, elementStart)));
  };
  const trailing = (chunk: Buffer, from: number): void => {
    const text = chunk.toString('utf8', from).trim();
    if (text !== '') {
      throw new FileFormatError(`unexpected text after the closing \`]\` of the array (line ${line}): ${JSON.stringify(text.slice(0, 40))}`, 'remove the trailing text; a .json file holds exactly one array');
    }
  };

  const scan = (chunk: Buffer): void => {
    let i = 0;
    let segStart = 0;
    const n = chunk.length;
    if (state === 'end') {
      trailing(chunk, 0);
      return;
    }
    if (state === 'start') {
      let j = offset === 0 && chunk.subarray(0, 3).equals(UTF8_BOM) ? 3 : 0;
      while (j < n && (chunk[j] === 32 || chunk[j] === 10 || chunk[j] === 13 || chunk[j] === 9)) {
        if (chunk[j] === 10) line++;
        j++;
      }
      if (j === n) return;
      sawAny = true;
      if (chunk[j] !== 91) {
        throw new FileFormatError(
          `not a JSON array of records: ${describeStart(chunk.toString('utf8', j, j + DECODE_BYTES))}`,
          chunk[j] === 123 ? 'if the file holds one JSON object per line, name it .jsonl; if it is one object wrapping a list, extract the list' : 'declare the real format in dataset.yaml, or convert the file to a JSON array',
        );
      }
      state = 'between';
      i = j + 1;
    }
    for (; i < n; i++) {
      const c = chunk[i]!;
      if (c === 10) line++;
      if (state === 'between') {
        if (c === 32 || c === 10 || c === 13 || c === 9 || c === 44) continue;
        if (c === 93) {
          state = 'end';
          trailing(chunk, i + 1);
          return;
        }
        state = 'element';
        elementLine = line;
        elementStart = offset + i;
        segStart = i;
        depth = 0;
        inString = false;
        escaped = false;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 92) escaped = true;
        else if (c === 34) inString = false;
        continue;
      }
      if (c === 34) inString = true;
      else if (c === 123 || c === 91) depth++;
      else if (c === 125 || c === 93) {
        if (depth === 0 && c === 93) {
          // `]` closing the top-level array right after a bare element (number, literal).
          finishElement(chunk, segStart, i);
          state = 'end';
          trailing(chunk, i + 1);
          return;
        }
        // A stray closer at the element's top level makes the element malformed (quarantined by
        // JSON.parse) but must not unbalance the split of the elements after it.
        if (depth > 0) depth--;
      } else if (c === 44 && depth === 0) {
        finishElement(chunk, segStart, i);
        state = 'between';
      }
    }
    if (state === 'element') {
      const piece = chunk.subarray(segStart);
      parts.push(piece);
      partsLength += piece.length;
      if (partsLength > MAX_RECORD_BYTES) {
        throw new FileFormatError(
          `record ${record + 1} (from line ${elementLine}) is larger than ${mib(MAX_RECORD_BYTES)}: the brackets or quotes are unbalanced from there on`,
          `check the brackets and quotes around line ${elementLine}`,
        );
      }
    }
  };

  for await (const piece of bytes) {
    let chunk = piece as Buffer;
    if (head !== undefined) {
      chunk = Buffer.concat([head, chunk]);
      head = undefined;
    }
    if (offset === 0 && state === 'start' && chunk.length < UTF8_BOM.length && UTF8_BOM.subarray(0, chunk.length).equals(chunk)) {
      head = chunk;
      continue;
    }
    scan(chunk);
    offset += chunk.length;
  }
  if (head !== undefined && head.length > 0) scan(head);
  if (!sawAny) throw new FileFormatError('the file is empty', 'add rows, or remove the file from the descriptor');
  if (state === 'element') {
    // Truncated file: the last element never closed. Quarantine what is there rather than lose it.
    finishElement(EMPTY, 0, 0);
    throw new FileFormatError(`the array is not closed: the file ends inside record ${record} (line ${elementLine})`, 'the file is truncated or has an unbalanced bracket/quote; fix it and re-run');
  }
  if (state !== 'end') throw new FileFormatError('the array is not closed: missing the final `]`', 'the file is truncated; add the closing `]` or re-export it');
}

/** Plain text corpus: documents separated by blank lines, one per line, or the whole file. */
export async function readText(bytes: Readable, separator: 'blank-line' | 'line' | 'file', onRecord: (r: RawRecord) => void): Promise<void> {
  let record = 0;
  let line = 0;
  let docLines: string[] = [];
  let docStart = 0;
  let docChars = 0;
  let docBadByte = -1;
  let sniffed = false;
  const flushDoc = (): void => {
    if (docLines.length === 0) return;
    const raw = docLines.join('\n');
    const badByte = docBadByte;
    docLines = [];
    docChars = 0;
    docBadByte = -1;
    if (raw.trim() === '') return;
    record++;
    onRecord(recordOf(record, docStart, raw, badByte));
  };
  const onLine = (text: string, badByte: number): void => {
    line++;
    let clean = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line === 1 && clean.startsWith('\uFEFF')) clean = clean.slice(1);
    if (!sniffed && clean.trim() !== '') {
      sniffed = true;
      if (clean.includes('\u0000')) throw new FileFormatError('the file is binary, not text', 'give a UTF-8 text file');
    }
    if (separator === 'line') {
      if (clean.trim() === '') return;
      record++;
      onRecord(recordOf(record, line, clean, badByte));
      return;
    }
    if (separator === 'blank-line' && clean.trim() === '') {
      flushDoc();
      return;
    }
    if (docLines.length === 0) docStart = line;
    docLines.push(clean);
    if (docBadByte === -1) docBadByte = badByte;
    // Characters: never more than the bytes, so the limit holds (cheaper than counting bytes).
    docChars += text.length;
    if (docChars > MAX_RECORD_BYTES) {
      throw new FileFormatError(`document from line ${docStart} is larger than ${mib(MAX_RECORD_BYTES)}`, "split the corpus into smaller documents (blank lines between them), or use `separator: line`");
    }
  };
  await forEachLine(bytes, onLine);
  flushDoc();
  if (!sniffed) throw new FileFormatError('the file is empty', 'add text, or remove the file from the descriptor');
}

/** A CSV/TSV row: header-keyed fields, or why it cannot be used. */
export type CsvRecord = RawRecord & {
  /** Physical lines the record spans (more than 1 when a quoted field holds line breaks). */
  readonly lines: number;
} & ({ readonly fields: Readonly<Record<string, string>> } | { readonly error: string; readonly reason: 'csv_unclosed_quote' | 'malformed_csv' });

/**
 * CSV/TSV with a header row (RFC 4180 quoting), delimited by the splitter check() uses too. A row
 * that cannot be used (wrong column count, bad quoting, a quote never closed within `limits`) is
 * handed on with its reason so it can be quarantined; a stray quote never merges the rows after it.
 */
export async function readCsv(bytes: Readable, delimiter: ',' | '\t', required: readonly string[], onRecord: (r: CsvRecord) => void, limits: CsvLimits = CSV_LIMITS): Promise<void> {
  const kind = delimiter === ',' ? 'CSV' : 'TSV';
  let header: string[] | undefined;
  let record = 0;
  const splitter = new CsvSplitter<number>(
    delimiter,
    (split) => {
      if (header === undefined) {
        const first = split.raw.trimStart();
        if (first.startsWith('{') || first.startsWith('[')) {
          throw new FileFormatError(`not ${kind}: it starts like JSON: ${JSON.stringify(first.slice(0, 60))}`, 'declare the real format in dataset.yaml (alpaca or sharegpt for JSON)');
        }
        if (split.problem) {
          throw new FileFormatError(`the header row cannot be parsed as ${kind} (${split.problem.detail}); ${describeStart(split.raw)}`, 'fix the header row (quotes must enclose whole fields)');
        }
        header = split.fields.map((h) => h.trim());
        const missing = required.filter((c) => !header!.includes(c));
        if (missing.length > 0) {
          throw new FileFormatError(
            `header row ${JSON.stringify(header.slice(0, 12))} lacks the mapped column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`,
            header.length === 1 && split.raw.includes(delimiter === ',' ? '\t' : ',')
              ? `the file seems to use ${delimiter === ',' ? 'tabs' : 'commas'}: declare \`format: ${delimiter === ',' ? 'tsv' : 'csv'}\``
              : 'fix `columns` in dataset.yaml to name headers that exist, or add the header row',
          );
        }
        return;
      }
      record++;
      const at = { record, line: split.line, raw: split.raw, lines: split.lines };
      if (split.problem) {
        onRecord({ ...at, error: split.problem.detail, reason: split.problem.reason });
        return;
      }
      if (split.fields.length !== header.length) {
        onRecord({ ...at, error: `has ${split.fields.length} fields, the header has ${header.length}`, reason: 'malformed_csv' });
        return;
      }
      // No prototype: a mapped column named `constructor` that the header lacks must read as absent.
      const fields = Object.create(null) as Record<string, string>;
      header.forEach((h, i) => {
        fields[h] = split.fields[i]!;
      });
      const badByte = split.tags.find((b) => b !== -1) ?? -1;
      onRecord(badByte === -1 ? { ...at, fields } : { ...at, fields, invalidUtf8: badByte });
    },
    limits,
  );
  let first = true;
  await forEachLine(bytes, (text, badByte) => {
    if (first) {
      first = false;
      if (text.startsWith('\uFEFF')) text = text.slice(1);
    }
    splitter.push(text, badByte);
  });
  splitter.end();
  if (header === undefined) throw new FileFormatError('the file is empty (no header row)', 'add a header row and data rows');
}

export type { FileEncoding };
