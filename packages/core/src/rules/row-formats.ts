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
