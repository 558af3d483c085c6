// The converter, fuzzed with the files a hostile or careless user hands it: every format and file
// type (alpaca and sharegpt as .jsonl and .json arrays, csv, tsv, text as .txt and .jsonl, each
// optionally gzipped), rows of the wrong shape, then the bytes themselves broken: cut short, stray
// quotes and brackets, bytes that are not UTF-8, byte order marks, CRLF, long lines and unusual
// Unicode. Whatever comes in, the converter either converts or fails with Issues, keeps
// rows_in = rows_out + rows_quarantined, writes no invalid row and no U+FFFD of its own making,
// answers the same input with the same bytes, and quarantines exactly the rows check() warns about.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { ConvertError, runConvert, type ConvertConfig } from '../../src/index.ts';
import type { DatasetDescriptor } from '../../src/descriptor.ts';
// check()'s row rules, which core does not export: the converter must agree with them.
import { rowFieldIssues } from '../../../core/src/rules/rows.ts';
import { CSV_LIMITS } from '@tunepipe/core/row-formats';

type Format = 'alpaca' | 'sharegpt' | 'csv' | 'tsv' | 'text';

export interface DatasetCase {
  readonly format: Format;
  readonly file: string;
  readonly descriptor: DatasetDescriptor;
  readonly content: Buffer;
  /** The gzip stream was cut: the file cannot be read at all. */
  readonly brokenGzip: boolean;
}

// --- values -------------------------------------------------------------------------------------

/** Text that tends to break things: quotes, separators, line breaks, placeholders, every plane of Unicode. */
const tricky = fc.constantFrom(
  '"',
  "'",
  '\\',
  ',',
  '\t',
  '\r',
  '\n',
  '\r\n',
  '{{name}}',
  '{{ author }}',
  '{{unknown}}',
  '😀',
  '中文字',
  'e\u0301',
  '\u202e',
  '\u2028',
  '\u00a0',
  '\u0000',
  '\uFEFF',
  '\uFFFD',
  '\ud800',
  '$(touch pwned)',
  '   ',
  '',
);
const text = fc.oneof(
  { weight: 12, arbitrary: fc.string({ minLength: 1, maxLength: 30 }) },
  { weight: 6, arbitrary: fc.array(fc.oneof(tricky, fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 6 }).map((p) => p.join('')) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  // Long lines within the limits: past cutoff_len, so quarantined as too_long.
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(5_000), '长'.repeat(3_000), 'word '.repeat(40_000)) },
);
const notText = fc.constantFrom<unknown>(undefined, null, 0, 42, -1.5, true, false, [], ['a'], {}, { text: 'x' });
const field = fc.oneof({ weight: 6, arbitrary: text }, { weight: 1, arbitrary: notText });
/** Names a message may give its role, valid or not (inherited property names included). */
const roleName = fc.constantFrom('human', 'gpt', 'user', 'assistant', 'system', 'observation', 'tool', 'function_call', 'bot', 'HUMAN', '', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf');

const alpacaRow = fc.oneof(
  { weight: 4, arbitrary: fc.record({ instruction: text, output: text }) },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        instruction: field,
        input: field,
        output: field,
        system: field,
        history: fc.oneof(fc.array(fc.tuple(text, text), { maxLength: 2 }), fc.array(fc.array(field, { maxLength: 3 }), { maxLength: 2 }), notText),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue() },
);

