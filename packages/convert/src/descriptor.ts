import { z } from 'zod';
import { LineCounter, isMap, isScalar, parseDocument, type Document } from 'yaml';
import type { Issue } from './issues.ts';
import { didYouMean, issuePath, zodParse, type ZodIssueContext } from '@tunepipe/core';

/** Dataset source names become file names and LLaMA-Factory entry names: keep them simple. */
export const SOURCE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** File paths travel as ConfigMap item paths and inside manifests: relative, no `..`, plain characters. */
const FILE_PATH = /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._/-]+$/;
const SHA256 = /^[0-9a-f]{64}$/;
/**
 * Remote locations resolved in-cluster by the fetch init container:
 * `https://…`, `s3://bucket/key`, `hf://datasets/<org>/<name>@<revision>/<path>`,
 * `ms://datasets/<org>/<name>@<revision>/<path>` (ModelScope).
 */
export const REMOTE_URL = /^(?:https:\/\/[^\s]+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/\S+|(?:hf|ms):\/\/datasets\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+\/\S+)$/;

const FileEntry = z.union([
  z.string(),
  z.strictObject({
    /** Path relative to the descriptor; for a remote file, where the fetched copy is placed. */
    path: z.string(),
    /** Remote location, fetched by the Job instead of shipped from the repo. */
    url: z.string().regex(REMOTE_URL, {
      error: 'must be https://…, s3://bucket/key, hf://datasets/<org>/<name>@<revision>/<path> or ms://datasets/<org>/<name>@<revision>/<path>',
    }).optional(),
    /** sha256 of the remote file: the content identity the stage hash covers. Required with `url`. */
    sha256: z.string().regex(SHA256, { error: 'must be 64 lower-case hex characters (sha256sum output)' }).optional(),
    /** Size in bytes of the remote file, for planning. */
    size: z.number().int().nonnegative().optional(),
  }),
]);

const common = {
  /** What the data is and where it came from. */
  description: z.string().optional(),
  /** License of the data (SPDX id or a short statement). */
  license: z.string().min(1, { error: 'must name the data license' }),
  notes: z.string().optional(),
  files: z.array(FileEntry).min(1, { error: 'list at least one data file' }),
  /** Fill `{{name}}` / `{{author}}`-style placeholders from the pipeline's templateVars. @default true */
  placeholders: z.boolean().optional(),
  /**
   * Bytes that are not UTF-8: `quarantine` the row holding them (reason `invalid_utf8`, with the
   * byte offset), or `replace` them with U+FFFD and keep the row. @default { invalid: quarantine }
   */
  encoding: z.strictObject({ invalid: z.enum(['quarantine', 'replace']).optional() }).optional(),
};

const fieldName = z.string().min(1);

export const AlpacaDescriptor = z.strictObject({
  format: z.literal('alpaca'),
  ...common,
  /** Field names in the data when they differ from Alpaca's. */
  columns: z
    .strictObject({
      instruction: fieldName.optional(),
      input: fieldName.optional(),
      output: fieldName.optional(),
      system: fieldName.optional(),
      history: fieldName.optional(),
    })
    .optional(),
});

export const SharegptDescriptor = z.strictObject({
  format: z.literal('sharegpt'),
  ...common,
  columns: z
    .strictObject({
      /** Field holding the message list. @default 'conversations', else 'messages' */
      messages: fieldName.optional(),
      system: fieldName.optional(),
      tools: fieldName.optional(),
    })
    .optional(),
});

const CsvColumns = z.strictObject({
  instruction: fieldName,
  input: fieldName.optional(),
  output: fieldName,
  system: fieldName.optional(),
});

export const CsvDescriptor = z.strictObject({
  format: z.enum(['csv', 'tsv']),
  ...common,
  /** Alpaca field → header name in the file's first row. */
  columns: CsvColumns,
});

export const TextDescriptor = z.strictObject({
  format: z.literal('text'),
  ...common,
  /** For `.jsonl` corpora: the field holding the text. @default 'text' */
  columns: z.strictObject({ text: fieldName.optional() }).optional(),
  /** How a `.txt` file splits into documents. @default 'blank-line' */
  separator: z.enum(['blank-line', 'line', 'file']).optional(),
});

