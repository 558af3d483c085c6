import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ConvertConfig, ConvertSource } from './config.ts';
import { DedupeTable, hash96, mixSeed, shuffleKey } from './dedupe.ts';
import { invalidUtf8Policy } from '@tunepipe/core/row-formats';
import { CLUSTER_INPUTS, deliveredPath, fetchedPath, publishFolder, workDirOf, type CompletionMarker, type StageIdentity } from '@tunepipe/core';
import { descriptorFiles, fileEncoding } from './descriptor.ts';
import { ConvertError, type Issue } from './issues.ts';
import { FileFormatError, forEachLine, readCsv, readJsonArray, readJsonl, readText, type CsvRecord, type RawRecord } from './readers.ts';
import {
  alpacaColumns,
  DEFAULT_ALPACA_COLUMNS,
  HAS_HISTORY,
  HAS_SYSTEM,
  HAS_TOOLS,
  makeFill,
  normalizeAlpaca,
  normalizeSharegpt,
  normalizeText,
  QUARANTINE_REASONS,
  sharegptColumns,
  type QuarantineReason,
  type RowResult,
} from './rows.ts';
import { canonicalJson } from './sources.ts';
import { GrowableU32, GrowableU8, LineSink } from './sink.ts';
import { lowerTokens, TOKEN_ESTIMATE, upperTokens } from './tokens.ts';

/**
 * Where input files are found:
 * - `repo`: `<inputsDir>/<source>/<file>` (a checkout's `datasets/`; remote files must have been
 *   downloaded there);
 * - `cluster`: ConfigMap-delivered files at `<inputsDir>/<source>/<file>.gz` (gzip of the file)
 *   and fetched remote files at `<inputsDir>/.remote/<source>/<file>` (see core's delivery.ts).
 */
export type InputLayout = 'repo' | 'cluster';

/**
 * Where the output goes. Exactly one publisher writes SHA256SUMS and the completion marker:
 * - `outDir` (standalone use): the files are written to `<outDir>.partial`, which is then published
 *   to `outDir` with core's artifact implementation;
 * - `workDir` (under the stage wrapper or the local runner): the files are only written, into
 *   `workDir` (an empty folder the caller owns); the caller publishes it.
 */
export type ConvertOutput =
  | {
      readonly outDir: string;
      /** Identity written into the marker. @default { stage: 'convert', hash: sha256 of the canonical config } */
      readonly stage?: StageIdentity;
      readonly workDir?: undefined;
    }
  | { readonly workDir: string; readonly outDir?: undefined; readonly stage?: undefined };

export type RunConvertOptions = ConvertOutput & {
  readonly inputsDir: string;
  /** @default 'repo' */
  readonly layout?: InputLayout;
  /** Progress and summary lines. @default no output */
  readonly log?: (line: string) => void;
};

export type SplitName = 'train' | 'validation' | 'test';

export interface SourceSummary {
  readonly name: string;
  readonly format: string;
  readonly rows_in: number;
  readonly rows_out: number;
  readonly rows_quarantined: number;
  readonly reasons: Partial<Record<QuarantineReason, number>>;
  readonly splits: Record<SplitName, number>;
  readonly files: readonly { path: string; sha256: string; rows_in: number }[];
  /** CSV/TSV sources: records (each one of rows_in) whose quoted fields hold line breaks. */
  readonly csv_multiline_records?: number;
  /** CSV/TSV sources: the physical lines those records span. */
  readonly csv_multiline_lines?: number;
}

export interface ConvertResult {
  /** The folder holding the output: `outDir` once published, or the caller's `workDir`. */
  readonly dir: string;
  readonly rows_in: number;
  readonly rows_out: number;
  readonly rows_quarantined: number;
  readonly sources: readonly SourceSummary[];
  readonly calibration?: { readonly source: string; readonly qualifying: number; readonly written: number };
  /** Output files (relative to outDir) with their sha256. */
  readonly files: Readonly<Record<string, { sha256: string; bytes: number; rows: number }>>;
  /** Present when convert published the folder itself (`outDir`). */
  readonly marker?: CompletionMarker;
}