const fromValue = fc.record({ from: fc.oneof({ weight: 6, arbitrary: roleName }, { weight: 1, arbitrary: notText }), value: field }, { requiredKeys: [] });
const roleContent = fc.record({ role: fc.oneof({ weight: 6, arbitrary: roleName }, { weight: 1, arbitrary: notText }), content: fc.oneof(field, fc.array(text, { maxLength: 2 })) }, { requiredKeys: [] });
/** A well-formed exchange, so that a share of the rows is valid. */
const exchange = fc.tuple(text, text).map(([q, a]) => [
  { from: 'human', value: q },
  { from: 'gpt', value: a },
]);
const sharegptRow = fc.oneof(
  { weight: 3, arbitrary: fc.record({ conversations: exchange, system: fc.option(text, { nil: undefined }) }, { requiredKeys: ['conversations'] }) },
  { weight: 3, arbitrary: fc.record({ conversations: fc.array(fc.oneof({ weight: 4, arbitrary: fromValue }, { weight: 1, arbitrary: fc.jsonValue() }), { maxLength: 5 }), system: field, tools: field }, { requiredKeys: ['conversations'] }) },
  { weight: 2, arbitrary: fc.record({ messages: fc.array(roleContent, { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);
const textRow = fc.oneof({ weight: 4, arbitrary: fc.record({ text }) }, { weight: 1, arbitrary: fc.record({ text: field }, { requiredKeys: [] }) }, { weight: 1, arbitrary: fc.jsonValue() });

/** A few valid, distinct rows first, so that most files still convert after the damage. */
const anchors: Record<'alpaca' | 'sharegpt' | 'text', unknown[]> = {
  alpaca: [1, 2, 3, 4].map((i) => ({ instruction: `Anchor question ${i}?`, output: `Anchor answer ${i}.` })),
  sharegpt: [1, 2, 3, 4].map((i) => ({ conversations: [{ from: 'human', value: `Anchor ${i}?` }, { from: 'gpt', value: `Reply ${i}.` }] })),
  text: [1, 2, 3, 4].map((i) => ({ text: `Anchor document ${i}.` })),
};

/** JSON text of a row, occasionally hand-broken (a missing quote or brace). */
const serialized = (row: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 8, arbitrary: row.map((r) => JSON.stringify(r) ?? 'undefined') },
    { weight: 1, arbitrary: fc.constantFrom('{"instruction": "cut off", "output": "', '{"conversations": [ }', '{]', '}{', '"just a string"', '42', 'null', '{"a": 1,}', "{'single': 'quotes'}") },
  );

const csvCell = fc.oneof({ weight: 4, arbitrary: text }, { weight: 1, arbitrary: fc.constantFrom('"unclosed', 'mid"quote', '"a""b"', '""', '"x",y') });
/** CSV text: cells quoted as a spreadsheet would, or left raw (and broken). */
function csvLine(cells: readonly string[], delimiter: string, quoteAll: boolean): string {
  return cells.map((c) => (quoteAll || /[",\t\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(delimiter);
}

// --- files --------------------------------------------------------------------------------------

const jsonFile = (format: 'alpaca' | 'sharegpt' | 'text', row: fc.Arbitrary<unknown>) =>
  fc.record({ rows: fc.array(serialized(row), { maxLength: 16, size: 'max' }), array: format === 'text' ? fc.constant(false) : fc.boolean(), minified: fc.boolean() }).map(({ rows, array, minified }) => {
    const all = [...anchors[format].map((r) => JSON.stringify(r)), ...rows];
    const content = array ? (minified ? `[${all.join(',')}]` : `[\n  ${all.join(',\n  ')}\n]\n`) : `${all.join('\n')}\n`;
    const descriptor = { format, license: 'MIT', files: [array ? 'data.json' : 'data.jsonl'] } as DatasetDescriptor;
    return { format: format as Format, file: array ? 'data.json' : 'data.jsonl', descriptor, text: content };
  });

/**
 * A `"` put at the start of one field of one line (a fraction of the way into the data lines): a
 * stray quote that opens a field. Sometimes a second stray quote ends a line `close` lines later,
 * which closes that field cleanly: read as written, everything between is one record.
 */
const strayQuote = fc.record({
  // Early more often, so that a closing quote far after it still falls in the file.
  line: fc.noBias(fc.integer({ min: 0, max: 1_000_000 })).map((n) => (n / 1_000_000) ** 2),
  field: fc.nat({ max: 3 }),
  close: fc.option(fc.noBias(fc.integer({ min: 1, max: 120 })), { nil: undefined }),
});

const tableFile = (format: 'csv' | 'tsv') =>
  fc
    .record({
      rows: fc.array(fc.array(csvCell, { minLength: 1, maxLength: 4 }), { maxLength: 16, size: 'max' }),
      withInput: fc.boolean(),
      quoteAll: fc.boolean(),
      // Plain rows after the others, sometimes more than CSV_LIMITS.maxLines: what a stray quote would swallow.
      padding: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.noBias(fc.integer({ min: 70, max: 200 })) }),
      strayQuotes: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: strayQuote.map((q) => [q]) }, { weight: 1, arbitrary: fc.array(strayQuote, { minLength: 2, maxLength: 3 }) }),
    })
    .map(({ rows, withInput, quoteAll, padding, strayQuotes }) => {
      const delimiter = format === 'csv' ? ',' : '\t';
      const header = withInput ? ['question', 'answer', 'context'] : ['question', 'answer'];
      const good = [1, 2, 3, 4].map((i) => [`Anchor question ${i}?`, `Anchor answer ${i}.`, ...(withInput ? [''] : [])]);
      const padded = Array.from({ length: padding }, (_, i) => [`Padding question ${i}?`, `Padding answer ${i}.`, ...(withInput ? [`context ${i}`] : [])]);
      const lines = [header, ...good, ...rows, ...padded].map((cells) => csvLine(cells, delimiter, quoteAll));
      for (const q of strayQuotes) {
        // In the padding when there is some: the plain rows a stray quote can swallow the most of.
        const from = padding > 0 ? lines.length - padding : 1;
        const k = from + Math.min(lines.length - from - 1, Math.floor(q.line * (lines.length - from)));
        const starts = [0, ...[...lines[k]!].flatMap((ch, i) => (ch === delimiter ? [i + 1] : []))];
        const cut = starts[Math.min(q.field, starts.length - 1)]!;
        lines[k] = `${lines[k]!.slice(0, cut)}"${lines[k]!.slice(cut)}`;
        if (q.close !== undefined && k + q.close < lines.length) lines[k + q.close] += '"';
      }
      const file = `data.${format}`;
      const descriptor = { format, license: 'MIT', files: [file], columns: { instruction: 'question', output: 'answer', ...(withInput ? { input: 'context' } : {}) } } as DatasetDescriptor;
      return { format: format as Format, file, descriptor, text: `${lines.join('\n')}\n` };
    });

const txtFile = fc
  .record({ docs: fc.array(text, { maxLength: 16, size: 'max' }), separator: fc.constantFrom('blank-line', 'line', 'file', undefined) })
  .map(({ docs, separator }) => {
    const all = ['Anchor document one.', 'Anchor document two.', 'Anchor document three.', 'Anchor document four.', ...docs];
    const joint = separator === 'line' ? '\n' : '\n\n';
    const descriptor = { format: 'text', license: 'MIT', files: ['data.txt'], ...(separator ? { separator } : {}) } as DatasetDescriptor;
    return { format: 'text' as Format, file: 'data.txt', descriptor, text: `${all.join(joint)}\n` };
  });

/** Byte sequences that are not UTF-8: stray continuation bytes, overlongs, surrogates, cut sequences, beyond U+10FFFF. */
const badBytes = fc.constantFrom([0xff], [0xfe], [0x80], [0xbf, 0xbf], [0xc0, 0xaf], [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe9]);
type Damage =
  | { kind: 'invalid'; at: number; bytes: readonly number[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'bom'; bytes: readonly number[] }
  | { kind: 'crlf' };
/** Where in the file: uniform (fast-check's bias towards 0 would break mostly the first bytes). */
const at = fc.noBias(fc.integer({ min: 0, max: 1_000_000 })).map((n) => n / 1_000_000);
const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('invalid' as const), at, bytes: badBytes }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at, text: fc.constantFrom('"', '{', '}', '[', ']', ',', '\n', '\\', '\t', '\u0000') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bom' as const), bytes: fc.constantFrom([0xef, 0xbb, 0xbf], [0xff, 0xfe], [0xfe, 0xff]) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'crlf' as const }) },
);

function applyDamage(content: Buffer, damages: readonly Damage[]): Buffer {
  let out = content;
  for (const d of damages) {
    const index = (f: number) => Math.min(out.length, Math.floor(f * out.length));
    switch (d.kind) {
      case 'invalid':
        out = Buffer.concat([out.subarray(0, index(d.at)), Buffer.from(d.bytes), out.subarray(index(d.at))]);
        break;
      case 'truncate':
        out = out.subarray(0, index(d.at));
        break;
      case 'insert':
        out = Buffer.concat([out.subarray(0, index(d.at)), Buffer.from(d.text), out.subarray(index(d.at))]);
        break;
      case 'bom':
        out = Buffer.concat([Buffer.from(d.bytes), out]);
        break;
      case 'crlf':
        out = Buffer.from(out.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
        break;
    }
  }
  return out;
}

export const datasetCase: fc.Arbitrary<DatasetCase> = fc
  .record({
    file: fc.oneof(
      jsonFile('alpaca', alpacaRow),
      jsonFile('sharegpt', sharegptRow),
      jsonFile('text', textRow),
      tableFile('csv'),
      tableFile('tsv'),
      txtFile,
    ),
    damages: fc.oneof({ weight: 1, arbitrary: fc.constant([] as Damage[]) }, { weight: 3, arbitrary: fc.array(damage, { minLength: 1, maxLength: 3 }) }),
    gzip: fc.oneof({ weight: 4, arbitrary: fc.constant('no' as const) }, { weight: 1, arbitrary: fc.constant('yes' as const) }, { weight: 1, arbitrary: fc.constant('cut' as const) }),
    replace: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  })
  .map(({ file, damages, gzip, replace }) => {
    let content = applyDamage(Buffer.from(file.text), damages);
    let name = file.file;
    if (gzip !== 'no') {
      content = gzipSync(content);
      if (gzip === 'cut') content = content.subarray(0, Math.max(2, content.length - 6));
      name = `${name}.gz`;
    }
    const descriptor = { ...file.descriptor, files: [name], ...(replace ? { encoding: { invalid: 'replace' } } : {}) } as DatasetDescriptor;
    return { format: file.format, file: name, descriptor, content, brokenGzip: gzip === 'cut' };
  });

// --- the rules a written row must satisfy, stated independently of the converter ---------------

const nonBlank = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
const keysWithin = (row: Record<string, unknown>, allowed: readonly string[]) => Object.keys(row).every((k) => allowed.includes(k));

/** Why a written row would not load in LLaMA-Factory as the format its dataset_info entry declares, or undefined. */
export function invalidOutputRow(format: Format, row: unknown): string | undefined {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return 'not an object';
  const r = row as Record<string, unknown>;
  switch (format) {
    case 'alpaca':
    case 'csv':
    case 'tsv': {
      if (!keysWithin(r, ['instruction', 'input', 'output', 'system', 'history'])) return `unexpected keys ${Object.keys(r).join(',')}`;
      if (!nonBlank(r['instruction']) || !nonBlank(r['output'])) return 'instruction/output not non-blank text';
      if (typeof r['input'] !== 'string') return 'input not text';
      if ('system' in r && typeof r['system'] !== 'string') return 'system not text';
      if ('history' in r && (!Array.isArray(r['history']) || !r['history'].every((p) => Array.isArray(p) && p.length === 2 && nonBlank(p[0]) && nonBlank(p[1])))) return 'history not pairs of text';
      return undefined;
    }
    case 'sharegpt': {
      if (!keysWithin(r, ['conversations', 'system', 'tools'])) return `unexpected keys ${Object.keys(r).join(',')}`;
      const turns = r['conversations'];
      if (!Array.isArray(turns) || turns.length === 0 || turns.length % 2 !== 0) return 'conversations not an even, non-empty list';
      for (let i = 0; i < turns.length; i++) {
        const t = turns[i] as Record<string, unknown> | null;
        if (t === null || typeof t !== 'object' || Array.isArray(t) || !keysWithin(t, ['from', 'value'])) return `turn ${i} not {from, value}`;
        if (typeof t['from'] !== 'string') return `turn ${i} has no role`;
        const expected = i % 2 === 0 ? ['human', 'observation'] : ['gpt', 'function_call'];
        if (!expected.includes(t['from'])) return `turn ${i} is '${t['from']}'`;
        if (!nonBlank(t['value'])) return `turn ${i} has no text`;
      }
      if ('system' in r && typeof r['system'] !== 'string') return 'system not text';
      if ('tools' in r && typeof r['tools'] !== 'string') return 'tools not text';
      return undefined;
    }
    case 'text':
      return keysWithin(r, ['text']) && nonBlank(r['text']) ? undefined : 'text not non-blank text';
  }
}

// --- running it ---------------------------------------------------------------------------------

const SOURCE = 'fuzz';
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
/** Quarantine reasons that say a row is broken (the others: a valid row not taken). */
const NOT_BROKEN = new Set(['duplicate', 'too_long', 'max_samples']);

interface Outcome {
  readonly failed?: readonly { code: string; message: string }[];
  /** Every output file's bytes, by name. */
  readonly files: ReadonlyMap<string, Buffer>;
  readonly rowsIn: number;
  readonly rowsOut: number;
  readonly quarantined: number;
}

async function convertOnce(root: string, c: DatasetCase, outDir: string, config: ConvertConfig): Promise<Outcome> {
  await rm(outDir, { recursive: true, force: true });
  try {
    const result = await runConvert(config, { inputsDir: join(root, 'datasets'), outDir });
    const files = new Map<string, Buffer>();
    for (const name of (await readdir(outDir)).sort()) files.set(name, await readFile(join(outDir, name)));
    return { files, rowsIn: result.rows_in, rowsOut: result.rows_out, quarantined: result.rows_quarantined };
  } catch (error) {
    if (!(error instanceof ConvertError)) throw error;
    for (const issue of error.issues) {
      if (typeof issue.code !== 'string' || typeof issue.message !== 'string' || /\n\s+at /.test(issue.message)) throw new Error(`an issue without code/message or with a stack: ${JSON.stringify(issue)}`);
    }
    return { failed: error.issues.map((i) => ({ code: i.code ?? '', message: i.message })), files: new Map(), rowsIn: 0, rowsOut: 0, quarantined: 0 };
  }
}

/** U+FFFD that the input itself holds: as UTF-8 bytes, or as a JSON escape. */
function genuineReplacementChars(input: Buffer): number {
  let n = 0;
  for (let i = input.indexOf('\uFFFD'); i !== -1; i = input.indexOf('\uFFFD', i + 1)) n++;
  return n + (input.toString('latin1').match(/\\u[fF]{3}[dD]/g)?.length ?? 0);
}
const countFFFD = (text: string) => text.split('\uFFFD').length - 1;

export interface ConverterFuzzStats {
  inputs: number;
  runs: number;
  crashes: number;
  rowsIn: number;
  rowsOut: number;
  rowsQuarantined: number;
  reasons: Record<string, number>;
  failedWith: Record<string, number>;
  invalidRowsOut: number;
  replacementCharsIntroduced: number;
  nondeterministic: number;
  disagreementsWithCheck: number;
  /** CSV/TSV records (written out or quarantined) spanning more physical lines than CSV_LIMITS allows. */
  mergedRecords: number;
  /** The most physical lines one CSV/TSV record written out spans. */
  longestRecordOut: number;
  byFormat: Record<string, number>;
}

/** Runs the converter fuzzer; throws (with fast-check's counterexample) on the first violation. */
export async function fuzzConverter(root: string, runs: number, seed?: number): Promise<ConverterFuzzStats> {
  const stats: ConverterFuzzStats = {
    inputs: 0,
    runs: 0,
    crashes: 0,
    rowsIn: 0,
    rowsOut: 0,
    rowsQuarantined: 0,
    reasons: {},
    failedWith: {},
    invalidRowsOut: 0,
    replacementCharsIntroduced: 0,
    nondeterministic: 0,
    disagreementsWithCheck: 0,
    mergedRecords: 0,
    longestRecordOut: 0,
    byFormat: {},
  };
  const dir = join(root, 'datasets', SOURCE);
  await mkdir(dir, { recursive: true });
  const property = fc.asyncProperty(datasetCase, fc.constantFrom({ validation: 0, test: 0 }, { validation: 0.2, test: 0.2 }, { validation: 1, test: 1 }), fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }), async (c, split, maxSamples) => {
    stats.inputs++;
    stats.byFormat[`${c.format} ${c.file.replace(/^data/, '')}`] = (stats.byFormat[`${c.format} ${c.file.replace(/^data/, '')}`] ?? 0) + 1;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, c.file), c.content);
    const config: ConvertConfig = {
      pipeline: 'fuzz',
      sources: [{ name: SOURCE, descriptor: c.descriptor, files: [{ path: c.file, sha256: sha256(c.content), size: c.content.length }] }],
      templateVars: { name: 'Ada', author: 'Lovelace' },
      seed: 7,
      split,
      cutoffLen: 1024,
      ...(maxSamples !== undefined ? { maxSamples } : {}),
    };
    let first: Outcome;
    let second: Outcome;
    try {
      first = await convertOnce(root, c, join(root, 'out-a'), config);
      second = await convertOnce(root, c, join(root, 'out-b'), config);
    } catch (error) {
      stats.crashes++;
      throw error;
    } finally {
      stats.runs += 2;
    }

    // Deterministic: the same input gives the same bytes (or the same Issues).
    const same = JSON.stringify(first.failed) === JSON.stringify(second.failed) && first.files.size === second.files.size && [...first.files].every(([name, bytes]) => second.files.get(name)?.equals(bytes));
    if (!same) {
      stats.nondeterministic++;
      throw new Error('two runs on the same input differ');
    }
    const issues = rowFieldIssues(SOURCE, { name: SOURCE, digest: 'd', descriptor: c.descriptor as never, files: [{ path: c.file, sha256: sha256(c.content), size: c.content.length, gzipBase64: gzipSync(c.content).toString('base64') }] }, 'fuzz');

    if (first.failed) {
      for (const f of first.failed) stats.failedWith[f.code] = (stats.failedWith[f.code] ?? 0) + 1;
      // A file the converter cannot read at all is an error of check() too (a cut gzip stream is
      // the Job's to report: check() does not read what it cannot unpack).
      if (first.failed.some((f) => f.code === 'convert.file-format') && !c.brokenGzip && !issues.some((i) => (i.severity ?? 'error') === 'error')) {
        stats.disagreementsWithCheck++;
        throw new Error(`the converter refuses the file (${first.failed.map((f) => f.message).join('; ')}) but check() has no error`);
      }
      return;
    }

    // Conservation, and every quarantined row kept with its reason.
    stats.rowsIn += first.rowsIn;
    stats.rowsOut += first.rowsOut;
    stats.rowsQuarantined += first.quarantined;
    if (first.rowsIn !== first.rowsOut + first.quarantined) throw new Error(`rows_in ${first.rowsIn} ≠ ${first.rowsOut} + ${first.quarantined}`);
    const quarantine = first.files.get('quarantine.jsonl')!.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { reason: string; line: number; raw?: string });
    if (quarantine.length !== first.quarantined) throw new Error(`quarantine.jsonl has ${quarantine.length} rows, the summary ${first.quarantined}`);
    const table = c.format === 'csv' || c.format === 'tsv';
    for (const q of quarantine) {
      if (typeof q.reason !== 'string' || q.reason === '') throw new Error('a quarantined row without its reason');
      stats.reasons[q.reason] = (stats.reasons[q.reason] ?? 0) + 1;
      // A quarantined record is one record too: a stray quote never makes it swallow the file.
      if (table && q.raw !== undefined && q.raw.split('\n').length > CSV_LIMITS.maxLines) {
        stats.mergedRecords++;
        throw new Error(`a quarantined record spanning ${q.raw.split('\n').length} lines (more than ${CSV_LIMITS.maxLines}) from line ${q.line}`);
      }
    }

    // No invalid row out, and no U+FFFD the input did not hold.
    let written = 0;
    let replacementChars = 0;
    for (const name of [`${SOURCE}.jsonl`, `${SOURCE}.validation.jsonl`, `${SOURCE}.test.jsonl`]) {
      const textOut = first.files.get(name)!.toString('utf8');
      replacementChars += countFFFD(textOut);
      for (const line of textOut.split('\n').filter(Boolean)) {
        written++;
        const row = JSON.parse(line) as Record<string, unknown>;
        const why = invalidOutputRow(c.format, row);
        if (why !== undefined) {
          stats.invalidRowsOut++;
          throw new Error(`an invalid row in ${name} (${why}): ${line.slice(0, 300)}`);
        }
        // Every column of a fuzzed table is mapped, and each physical line break inside a record
        // is a quoted `\n` kept in a cell: the breaks in a row count the lines its record spans.
        if (table) {
          const spans = 1 + Object.values(row).reduce<number>((n, v) => n + (typeof v === 'string' ? v.split('\n').length - 1 : 0), 0);
          stats.longestRecordOut = Math.max(stats.longestRecordOut, spans);
          if (spans > CSV_LIMITS.maxLines) {
            stats.mergedRecords++;
            throw new Error(`a record spanning ${spans} lines (more than ${CSV_LIMITS.maxLines}) in ${name}: ${line.slice(0, 300)}`);
          }
        }
      }
    }
    if (written !== first.rowsOut) throw new Error(`the splits hold ${written} rows, rows_out says ${first.rowsOut}`);
    const keptReplacement = c.descriptor.encoding?.invalid === 'replace';
    if (!keptReplacement && replacementChars > genuineReplacementChars(c.content.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])) ? gunzip(c.content) : c.content)) {
      stats.replacementCharsIntroduced++;
      throw new Error(`${replacementChars} U+FFFD in the training data that the input did not hold`);
    }

    // The rows the converter quarantines as broken are the rows check() warns about.
    {
      const broken = quarantine.filter((q) => !NOT_BROKEN.has(q.reason)).map((q) => q.line).sort((a, b) => a - b);
      const warned = issues.filter((i) => i.severity === 'warning' && /:\d+$/.test(String(i.value))).map((i) => Number(/:(\d+)$/.exec(String(i.value))![1]));
      const more = issues.map((i) => /\((\d+) of \d+ in all\)/.exec(i.message)).find(Boolean);
      const errors = issues.filter((i) => (i.severity ?? 'error') === 'error');
      const agree = errors.length === 0 && (more ? Number(more[1]) === broken.length && JSON.stringify(warned) === JSON.stringify(broken.slice(0, warned.length)) : JSON.stringify(warned.sort((a, b) => a - b)) === JSON.stringify(broken));
      if (!agree) {
        stats.disagreementsWithCheck++;
        throw new Error(`the converter quarantined rows at lines [${broken.join(', ')}] as broken; check() says ${JSON.stringify(issues.map((i) => `${i.severity ?? 'error'} ${i.value}: ${i.message}`))}`);
      }
    }
  });
  await fc.assert(property, { numRuns: runs, includeErrorInReport: true, ...(seed !== undefined ? { seed } : {}) });
  return stats;
}

function gunzip(content: Buffer): Buffer {
  try {
    return gunzipSync(content);
  } catch {
    return Buffer.alloc(0);
  }
}