export const DatasetDescriptor = z.discriminatedUnion('format', [
  AlpacaDescriptor,
  SharegptDescriptor,
  CsvDescriptor,
  TextDescriptor,
]);
export type DatasetDescriptor = z.infer<typeof DatasetDescriptor>;
export type DatasetFormat = DatasetDescriptor['format'];
export const DATASET_FORMATS: readonly DatasetFormat[] = ['alpaca', 'sharegpt', 'csv', 'tsv', 'text'];

/** A file entry with the string shorthand expanded. */
export interface DescriptorFile {
  readonly path: string;
  readonly url?: string | undefined;
  readonly sha256?: string | undefined;
  readonly size?: number | undefined;
}

export function descriptorFiles(descriptor: DatasetDescriptor): DescriptorFile[] {
  return descriptor.files.map((f) => (typeof f === 'string' ? { path: f } : f));
}

/** How a data file is read, from its name: `.json` array, `.jsonl`, `.csv`, `.tsv`, `.txt`, each optionally `.gz`. */
export type FileEncoding = 'json' | 'jsonl' | 'csv' | 'tsv' | 'txt';

export function fileEncoding(path: string): { encoding: FileEncoding | undefined; gzip: boolean } {
  const gzip = path.endsWith('.gz');
  const base = gzip ? path.slice(0, -3) : path;
  const ext = base.slice(base.lastIndexOf('.') + 1).toLowerCase();
  const encoding: FileEncoding | undefined =
    ext === 'json' || ext === 'jsonl' || ext === 'csv' || ext === 'tsv' || ext === 'txt'
      ? ext
      : ext === 'ndjson'
        ? 'jsonl'
        : ext === 'tab'
          ? 'tsv'
          : undefined;
  return { encoding, gzip };
}

const ENCODINGS_BY_FORMAT: Record<DatasetFormat, readonly FileEncoding[]> = {
  alpaca: ['json', 'jsonl'],
  sharegpt: ['json', 'jsonl'],
  csv: ['csv'],
  tsv: ['tsv'],
  text: ['txt', 'jsonl'],
};

/** Rules zod cannot express: file names against the format, remote files pinned. */
function semanticIssues(descriptor: DatasetDescriptor): { path: (string | number)[]; message: string; value: unknown; fix: string; code: string }[] {
  const out: { path: (string | number)[]; message: string; value: unknown; fix: string; code: string }[] = [];
  const seen = new Set<string>();
  descriptorFiles(descriptor).forEach((file, i) => {
    const at = typeof descriptor.files[i] === 'string' ? ['files', i] : ['files', i, 'path'];
    if (!FILE_PATH.test(file.path)) {
      out.push({
        path: at,
        message: 'file path must be relative to the descriptor, without `..`, using only letters, digits and . _ - /',
        value: file.path,
        fix: 'move the file inside the dataset folder and rename it, e.g. `data/train.jsonl`',
        code: 'dataset.file-path',
      });
      return;
    }
    if (seen.has(file.path)) {
      out.push({ path: at, message: 'file listed twice', value: file.path, fix: 'list each file once', code: 'dataset.file-duplicate' });
    }
    seen.add(file.path);
    const { encoding } = fileEncoding(file.path);
    const allowed = ENCODINGS_BY_FORMAT[descriptor.format];
    if (encoding === undefined || !allowed.includes(encoding)) {
      out.push({
        path: at,
        message: `format '${descriptor.format}' reads ${allowed.map((e) => `.${e}`).join(' or ')} files (optionally .gz)`,
        value: file.path,
        fix:
          encoding === 'csv' || encoding === 'tsv'
            ? `declare \`format: ${encoding}\` with a \`columns\` mapping, or convert the file to JSON lines`
            : `rename the file to ${allowed.map((e) => `.${e}`).join(' / ')} if that is what it holds, or change \`format\``,
        code: 'dataset.file-extension',
      });
    }
    if (file.url !== undefined && file.sha256 === undefined) {
      out.push({
        path: ['files', i, 'sha256'],
        message: 'a remote file needs its sha256: the stage hash must cover the content, and the Job verifies it after download',
        value: file.url,
        fix: 'run `sha256sum <file>` on the exact file and add `sha256: <hex>`',
        code: 'dataset.remote-unpinned',
      });
    }
    if (file.url === undefined && (file.sha256 !== undefined || file.size !== undefined)) {
      out.push({
        path: ['files', i],
        message: '`sha256`/`size` are only for remote files; local files are hashed when loaded',
        value: file,
        fix: 'remove `sha256`/`size`, or add the `url` the file is fetched from',
        code: 'dataset.local-pinned',
      });
    }
  });
  if (descriptor.format === 'text' && descriptor.separator !== undefined && !descriptorFiles(descriptor).some((f) => fileEncoding(f.path).encoding === 'txt')) {
    out.push({ path: ['separator'], message: '`separator` applies to .txt files only', value: descriptor.separator, fix: 'remove `separator`', code: 'dataset.separator-unused' });
  }
  return out;
}