const SPLIT_CODE = { train: 0, validation: 1, test: 2, unsampled: 3 } as const;

/** Seeded PRNG (mulberry32): small, fast and identical on every platform. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Row indices ordered by their 32-bit keys (ties by index): an LSD radix sort in two 16-bit
 * passes, O(n) with two index arrays and no per-row heap objects.
 */
export function sortByKey(keys: Uint32Array, n: number): Uint32Array {
  let from = new Uint32Array(n);
  let to = new Uint32Array(n);
  for (let i = 0; i < n; i++) from[i] = i;
  const counts = new Uint32Array(65537);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((keys[from[i]!]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 1; b <= 65536; b++) counts[b]! += counts[b - 1]!;
    for (let i = 0; i < n; i++) {
      const idx = from[i]!;
      to[counts[(keys[idx]! >>> shift) & 0xffff]!++] = idx;
    }
    [from, to] = [to, from];
  }
  return from;
}

/** Fraction of `n` (rounded up, as Hugging Face's train_test_split does) or a row count. */
export function splitCount(size: number, n: number): number {
  return size >= 1 ? Math.min(Math.floor(size), n) : Math.ceil(size * n);
}

/** The calibration pool: reservoir of qualifying rows (bounded), plus the top estimates for advice. */
class CalibrationPool {
  qualifying = 0;
  private seen = 0;
  readonly items: { order: number; text: string }[] = [];
  private readonly heap: number[] = [];
  private readonly random: () => number;
  constructor(
    readonly nsamples: number,
    readonly maxlen: number,
    readonly capacity: number,
    seed: number,
  ) {
    this.random = prng(seed ^ 0x9e3779b9);
  }
  /** Tracks the `nsamples` largest estimates: the smallest of them is the largest workable maxlen. */
  private note(estimate: number): void {
    const h = this.heap;
    if (h.length < this.nsamples) {
      h.push(estimate);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (h[p]! <= h[i]!) break;
        [h[p], h[i]] = [h[i]!, h[p]!];
        i = p;
      }
    } else if (estimate > h[0]!) {
      h[0] = estimate;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]! < h[m]!) m = l;
        if (r < h.length && h[r]! < h[m]!) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
  }
  offer(estimate: number, text: () => string): void {
    this.note(estimate);
    if (estimate <= this.maxlen) return;
    this.qualifying++;
    const order = this.seen++;
    if (this.items.length < this.capacity) this.items.push({ order, text: text() });
    else {
      const j = Math.floor(this.random() * (order + 1));
      if (j < this.capacity) this.items[j] = { order, text: text() };
    }
  }
  /** Largest maxlen at which `nsamples` rows would qualify (0 when there are fewer rows than that). */
  workableMaxlen(): number {
    return this.heap.length < this.nsamples ? 0 : Math.max(0, this.heap[0]! - 1);
  }
}

function bytesOf(
  path: string,
  opts: { wrapped: boolean; gzip: boolean; onOriginal: (chunk: Buffer) => void },
): Readable {
  const file = createReadStream(path, { highWaterMark: 1 << 18 });
  let original: Readable = file;
  if (opts.wrapped) {
    const unwrap = createGunzip({ chunkSize: 1 << 18 });
    file.on('error', (e) => unwrap.destroy(e));
    original = file.pipe(unwrap);
  }
  let checked = false;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (!checked && chunk.length > 0) {
        checked = true;
        const isGzip = chunk[0] === 0x1f && chunk[1] === 0x8b;
        if (opts.gzip && !isGzip) return done(new FileFormatError('the file name ends in .gz but the content is not gzip', 'remove the .gz suffix (file and descriptor), or gzip the file'));
        if (!opts.gzip && isGzip) return done(new FileFormatError('the content is gzip-compressed but the name does not end in .gz', 'rename the file to end in .gz (and update the descriptor)'));
      }
      opts.onOriginal(chunk);
      done(null, chunk);
    },
  });
  original.on('error', (e) => tap.destroy(e));
  const tapped = original.pipe(tap);
  if (!opts.gzip) return tapped;
  const gunzip = createGunzip({ chunkSize: 1 << 18 });
  tapped.on('error', (e) => gunzip.destroy(e));
  return tapped.pipe(gunzip);
}

