import { z } from 'zod';
import { zodParse } from '@tunepipe/core';
import { DatasetDescriptor, SOURCE_NAME } from './descriptor.ts';
import type { Issue } from './issues.ts';

const SplitSize = z
  .number()
  .nonnegative()
  .refine((n) => n < 1 || Number.isInteger(n), { error: 'a split is a fraction (0 ≤ x < 1) or a whole row count' });

export const ConvertFile = z.strictObject({
  /** Path relative to the source folder (`datasets/<name>/`). */
  path: z.string().min(1),
  /** Expected sha256 of the file; the converter refuses content that differs from what was compiled. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
});

export const ConvertSource = z.strictObject({
  name: z.string().regex(SOURCE_NAME, { error: 'source names are lower-case letters, digits, - and _' }),
  descriptor: DatasetDescriptor,
  files: z.array(ConvertFile).min(1),
});
export type ConvertSource = z.infer<typeof ConvertSource>;

/**
 * The convert stage's configuration, as the compiler writes it (JSON) into the Job's ConfigMap and
 * as `tunepipe run --only convert` passes it locally.
 */
export const ConvertConfig = z
  .strictObject({
    pipeline: z.string().min(1),
    sources: z.array(ConvertSource).min(1, { error: 'name at least one dataset source' }),
    /** Values for `{{key}}` placeholders (the seed: name 小聚, author Aron). */
    templateVars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()),
    /** Shuffle seed. */
    seed: z.number().int().min(0).max(0xffffffff),
    /** Keep at most this many valid rows per source (the rest are listed in quarantine as `max_samples`). */
    maxSamples: z.number().int().positive().optional(),
    /** Held-out rows per source: fractions (0 ≤ x < 1) of the sampled rows, or row counts (≥ 1). */
    split: z.strictObject({ validation: SplitSize, test: SplitSize }),
    /** The SFT stage's `cutoff_len`: rows whose upper token estimate exceeds it are quarantined. */
    cutoffLen: z.number().int().positive(),
    calibration: z
      .strictObject({
        /** LLaMA-Factory `export_quantization_nsamples`. */
        nsamples: z.number().int().positive(),
        /** LLaMA-Factory `export_quantization_maxlen`: every calibration row must be longer than this. */
        maxlen: z.number().int().positive(),
        /** Source to draw from. @default every source of the stage */
        source: z.string().optional(),
      })
      .optional(),
  })
  .superRefine((config, ctx) => {
    const names = config.sources.map((s) => s.name);
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: ['sources', i, 'name'], message: `source '${name}' listed twice`, params: { rule: 'source-duplicate', fix: 'list each source once' } });
    });
    const { validation, test } = config.split;
    if (validation < 1 && test < 1 && validation + test >= 1) {
      ctx.addIssue({ code: 'custom', path: ['split'], message: 'validation + test fractions must leave rows for training (sum < 1)', params: { rule: 'split' } });
    }
    const source = config.calibration?.source;
    if (source !== undefined && !names.includes(source)) {
      ctx.addIssue({ code: 'custom', path: ['calibration', 'source'], message: `calibration source '${source}' is not one of the stage's sources (${names.join(', ')})`, params: { rule: 'calibration-source' } });
    }
  });
export type ConvertConfig = z.infer<typeof ConvertConfig>;

/**
 * Validates a parsed config (e.g. the Job's JSON), returning every problem as an Issue;
 * `where` (the config file, when there is one) is written before each path.
 */
export function parseConvertConfig(value: unknown, where?: string): { ok: true; config: ConvertConfig } | { ok: false; issues: Issue[] } {
  const parsed = zodParse(ConvertConfig, value, {
    area: 'convert.config',
    ...(where === undefined ? {} : { pathPrefix: where }),
    fix: (c) => c.suggestion ?? 'regenerate the config with `tunepipe synth` (the compiler writes it); when hand-writing it, follow ConvertConfig in @tunepipe/convert',
  });
  return parsed.ok ? { ok: true, config: parsed.value } : parsed;
}
