import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readCompletionMarker, type CompletionMarker, type StageIdentity } from '@tunepipe/core';
import { parseConvertConfig } from './config.ts';
import { runConvert, type ConvertResult, type InputLayout } from './convert.ts';
import { ConvertError } from './issues.ts';

export interface ConvertCommandOptions {
  /** The convert stage's config: `CompiledStage.config` of the convert stage, or the Job's parsed JSON. */
  readonly config: unknown;
  /**
   * Standalone: the artifact folder convert publishes itself (SHA256SUMS and the completion marker),
   * skipping the work when it is already complete for this hash. Give this or `workDir`.
   */
  readonly outDir?: string;
  /**
   * Under the stage wrapper or the local runner: the work folder to write into. Nothing is
   * published and nothing is cached here; the caller does both.
   */
  readonly workDir?: string;
  /** Local run: inputs are read from `<repoRoot>/datasets/<source>/<file>`. */
  readonly repoRoot?: string;
  /** In-cluster run: the Job's inputs root (CLUSTER_INPUTS.root, `/inputs`). Ignored when repoRoot is given. */
  readonly inputsDir?: string;
  /** Stage identity for the completion marker and the cache check (`outDir` only). @default { stage: 'convert', hash: sha256(config) } */
  readonly stage?: StageIdentity;
  /** Re-run even when `outDir` holds a completion marker for this hash. @default false */
  readonly force?: boolean;
  /** @default console.log */
  readonly log?: (line: string) => void;
}

export type ConvertCommandResult =
  | { readonly cached: false; readonly result: ConvertResult }
  | { readonly cached: true; readonly outDir: string; readonly marker: CompletionMarker };

/**
 * The CLI's entry to the converter: `tunepipe run --target local` (pass `repoRoot` and the
 * runner's `workDir`), the in-cluster `tunepipe convert --work` under the stage wrapper (pass
 * `inputsDir` and `workDir`), and standalone use (`outDir`: convert publishes and caches itself).
 * Validates the config, converts, and logs counts and paths. Bad input throws ConvertError
 * (render its `issues`, exit 1).
 */
export async function convertCommand(options: ConvertCommandOptions): Promise<ConvertCommandResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const parsed = parseConvertConfig(options.config);
  if (!parsed.ok) throw new ConvertError('convert config', parsed.issues);
  if ((options.outDir === undefined) === (options.workDir === undefined)) {
    throw new ConvertError('convert', [{ path: 'convertCommand', message: 'give exactly one of outDir (publish the result) and workDir (the stage wrapper publishes it)', code: 'convert.output' }]);
  }
  let inputsDir: string;
  let layout: InputLayout;
  if (options.repoRoot !== undefined) {
    inputsDir = join(options.repoRoot, 'datasets');
    layout = 'repo';
  } else if (options.inputsDir !== undefined) {
    inputsDir = options.inputsDir;
    layout = 'cluster';
  } else {
    throw new ConvertError('convert', [{ path: 'convertCommand', message: 'no inputs: pass repoRoot (local run) or inputsDir (in-cluster)', code: 'convert.no-inputs' }]);
  }
  const sources = parsed.config.sources.map((s) => s.name).join(', ');
  let result: ConvertResult;
  if (options.workDir !== undefined) {
    log(`convert: ${sources} → ${options.workDir}`);
    result = await runConvert(parsed.config, { inputsDir, layout, workDir: options.workDir, log });
  } else {
    const outDir = options.outDir!;
    const existing = await readCompletionMarker(outDir);
    if (existing && !options.force && (options.stage === undefined || existing.hash === options.stage.hash)) {
      log(`convert: already complete in ${outDir} (${existing.files} files), nothing to do`);
      return { cached: true, outDir, marker: existing };
    }
    if (existing) await rm(outDir, { recursive: true, force: true });
    log(`convert: ${sources} → ${outDir}`);
    result = await runConvert(parsed.config, { inputsDir, layout, outDir, log, ...(options.stage ? { stage: options.stage } : {}) });
  }
  for (const [name, file] of Object.entries(result.files)) log(`  ${join(result.dir, name)}  (${file.rows} ${name.endsWith('.json') ? 'entries' : 'rows'})`);
  return { cached: false, result };
}

/**
 * `tunepipe convert --config <file> --inputs <dir> (--work <dir> | --out <dir>)`: the convert Job's
 * entry point (`--work`, under the stage wrapper) and standalone use (`--out`). The stage identity
 * comes from the Job's environment (`TUNEPIPE_STAGE`, `TUNEPIPE_HASH`) when set.
 */
export async function convertFromConfigFile(options: {
  readonly configPath: string;
  readonly inputsDir: string;
  readonly outDir?: string;
  readonly workDir?: string;
  readonly stage?: StageIdentity;
  readonly force?: boolean;
  readonly log?: (line: string) => void;
}): Promise<ConvertCommandResult> {
  let text: string;
  try {
    text = await readFile(options.configPath, 'utf8');
  } catch (e) {
    throw new ConvertError('convert config', [{ path: options.configPath, message: `cannot read: ${(e as Error).message}`, fix: 'mount the stage ConfigMap and pass its config.json path', code: 'convert.config-missing' }]);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new ConvertError('convert config', [{ path: options.configPath, message: `not JSON: ${(e as Error).message}`, fix: 'regenerate it with `tunepipe synth`', code: 'convert.config-json' }]);
  }
  return convertCommand({
    config,
    inputsDir: options.inputsDir,
    ...(options.outDir !== undefined ? { outDir: options.outDir } : {}),
    ...(options.workDir !== undefined ? { workDir: options.workDir } : {}),
    ...(options.stage ? { stage: options.stage } : {}),
    ...(options.force !== undefined ? { force: options.force } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
}
