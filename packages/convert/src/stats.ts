import { join } from 'node:path';
import { fileEncoding } from './descriptor.ts';
import { openBytes, readJsonArray, readJsonl, type RawRecord } from './readers.ts';
import { measureText, upperTokens } from './tokens.ts';
import type { LoadedSource } from './sources.ts';

/** Row count and token estimates of a source, as the planner wants them. */
export interface SourceStats {
  readonly rows: number;
  readonly meanTokens: number;
  readonly maxTokens: number;
}

function stringLeaves(value: unknown, out: string[]): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) stringLeaves(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) stringLeaves(v, out);
  return out;
}

/**
 * Counts the records of a source's local JSON/JSONL files and estimates their tokens (the
 * converter's upper estimate over every string in the record, before validation), so `plan` can
 * size training from the data instead of from cutoff_len. Returns undefined for sources it cannot
 * read that way (CSV, text, remote files): the planner then plans from upper bounds.
 */
export async function sourceStats(repoRoot: string, source: LoadedSource): Promise<SourceStats | undefined> {
  let rows = 0;
  let total = 0;
  let max = 0;
  for (const file of source.files) {
    if (file.gzipBase64 === undefined) return undefined;
    const { encoding, gzip } = fileEncoding(file.path);
    if (encoding !== 'json' && encoding !== 'jsonl') return undefined;
    const onRecord = (record: RawRecord) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(record.raw);
      } catch {
        return;
      }
      const strings = stringLeaves(parsed, []);
      const measure = { cjk: 0, otherBytes: 0 };
      for (const text of strings) measureText(text, measure);
      const tokens = upperTokens(measure, strings.length);
      rows += 1;
      total += tokens;
      max = Math.max(max, tokens);
    };
    const bytes = openBytes(join(repoRoot, 'datasets', source.name, file.path), gzip);
    try {
      await (encoding === 'json' ? readJsonArray(bytes, onRecord) : readJsonl(bytes, onRecord));
    } catch {
      // A file that is not what it claims is reported by the converter itself; no stats from it.
      return undefined;
    }
  }
  return rows > 0 ? { rows, meanTokens: total / rows, maxTokens: max } : undefined;
}
