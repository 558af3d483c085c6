import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConvertConfig } from './config.ts';
import { runConvert, type ConvertResult, type InputLayout } from './convert.ts';
import { ConvertError } from './issues.ts';
import { readCompletionMarker, type CompletionMarker } from './publish.ts';

export interface ConvertCommandOptions {
  /** The convert stage's config: `CompiledStage.config` of the convert stage, or the Job's parsed JSON. */
  readonly config: unknown;
  /** Artifact folder to publish to (e.g. `.tunepipe/artifacts/<pipeline>/convert/<hash>` locally). */
  readonly outDir: string;
  /** Local run: inputs are read from `<repoRoot>/datasets/<source>/<file>`. */
  readonly repoRoot?: string;
  /** In-cluster run: the Job's inputs root (CLUSTER_INPUTS.root, `/inputs`). Ignored when repoRoot is given. */
  readonly inputsDir?: string;
  /** Stage identity for the completion marker and the cache check. @default { stage: 'convert', hash: sha256(config) } */
  readonly stage?: { readonly stage: string; readonly hash: string };
  /** Re-run even when `outDir` holds a completion marker for this hash. @default false */
  readonly force?: boolean;
  /** @default console.log */
  readonly log?: (line: string) => void;
}

export type ConvertCommandResult =
  | { readonly cached: false; readonly result: ConvertResult }
  | { readonly cached: true; readonly outDir: string; readonly marker: CompletionMarker };

/**
 * The CLI's entry to the converter, for both `tunepipe run <pipeline> --only convert` (pass
 * `repoRoot`) and the in-cluster `tunepipe convert` (pass `inputsDir`). Validates the config,
 * skips a stage that is already complete for the same hash, converts, and logs counts and paths.
 * Bad input throws ConvertError (render its `issues`, exit 1).
 */
export async function convertCommand(options: ConvertCommandOptions): Promise<ConvertCommandResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const parsed = parseConvertConfig(options.config);
  if (!parsed.ok) throw new ConvertError('convert config', parsed.issues);
  const existing = await readCompletionMarker(options.outDir);
  if (existing && !options.force && (options.stage === undefined || existing.hash === options.stage.hash)) {
    log(`convert: already complete in ${options.outDir} (${existing.files} files), nothing to do`);
    return { cached: true, outDir: options.outDir, marker: existing };
  }
  if (existing) await rm(options.outDir, { recursive: true, force: true });
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
  log(`convert: ${parsed.config.sources.map((s) => s.name).join(', ')} → ${options.outDir}`);
  const result = await runConvert(parsed.config, {
    inputsDir,
    layout,
    outDir: options.outDir,
    log,
    ...(options.stage ? { stage: options.stage } : {}),
  });
  for (const [name, file] of Object.entries(result.files)) log(`  ${join(result.outDir, name)}  (${file.rows} ${name.endsWith('.json') ? 'entries' : 'rows'})`);
  return { cached: false, result };
}

/**
 * `tunepipe convert --config <file> --inputs <dir> --out <dir>`: the convert Job's entry point.
 * The stage identity comes from the Job's environment (`TUNEPIPE_STAGE`, `TUNEPIPE_HASH`) when set.
 */
export async function convertFromConfigFile(options: {
  readonly configPath: string;
  readonly inputsDir: string;
  readonly outDir: string;
  readonly stage?: { readonly stage: string; readonly hash: string };
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
    outDir: options.outDir,
    ...(options.stage ? { stage: options.stage } : {}),
    ...(options.force !== undefined ? { force: options.force } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
}