/** LLaMA-Factory `dataset_info.json` entry for one output file of a source. */
export function datasetInfoEntry(format: ConvertSource['descriptor']['format'], fileName: string, optional: number): Record<string, unknown> {
  switch (format) {
    case 'alpaca':
    case 'csv':
    case 'tsv':
      return {
        file_name: fileName,
        formatting: 'alpaca',
        columns: {
          prompt: 'instruction',
          query: 'input',
          response: 'output',
          ...(optional & HAS_SYSTEM ? { system: 'system' } : {}),
          ...(optional & HAS_HISTORY ? { history: 'history' } : {}),
        },
      };
    case 'sharegpt':
      return {
        file_name: fileName,
        formatting: 'sharegpt',
        columns: {
          messages: 'conversations',
          ...(optional & HAS_SYSTEM ? { system: 'system' } : {}),
          ...(optional & HAS_TOOLS ? { tools: 'tools' } : {}),
        },
        tags: {
          role_tag: 'from',
          content_tag: 'value',
          user_tag: 'human',
          assistant_tag: 'gpt',
          observation_tag: 'observation',
          function_tag: 'function_call',
          system_tag: 'system',
        },
      };
    case 'text':
      return { file_name: fileName, formatting: 'alpaca', columns: { prompt: 'text' } };
  }
}

/** Pads a row with the optional columns its source uses but it lacks, so every row has the same keys. */
function padLine(line: string, rowFlags: number, sourceFlags: number): string {
  const missing = sourceFlags & ~rowFlags;
  if (missing === 0) return line;
  let extra = '';
  if (missing & HAS_SYSTEM) extra += ',"system":""';
  if (missing & HAS_HISTORY) extra += ',"history":[]';
  if (missing & HAS_TOOLS) extra += ',"tools":""';
  return `${line.slice(0, -1)}${extra}}`;
}

function inputLocation(layout: InputLayout, inputsDir: string, source: string, file: string, remote: boolean): { path: string; wrapped: boolean } {
  if (layout === 'repo') return { path: join(inputsDir, source, file), wrapped: false };
  if (remote) return { path: join(inputsDir, fetchedPath(source, file)), wrapped: false };
  return { path: join(inputsDir, deliveredPath(source, file)), wrapped: true };
}

/**
 * Converts the configured sources into LLaMA-Factory datasets in `outDir`:
 * `<S>.jsonl`, `<S>.validation.jsonl`, `<S>.test.jsonl` per source, `calibration.jsonl` when
 * configured, `dataset_info.json`, `quarantine.jsonl`, `manifest.json`; with `outDir`, then
 * publishes the folder (rename, `SHA256SUMS`, `.tunepipe-complete`).
 *
 * Memory: pass 1 streams every file once, writing valid rows to a spool file and keeping per row
 * only a 32-bit shuffle key, a flags byte and a row id, plus the 96-bit dedupe table and where each
 * row came from: 50–90 bytes per row (about 60 MB for a million rows), never the rows themselves. The split is decided on those
 * keys (rows ordered by a seeded hash of their content, so the split does not depend on input
 * order and a row's split survives edits to other rows); pass 2 streams the spool once into the
 * split files, keeping input order inside each split (LLaMA-Factory shuffles training batches
 * itself). The calibration set is a seeded reservoir of at most max(4 × nsamples, 64) qualifying
 * rows, drawn from every structurally valid, non-duplicate row of the calibration source(s), including rows
 * too long for training (calibration windows are cut to maxlen anyway).
 */
