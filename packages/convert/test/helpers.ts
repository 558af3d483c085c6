import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { StageIdentity } from '@tunepipe/core';
import { ConvertError, loadDatasetSources, runConvert, type ConvertConfig, type ConvertResult } from '../src/index.ts';

/** A throwaway repository root with `datasets/<name>/…` files. */
export async function tempRepo(files: Record<string, string | Buffer>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tunepipe-convert-test-'));
  for (const [path, content] of Object.entries(files)) {
    const abs = join(root, path);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, content);
  }
  return root;
}

export async function cleanup(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

export type ConfigOverrides = Partial<Omit<ConvertConfig, 'sources'>>;

/** Loads the named sources from `root` and wraps them in a config with test defaults. */
export async function configFor(root: string, names: readonly string[], overrides: ConfigOverrides = {}): Promise<ConvertConfig> {
  const sources = await loadDatasetSources(root, names);
  return {
    pipeline: 'test',
    sources: sources.map((s) => ({ name: s.name, descriptor: s.descriptor, files: s.files.map(({ path, sha256, size }) => ({ path, sha256, size })) })),
    templateVars: { name: '小聚', author: 'Aron' },
    seed: 42,
    split: { validation: 0, test: 0 },
    cutoffLen: 1024,
    ...overrides,
  };
}

export interface Converted {
  readonly result: ConvertResult;
  readonly outDir: string;
  readonly logs: string[];
  /** JSON rows of an output file. */
  rows(file: string): Promise<Record<string, unknown>[]>;
  quarantine(): Promise<{ source: string; file: string; record: number; line: number; reason: string; detail: string; raw?: string; row?: unknown }[]>;
}

/** Standalone conversion (convert publishes `outDir` itself). */
export interface ConvertTestOptions {
  /** @default `<root>/out/convert` */
  readonly outDir?: string;
  readonly stage?: StageIdentity;
}

export async function convert(root: string, config: ConvertConfig, options: ConvertTestOptions = {}): Promise<Converted> {
  const outDir = options.outDir ?? join(root, 'out', 'convert');
  const logs: string[] = [];
  const result = await runConvert(config, { inputsDir: join(root, 'datasets'), outDir, log: (l) => logs.push(l), ...(options.stage ? { stage: options.stage } : {}) });
  const rows = async (file: string): Promise<Record<string, unknown>[]> =>
    (await readFile(join(outDir, file), 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    result,
    outDir,
    logs,
    rows,
    quarantine: async () => (await rows('quarantine.jsonl')) as never,
  };
}

/** Runs a conversion expected to fail with a ConvertError and returns its issues. */
export async function convertIssues(root: string, config: ConvertConfig, options: ConvertTestOptions = {}): Promise<ConvertError['issues']> {
  try {
    await convert(root, config, options);
  } catch (e) {
    if (e instanceof ConvertError) return e.issues;
    throw e;
  }
  throw new Error('expected the conversion to fail');
}

export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

export const jsonl = (rows: readonly unknown[]): string => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

export const alpacaYaml = (file = 'data.jsonl', extra = ''): string => `format: alpaca\nfiles: [${file}]\nlicense: CC0-1.0\n${extra}`;