export { didYouMean } from '@tunepipe/core';

/** Fixes that know the descriptor's meaning; otherwise the adapter's own ("did you mean …"). */
function fixFor(context: ZodIssueContext, raw: unknown): string | undefined {
  const format = (raw as { format?: unknown } | null)?.format;
  const known = typeof format === 'string' && (DATASET_FORMATS as readonly string[]).includes(format) ? (format as DatasetFormat) : undefined;
  const { zod: issue, path } = context;
  const formatHint = () => (typeof format === 'string' ? didYouMean(format, DATASET_FORMATS) : undefined);
  switch (issue.code) {
    case 'invalid_union':
      if (path[0] === 'format' || path.length === 0) return formatHint() ?? `set \`format\` to one of ${DATASET_FORMATS.join(', ')}`;
      return 'a file entry is either a path string or { path, url, sha256, size }';
    case 'invalid_value':
      if (path[0] === 'format') return formatHint() ?? `use one of ${DATASET_FORMATS.join(', ')}`;
      return context.suggestion;
    case 'invalid_type':
      if (path[0] === 'format') return `add \`format:\` (one of ${DATASET_FORMATS.join(', ')})`;
      if (path[0] === 'license') return 'add `license:` naming the data license (e.g. CC-BY-4.0, or "proprietary, internal use")';
      if (path[0] === 'columns' && (known === 'csv' || known === 'tsv')) return 'map the Alpaca fields to your header names, e.g. `columns: { instruction: question, output: answer }`';
      return context.suggestion;
    default:
      return context.suggestion;
  }
}

function lineOf(doc: Document, counter: LineCounter, path: readonly PropertyKey[], key?: string): number | undefined {
  const node = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true);
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
    const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
    if (range) return counter.linePos(range[0]).line;
  }
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  if (range) return counter.linePos(range[0]).line;
  if (path.length > 0) return lineOf(doc, counter, path.slice(0, -1));
  return undefined;
}

export type DescriptorResult =
  | { readonly ok: true; readonly descriptor: DatasetDescriptor }
  | { readonly ok: false; readonly issues: readonly Issue[] };

/**
 * Parses and validates a `dataset.yaml` text. Every problem is reported at once, located as
 * `<displayPath>:<line>` with the field path, the bad value and a fix.
 */
export function parseDescriptor(text: string, displayPath: string): DescriptorResult {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => ({
        path: `${displayPath}:${counter.linePos(e.pos[0]).line}`,
        message: `not valid YAML: ${e.message.split('\n')[0]}`,
        fix: 'fix the YAML syntax (indentation, quotes, a missing `:`)',
        code: 'dataset.yaml-syntax',
      })),
    };
  }
  const raw: unknown = doc.toJS();
  const where = (path: readonly PropertyKey[]): string => {
    // A key's own line, when it is there: the line of its value can be a later one.
    const last = path[path.length - 1];
    const line = typeof last === 'string' ? lineOf(doc, counter, path.slice(0, -1), last) : lineOf(doc, counter, path);
    const written = issuePath(path);
    return `${displayPath}${line === undefined ? '' : `:${line}`}${written ? ` (${written})` : ''}`;
  };
  const parsed = zodParse(DatasetDescriptor, raw, { area: 'dataset', formatPath: where, fix: (context) => fixFor(context, raw) });
  if (!parsed.ok) return parsed;
  const semantic = semanticIssues(parsed.value);
  if (semantic.length > 0) {
    return {
      ok: false,
      issues: semantic.map((s) => ({ path: where(s.path), message: s.message, value: s.value, fix: s.fix, code: s.code })),
    };
  }
  return { ok: true, descriptor: parsed.value };
}