export async function runConvert(config: ConvertConfig, options: RunConvertOptions): Promise<ConvertResult> {
  const log = options.log ?? (() => {});
  const layout = options.layout ?? 'repo';
  const standalone = options.outDir !== undefined;
  const partial = options.workDir ?? workDirOf(options.outDir);
  if (standalone) await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const issues: Issue[] = [];
  const openSinks: LineSink[] = [];
  const sink = (name: string): LineSink => {
    const s = new LineSink(join(partial, name));
    openSinks.push(s);
    return s;
  };
  try {
    const quarantine = sink('quarantine.jsonl');
    const outputs: Record<string, { sha256: string; bytes: number; rows: number }> = {};
    const closeSink = (s: LineSink, name: string): void => {
      const sha256 = s.close();
      outputs[name] = { sha256, bytes: s.bytes, rows: s.rows };
    };
    const dedupe = new DedupeTable(1 << 14);
    // Where each first-seen row came from, by row id (for "duplicate of …" and max_samples entries).
    const idFile = new GrowableU32();
    const idRecord = new GrowableU32();
    const idLine = new GrowableU32();
    const fileNames: string[] = [];
    const h = new Uint32Array(3);
    const calibration = config.calibration;
    const pool = calibration ? new CalibrationPool(calibration.nsamples, calibration.maxlen, Math.max(4 * calibration.nsamples, 64), config.seed) : undefined;
    const summaries: SourceSummary[] = [];
    const datasetInfo: Record<string, unknown> = {};
    const manifestSources: Record<string, unknown> = {};
    let totalIn = 0;
    let totalOut = 0;
    let totalQuarantined = 0;

    for (const source of config.sources) {
      const { descriptor } = source;
      const format = descriptor.format;
      const fill = makeFill(config.templateVars, descriptor.placeholders ?? true);
      const wantText = pool !== undefined && (calibration?.source === undefined || calibration.source === source.name);
      const alpacaCols = alpacaColumns(descriptor);
      const sharegptCols = sharegptColumns(descriptor);
      const textField = format === 'text' ? (descriptor.columns?.text ?? 'text') : undefined;
      const keepInvalidUtf8 = invalidUtf8Policy(descriptor) === 'replace';
      const spoolName = `.spool-${source.name}.jsonl`;
      const spool = sink(spoolName);
      const keys = new GrowableU32();
      const flags = new GrowableU8();
      const ids = new GrowableU32();
      const seedMix = mixSeed(config.seed, source.name);
      const reasons: Partial<Record<QuarantineReason, number>> = {};
      let sourceFlags = 0;
      let rowsIn = 0;
      let quarantined = 0;
      /** CSV/TSV records whose quoted fields hold line breaks, and the physical lines they span. */
      const csvMultiline = { records: 0, lines: 0 };
      const fileStats: { path: string; sha256: string; rows_in: number }[] = [];
      const issuesBeforeSource = issues.length;
      const remoteByPath = new Map(descriptorFiles(descriptor).map((f) => [f.path, f.url !== undefined]));

      for (const file of source.files) {
        const fileIndex = fileNames.length;
        const displayName = `${source.name}/${file.path}`;
        fileNames.push(file.path);
        const remote = remoteByPath.get(file.path) ?? false;
        const where = layout === 'repo' ? `datasets/${displayName}` : displayName;
        const loc = inputLocation(layout, options.inputsDir, source.name, file.path, remote);
        if (!existsSync(loc.path)) {
          const url = descriptorFiles(descriptor).find((f) => f.path === file.path)?.url;
          issues.push({
            path: where,
            message: `input file not found at ${loc.path}`,
            fix:
              remote && layout === 'repo'
                ? `download ${url} to datasets/${displayName} (its sha256 must be ${file.sha256}) to convert locally; in the cluster the Job fetches it`
                : layout === 'cluster'
                  ? `the Job's inputs are incomplete: re-apply the stage's objects (${remote ? `the fetch init container writes ${CLUSTER_INPUTS.remote}/${displayName}` : `the source's ConfigMap is mounted at ${CLUSTER_INPUTS.local(source.name)} with item ${file.path}.gz`})`
                  : `restore the file, or remove it from datasets/${source.name}/dataset.yaml`,
            code: 'convert.input-missing',
          });
          continue;
        }
        const fileHash = createHash('sha256');
        let fileBytes = 0;
        let fileRowsIn = 0;
        const { encoding, gzip } = fileEncoding(file.path);
        const quarantineRow = (rec: RawRecord, reason: QuarantineReason, detail: string): void => {
          quarantined++;
          reasons[reason] = (reasons[reason] ?? 0) + 1;
          quarantine.write(
            `{"source":${JSON.stringify(source.name)},"file":${JSON.stringify(file.path)},"record":${rec.record},"line":${rec.line},"reason":"${reason}","detail":${JSON.stringify(detail)},"raw":${JSON.stringify(rec.raw)}}`,
          );
        };
        /** Quarantines a record holding bytes that are not UTF-8, unless the descriptor lets them become U+FFFD. */
        const badEncoding = (rec: RawRecord): boolean => {
          if (rec.invalidUtf8 === undefined || keepInvalidUtf8) return false;
          quarantineRow(rec, 'invalid_utf8', `not valid UTF-8 at byte offset ${rec.invalidUtf8}${gzip ? ' of the decompressed file' : ''}; \`encoding: { invalid: replace }\` in dataset.yaml keeps such rows with U+FFFD`);
          return true;
        };
        const accept = (rec: RawRecord, r: RowResult): void => {
          if (!r.ok) {
            quarantineRow(rec, r.reason, r.detail);
            return;
          }
          hash96(r.line, h);
          const id = idFile.length;
          const first = dedupe.addOrGet(h, id);
          if (first !== -1) {
            quarantineRow(rec, 'duplicate', `same content as ${fileNames[idFile.get(first)]} record ${idRecord.get(first)} (line ${idLine.get(first)})`);
            return;
          }
          idFile.push(fileIndex);
          idRecord.push(rec.record);
          idLine.push(rec.line);
          if (wantText && r.text !== undefined) pool!.offer(lowerTokens(r.measure), r.text);
          if (format !== 'text') {
            const upper = upperTokens(r.measure, r.messages);
            if (upper > config.cutoffLen) {
              quarantineRow(rec, 'too_long', `about ${upper} tokens (upper estimate) > cutoff_len ${config.cutoffLen}`);
              return;
            }
          }
          spool.write(r.line);
          keys.push(shuffleKey(h, seedMix));
          flags.push(r.flags);
          ids.push(id);
          sourceFlags |= r.flags;
        };
        const onJson = (rec: RawRecord): void => {
          rowsIn++;
          fileRowsIn++;
          if (badEncoding(rec)) return;
          let value: unknown;
          try {
            value = JSON.parse(rec.raw);
          } catch (e) {
            quarantineRow(rec, 'malformed_json', (e as Error).message);
            return;
          }
          accept(
            rec,
            format === 'alpaca'
              ? normalizeAlpaca(value, alpacaCols, fill, wantText)
              : format === 'sharegpt'
                ? normalizeSharegpt(value, sharegptCols, fill, wantText)
                : normalizeText(value, textField, fill),
          );
        };
        const bytes = bytesOf(loc.path, {
          wrapped: loc.wrapped,
          gzip,
          onOriginal: (chunk) => {
            fileHash.update(chunk);
            fileBytes += chunk.length;
          },
        });
        try {
          if (encoding === 'json') await readJsonArray(bytes, onJson);
          else if (encoding === 'jsonl') await readJsonl(bytes, onJson);
          else if (encoding === 'txt') {
            const separator = format === 'text' ? (descriptor.separator ?? 'blank-line') : 'blank-line';
            await readText(bytes, separator, (rec) => {
              rowsIn++;
              fileRowsIn++;
              if (badEncoding(rec)) return;
              accept(rec, normalizeText(rec.raw, undefined, fill));
            });
          } else if (encoding === 'csv' || encoding === 'tsv') {
            if (format !== 'csv' && format !== 'tsv') throw new FileFormatError(`a .${encoding} file needs \`format: ${encoding}\``, 'fix the descriptor');
            const mapping = descriptor.columns;
            const required = [mapping.instruction, mapping.output];
            await readCsv(bytes, encoding === 'csv' ? ',' : '\t', required, (rec: CsvRecord) => {
              rowsIn++;
              fileRowsIn++;
              if (rec.lines > 1) {
                csvMultiline.records++;
                csvMultiline.lines += rec.lines;
              }
              if ('error' in rec) {
                quarantineRow(rec, rec.reason, rec.error);
                return;
              }
              if (badEncoding(rec)) return;
              const row: Record<string, string> = { instruction: rec.fields[mapping.instruction]!, output: rec.fields[mapping.output]! };
              if (mapping.input !== undefined && rec.fields[mapping.input] !== undefined) row['input'] = rec.fields[mapping.input]!;
              if (mapping.system !== undefined && rec.fields[mapping.system] !== undefined) row['system'] = rec.fields[mapping.system]!;
              accept(rec, normalizeAlpaca(row, DEFAULT_ALPACA_COLUMNS, fill, wantText));
            });
          } else {
            throw new FileFormatError(`cannot read ${file.path}: unknown file type`, 'use .json, .jsonl, .csv, .tsv or .txt (optionally .gz)');
          }
        } catch (e) {
          bytes.destroy();
          if (e instanceof FileFormatError) {
            issues.push({ path: where, message: `${e.message} (declared format: ${format})`, fix: e.fix, code: 'convert.file-format' });
            continue;
          }
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_INVALID_ARG_TYPE') {
            issues.push({ path: where, message: `cannot decompress: ${(e as Error).message}`, fix: 'the gzip data is corrupt or truncated; re-create the file', code: 'convert.file-format' });
            continue;
          }
          throw e;
        }
        const sha256 = fileHash.digest('hex');
        if (sha256 !== file.sha256 || fileBytes !== file.size) {
          issues.push({
            path: where,
            message: `content differs from what the stage was compiled with (sha256 ${sha256}, ${fileBytes} bytes; expected ${file.sha256}, ${file.size} bytes)`,
            fix: layout === 'repo' ? 're-run `tunepipe synth` / `plan` so the stage hash covers the current content' : 'the delivered input does not match the pinned digest: re-apply the stage objects, or fix the sha256 in the descriptor',
            code: 'convert.input-digest',
          });
        }
        fileStats.push({ path: file.path, sha256, rows_in: fileRowsIn });
        log(`  ${displayName}: ${fileRowsIn} rows read`);
      }
      spool.close();

      // Split: order rows by their seeded content key, take maxSamples, then test, validation, train.
      const n = keys.length;
      const order = sortByKey(keys.data, n);
      const sampled = Math.min(n, config.maxSamples ?? n);
      const nTest = splitCount(config.split.test, sampled);
      const nValidation = splitCount(config.split.validation, sampled);
      const codes = new Uint8Array(n);
      for (let rank = 0; rank < n; rank++) {
        const i = order[rank]!;
        codes[i] = rank >= sampled ? SPLIT_CODE.unsampled : rank < nTest ? SPLIT_CODE.test : rank < nTest + nValidation ? SPLIT_CODE.validation : SPLIT_CODE.train;
      }
      if (sampled - nTest - nValidation <= 0 && issues.length === issuesBeforeSource) {
        issues.push({
          path: `sources.${source.name}`,
          message: n === 0 ? 'no valid rows: every row was quarantined' : `${sampled} usable rows leave none for training after ${nTest} test + ${nValidation} validation`,
          value: { valid: n, sampled, test: nTest, validation: nValidation },
          fix: n === 0 ? `read ${'quarantine.jsonl'} for the reasons and fix the data` : 'lower split.validation / split.test, or add rows',
          code: 'convert.split-empty',
        });
      }

      const names = { train: `${source.name}.jsonl`, validation: `${source.name}.validation.jsonl`, test: `${source.name}.test.jsonl` };
      const sinks = [sink(names.train), sink(names.validation), sink(names.test)] as const;
      let i = 0;
      await forEachLine(createReadStream(join(partial, spoolName), { highWaterMark: 1 << 18 }), (line) => {
        const code = codes[i]!;
        const rowFlags = flags.data[i]!;
        if (code === SPLIT_CODE.unsampled) {
          const id = ids.data[i]!;
          quarantined++;
          reasons.max_samples = (reasons.max_samples ?? 0) + 1;
          quarantine.write(
            `{"source":${JSON.stringify(source.name)},"file":${JSON.stringify(fileNames[idFile.get(id)])},"record":${idRecord.get(id)},"line":${idLine.get(id)},"reason":"max_samples","detail":"valid row beyond maxSamples=${config.maxSamples} in the seeded order","row":${line}}`,
          );
        } else {
          sinks[code]!.write(padLine(line, rowFlags, sourceFlags));
        }
        i++;
      });
      await rm(join(partial, spoolName));
      closeSink(sinks[0], names.train);
      closeSink(sinks[1], names.validation);
      closeSink(sinks[2], names.test);

      datasetInfo[source.name] = datasetInfoEntry(format, names.train, sourceFlags);
      datasetInfo[`${source.name}.validation`] = datasetInfoEntry(format, names.validation, sourceFlags);
      datasetInfo[`${source.name}.test`] = datasetInfoEntry(format, names.test, sourceFlags);

      const splits = { train: sinks[0].rows, validation: sinks[1].rows, test: sinks[2].rows };
      const rowsOut = splits.train + splits.validation + splits.test;
      totalIn += rowsIn;
      totalOut += rowsOut;
      totalQuarantined += quarantined;
      const isTable = format === 'csv' || format === 'tsv';
      const summary: SourceSummary = {
        name: source.name,
        format,
        rows_in: rowsIn,
        rows_out: rowsOut,
        rows_quarantined: quarantined,
        reasons,
        splits,
        files: fileStats,
        ...(isTable ? { csv_multiline_records: csvMultiline.records, csv_multiline_lines: csvMultiline.lines } : {}),
      };
      summaries.push(summary);
      manifestSources[source.name] = {
        format,
        files: fileStats,
        rows_in: rowsIn,
        rows_out: rowsOut,
        rows_quarantined: quarantined,
        quarantine_reasons: reasons,
        ...(isTable ? { csv_multiline_records: csvMultiline.records, csv_multiline_lines: csvMultiline.lines } : {}),
        splits,
        columns: (datasetInfo[source.name] as { columns: unknown }).columns,
      };
      const reasonText = Object.entries(reasons).map(([r, c]) => `${r} ${c}`).join(', ');
      const multilineText = csvMultiline.records > 0 ? `; ${csvMultiline.records} CSV record${csvMultiline.records === 1 ? '' : 's'} span${csvMultiline.records === 1 ? 's' : ''} ${csvMultiline.lines} lines through quoted line breaks` : '';
      log(`${source.name}: ${rowsIn} rows in → ${splits.train} train / ${splits.validation} validation / ${splits.test} test, ${quarantined} quarantined${reasonText ? ` (${reasonText})` : ''}${multilineText}`);
      if (rowsIn !== rowsOut + quarantined) throw new Error(`internal: ${source.name} rows_in ${rowsIn} ≠ rows_out ${rowsOut} + rows_quarantined ${quarantined}`);
    }

    let calibrationSummary: ConvertResult['calibration'];
    if (pool && calibration) {
      const from = calibration.source ?? config.sources.map((s) => s.name).join('+');
      if (pool.qualifying < calibration.nsamples) {
        const workable = pool.workableMaxlen();
        issues.push({
          path: calibration.source ? `calibration (source ${calibration.source})` : 'calibration',
          message: `only ${pool.qualifying} row${pool.qualifying === 1 ? '' : 's'} of ${from} ${pool.qualifying === 1 ? 'is' : 'are'} longer than maxlen ${calibration.maxlen} tokens (lower estimate); nsamples ${calibration.nsamples} needed — LLaMA-Factory would stop with "Cannot find satisfying example"`,
          value: { nsamples: calibration.nsamples, maxlen: calibration.maxlen, qualifying: pool.qualifying },
          fix: [
            workable > 0 ? `lower calibration.maxlen (export_quantization_maxlen) to ${workable} or less` : undefined,
            pool.qualifying > 0 ? `lower calibration.nsamples to ${pool.qualifying}` : undefined,
            'or point calibration.source at a text corpus (format: text) with longer documents',
          ]
            .filter(Boolean)
            .join(', '),
          code: 'convert.calibration-short',
        });
      } else {
        const cal = sink('calibration.jsonl');
        for (const item of [...pool.items].sort((a, b) => a.order - b.order)) cal.write(JSON.stringify({ text: item.text }));
        closeSink(cal, 'calibration.jsonl');
        datasetInfo['calibration'] = { file_name: 'calibration.jsonl', formatting: 'alpaca', columns: { prompt: 'text' } };
        calibrationSummary = { source: from, qualifying: pool.qualifying, written: pool.items.length };
        log(`calibration: ${pool.items.length} rows written (${pool.qualifying} of ${from} longer than ${calibration.maxlen} tokens; nsamples ${calibration.nsamples})`);
      }
    }

    if (issues.length > 0) throw new ConvertError('convert', issues);

    closeSink(quarantine, 'quarantine.jsonl');
    const infoText = `${JSON.stringify(datasetInfo, null, 2)}\n`;
    await writeFile(join(partial, 'dataset_info.json'), infoText);
    outputs['dataset_info.json'] = { sha256: createHash('sha256').update(infoText).digest('hex'), bytes: Buffer.byteLength(infoText), rows: Object.keys(datasetInfo).length };

    const reasonTotals: Partial<Record<QuarantineReason, number>> = {};
    for (const s of summaries) for (const r of QUARANTINE_REASONS) if (s.reasons[r]) reasonTotals[r] = (reasonTotals[r] ?? 0) + s.reasons[r]!;
    if (totalIn !== totalOut + totalQuarantined) throw new Error(`internal: rows_in ${totalIn} ≠ rows_out ${totalOut} + rows_quarantined ${totalQuarantined}`);
    const sortedOutputs = Object.fromEntries(Object.entries(outputs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const manifest = {
      stage: 'convert',
      pipeline: config.pipeline,
      rows_in: totalIn,
      rows_out: totalOut,
      rows_quarantined: totalQuarantined,
      quarantine_reasons: reasonTotals,
      seed: config.seed,
      cutoff_len: config.cutoffLen,
      max_samples: config.maxSamples ?? null,
      split: config.split,
      token_estimate: TOKEN_ESTIMATE,
      sources: manifestSources,
      calibration: calibrationSummary ? { ...calibrationSummary, nsamples: calibration!.nsamples, maxlen: calibration!.maxlen } : null,
      files: sortedOutputs,
    };
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    await writeFile(join(partial, 'manifest.json'), manifestText);
    const known = new Map(Object.entries(outputs).map(([name, o]) => [name, o.sha256]));
    known.set('manifest.json', createHash('sha256').update(manifestText).digest('hex'));

    log(`rows_in ${totalIn} = rows_out ${totalOut} + rows_quarantined ${totalQuarantined} ✓`);
    let marker: CompletionMarker | undefined;
    if (options.outDir !== undefined) {
      const stage = options.stage ?? { stage: 'convert', hash: createHash('sha256').update(canonicalJson(config)).digest('hex') };
      marker = await publishFolder(partial, options.outDir, stage, known);
      log(`wrote ${marker.files} files to ${options.outDir}`);
    } else {
      log(`wrote ${known.size} files to ${partial} (published by the stage wrapper)`);
    }
    return {
      dir: options.outDir ?? partial,
      rows_in: totalIn,
      rows_out: totalOut,
      rows_quarantined: totalQuarantined,
      sources: summaries,
      ...(calibrationSummary ? { calibration: calibrationSummary } : {}),
      files: sortedOutputs,
      ...(marker ? { marker } : {}),
    };
  } catch (e) {
    for (const s of openSinks) s.abandon();
    // A caller's work folder is the caller's to clear (the wrapper does before every attempt).
    if (standalone) await rm(partial, { recursive: true, force: true });
    throw e;
  }
}
