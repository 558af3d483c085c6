import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, relative, isAbsolute } from 'node:path';
import {
  ARTIFACTS_MOUNT,
  COMPLETION_MARKER,
  artifactPath,
  evaluateGate,
  METRIC_ALIASES,
  type CompiledPipeline,
  type CompiledStage,
  type Gate,
  type GateReport,
  type GateRule,
  type Issue,
  type MetricResults,
  zodParse,
  VLLM_DEFAULT_PORT,
  parseMarker,
  workDirOf,
} from '@tunepipe/core';
import { z } from 'zod';
import { redactText } from '../redact.ts';
import { lossCurves, parsePythonJson, readGeneratedPredictions, readPredictResults, readResultsFile, readTrainerLog } from '../readers.ts';
import { POST_DEPLOY_FILE } from '../verify.ts';
import type {
  EvalModelKind,
  ReportArtifact,
  ReportEndpoint,
  ReportEvaluation,
  ReportShard,
  ReportStage,
  ReportTraining,
  RunReportData,
  StageStatus,
} from './data.ts';
import { renderReport } from './render.ts';

/** One stage's run as the runner saw it (the report's timeline and cache hits). */
export interface StageRunRecord {
  readonly stage: string;
  readonly status: StageStatus;
  /** ISO timestamps. */
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly durationSeconds?: number;
  /** Why a failed stage failed, as the runner says it (`gate failed: bleu4 18.2 < min 20`). */
  readonly reason?: string;
}

/** The gate of an evaluate stage and the evaluate stage it compares with. */
export interface StageGateSpec {
  readonly gate: Gate | readonly GateRule[];
  /** Name of the baseline evaluate stage. */
  readonly baseline?: string;
}

export interface GatherOptions {
  readonly compiled: CompiledPipeline;
  /** Local folder with the artifacts volume's content (what pods see at `/artifacts`). */
  readonly artifactsDir: string;
  /** The runner's records; without them statuses come from completion markers and durations from LLaMA-Factory's results. */
  readonly runs?: readonly StageRunRecord[];
  /** Gates by evaluate stage name; a `gate` field on the compiled stage is used when this has none. */
  readonly gates?: Readonly<Record<string, StageGateSpec>>;
  /** @default new Date() */
  readonly now?: Date;
}

export interface ReportCommandOptions extends GatherOptions {
  /** Where report.html and report.md go. @default `<artifactsDir>/<pipeline>/report` */
  readonly outDir?: string;
}

export interface ReportCommandResult {
  readonly htmlPath: string;
  readonly markdownPath: string;
  readonly data: RunReportData;
}

const PostDeploySchema = z.looseObject({ passed: z.boolean(), lines: z.array(z.string()) });

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function folderSize(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return { bytes, files };
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = await folderSize(path);
      bytes += inner.bytes;
      files += inner.files;
    } else if (entry.isFile()) {
      bytes += (await stat(path)).size;
      files++;
    }
  }
  return { bytes, files };
}

async function weightFiles(dir: string): Promise<ReportShard[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    const shards = await Promise.all(
      entries
        .filter((e) => e.isFile() && /\.(safetensors|bin)$/.test(e.name))
        .map(async (e) => ({ name: e.name, bytes: (await stat(join(dir, e.name))).size })),
    );
    return shards.sort((a, b) => a.name.localeCompare(b.name));
  } catch {
    return [];
  }
}

/** Which model an evaluate stage scored, from the kinds of the stages it reads. */
function evaluatedModel(stage: CompiledStage, byName: ReadonlyMap<string, CompiledStage>): EvalModelKind {
  const kinds = new Set(stage.dependsOn.map((d) => byName.get(d)?.kind));
  if (kinds.has('quantize')) return 'gptq';
  if (kinds.has('merge')) return 'merged';
  if (kinds.has('sft')) return 'adapter';
  return 'base';
}

/** The gate as the compiler attaches it to an evaluate stage: rules and the baseline's results path in the pod. */
const CompiledGateSchema = z.object({ rules: z.array(z.looseObject({ metric: z.string(), comparison: z.string(), value: z.number() })), baselineResults: z.string().nullable() });
const GateReportSchema = z.looseObject({
  passed: z.boolean(),
  summary: z.string(),
  verdicts: z.array(z.looseObject({ passed: z.boolean(), message: z.string(), rule: z.looseObject({ metric: z.string(), comparison: z.string(), value: z.number() }) })),
});

type GateSource = { readonly spec: StageGateSpec } | { readonly rules: readonly GateRule[]; readonly baselineResults: string | null };

/** What LLaMA-Factory's prediction left in a folder: its scores and its generated rows. */
async function readPredictions(folder: string) {
  return {
    predict: await readPredictResults(join(folder, 'predict_results.json')),
    rows: await readGeneratedPredictions(join(folder, 'generated_predictions.jsonl')),
  };
}

/** How long the prediction took, as LLaMA-Factory recorded it. */
function runtimeOf(results: Readonly<Record<string, number>>): { seconds: number; source: string } | undefined {
  const seconds = results['predict_runtime'];
  return seconds !== undefined ? { seconds, source: 'predict_results.json' } : undefined;
}

/** An evaluate stage's scores as the report shows them. */
function evaluationOf(stage: CompiledStage, byName: ReadonlyMap<string, CompiledStage>, metrics: Readonly<Record<string, number>>, rows: readonly unknown[] | undefined): ReportEvaluation {
  return { model: evaluatedModel(stage, byName), stage: stage.name, method: 'LLaMA-Factory predict', ...(rows ? { samples: rows.length } : {}), metrics };
}

function gateOf(stage: CompiledStage, options: GatherOptions): GateSource | undefined {
  const fromOptions = options.gates?.[stage.name];
  if (fromOptions) return { spec: fromOptions };
  const onStage: unknown = (stage as CompiledStage & { readonly gate?: unknown }).gate;
  const compiledGate = CompiledGateSchema.safeParse(onStage);
  if (compiledGate.success) return { rules: compiledGate.data.rules as unknown as GateRule[], baselineResults: compiledGate.data.baselineResults };
  if (onStage && typeof onStage === 'object' && 'gate' in onStage) return { spec: onStage as StageGateSpec };
  return undefined;
}

function servedModelNameOf(stage: CompiledStage, pipeline: string): string {
  const args = stage.config['args'];
  if (Array.isArray(args)) {
    const at = args.indexOf('--served-model-name');
    if (at >= 0 && typeof args[at + 1] === 'string') return args[at + 1] as string;
  }
  return pipeline;
}

/** The `gate.json` the evaluate pod's gate step wrote, when there is one. */
async function readEnforcedGate(dir: string | undefined, problems: Issue[]): Promise<GateReport | undefined> {
  if (!dir) return undefined;
  const file = join(dir, 'gate.json');
  if (!(await exists(file))) return undefined;
  try {
    const parsed = zodParse(GateReportSchema, parsePythonJson(await readFile(file, 'utf8')), { area: 'report.gate-file', pathPrefix: file, fix: 're-run the evaluate stage' });
    if (parsed.ok) return parsed.value as unknown as GateReport;
    problems.push(...parsed.issues);
  } catch (error) {
    problems.push({ path: file, code: 'report.gate-file.json', message: `not JSON (${(error as Error).message})`, fix: 're-run the evaluate stage' });
  }
  return undefined;
}

const SHORT_METRIC: ReadonlyMap<string, string> = new Map(Object.entries(METRIC_ALIASES).map(([alias, key]) => [key, alias]));
const shortNumber = (n: number) => String(Number(n.toFixed(2)));

/**
 * A failed gate in one line, the way the runner headlines the failed stage (`tunepipe gate` and
 * the runner say it the same way): `gate failed: bleu4 38.77 < min 40`.
 */
export function gateVerdictLine(report: GateReport): string {
  if (report.passed) return report.summary;
  const words = (v: GateReport['verdicts'][number]) => {
    const metric = SHORT_METRIC.get(v.rule.metric) ?? v.rule.metric;
    if (v.actual === undefined) return `${metric} missing from the results`;
    const lower = v.rule.comparison === 'min' || v.rule.comparison === 'minOverBaseline';
    if (v.rule.comparison === 'min' || v.rule.comparison === 'max') return `${metric} ${shortNumber(v.actual)} ${lower ? '<' : '>'} ${v.rule.comparison} ${shortNumber(v.rule.value)}`;
    const offset = `${v.rule.value < 0 ? '−' : '+'} ${shortNumber(Math.abs(v.rule.value))}`;
    return v.baseline === undefined ? `${metric} ${shortNumber(v.actual)}, no baseline to compare with (baseline ${offset})` : `${metric} ${shortNumber(v.actual)} ${lower ? '<' : '>'} baseline ${shortNumber(v.baseline)} ${offset}`;
  };
  return `gate failed: ${report.verdicts.filter((v) => !v.passed).map(words).join('; ')}`;
}

/** Reads what a run left on the artifacts volume into `RunReportData`; problems are collected, not thrown. */
export async function gatherRunReport(options: GatherOptions): Promise<RunReportData> {
  const { compiled, artifactsDir } = options;
  const problems: Issue[] = [];
  const byName = new Map(compiled.stages.map((s) => [s.name, s]));
  const runs = new Map((options.runs ?? []).map((r) => [r.stage, r]));
  const local = (podPath: string) => {
    const rel = relative(ARTIFACTS_MOUNT, podPath);
    return rel.startsWith('..') || isAbsolute(rel) ? undefined : join(artifactsDir, rel);
  };

  const stages: ReportStage[] = [];
  const artifacts: ReportArtifact[] = [];
  const evaluations: ReportEvaluation[] = [];
  const results = new Map<string, MetricResults>();
  let training: ReportTraining | undefined;
  let endpoint: ReportEndpoint | undefined;
  const gateFailed = new Set<string>();

  for (const stage of compiled.stages) {
    const run = runs.get(stage.name);
    let complete = false;
    let duration: { seconds: number; source: string } | undefined;
    if (run?.durationSeconds !== undefined) duration = { seconds: run.durationSeconds, source: 'runner' };
    else if (run?.startedAt && run.finishedAt) {
      const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
      if (Number.isFinite(seconds)) duration = { seconds, source: 'runner' };
    }

    const dir = stage.artifactPath ? local(stage.artifactPath) : undefined;
    if (stage.artifactPath && dir === undefined) {
      problems.push({ path: `stages.${stage.name}.artifactPath`, code: 'report.outside-artifacts', message: `not under ${ARTIFACTS_MOUNT}`, value: stage.artifactPath });
    }
    if (dir) {
      const markerPath = join(dir, COMPLETION_MARKER);
      if (await exists(markerPath)) {
        const marker = parseMarker(await readFile(markerPath, 'utf8'));
        if (!marker) {
          problems.push({ path: markerPath, code: 'report.marker', message: 'is not a completion marker ({"stage","hash","files"}): a partial write or another tool\'s file', fix: 're-run the stage' });
        } else if (marker.hash !== stage.hash) {
          problems.push({ path: markerPath, code: 'report.marker-hash', message: `marker is for hash ${marker.hash}, the stage is ${stage.hash}`, value: marker.hash, fix: 're-run the stage' });
        } else complete = true;
      }
      if (await exists(dir)) {
        const size = await folderSize(dir);
        const shards = stage.kind === 'merge' || stage.kind === 'quantize' ? await weightFiles(dir) : [];
        artifacts.push({
          stage: stage.name,
          kind: stage.kind,
          path: stage.artifactPath!,
          complete,
          ...size,
          ...(shards.length > 0 ? { shards } : {}),
        });
      }

      if (complete && stage.kind === 'sft') {
        const summaryFile = (await exists(join(dir, 'all_results.json'))) ? 'all_results.json' : 'train_results.json';
        const summary = await readResultsFile(join(dir, summaryFile));
        problems.push(...summary.issues);
        if (!duration && summary.value?.['train_runtime'] !== undefined) duration = { seconds: summary.value['train_runtime'], source: summaryFile };
        if (!training) {
          const log = await readTrainerLog(join(dir, 'trainer_log.jsonl'));
          problems.push(...log.issues);
          if (log.value) {
            const curves = lossCurves(log.value);
            training = { stage: stage.name, ...curves, summary: summary.value ?? {} };
          }
        }
      }

      // A failed gate leaves no completion marker: its scores and verdict stay in the work folder.
      if (!complete && stage.kind === 'evaluate') {
        const work = stage.run.mode === 'rename' ? workDirOf(dir) : dir;
        const verdict = await readEnforcedGate(work, problems);
        if (verdict) {
          const { predict, rows } = await readPredictions(work);
          problems.push(...predict.issues);
          if (predict.value) {
            results.set(stage.name, predict.value);
            duration ??= runtimeOf(predict.value);
          }
          evaluations.push({ ...evaluationOf(stage, byName, predict.value ?? {}, rows.value), gate: verdict });
          if (!verdict.passed) gateFailed.add(stage.name);
        }
      }

      if (complete && stage.kind === 'evaluate') {
        const { predict, rows } = await readPredictions(dir);
        problems.push(...predict.issues, ...rows.issues);
        if (predict.value) {
          results.set(stage.name, predict.value);
          duration ??= runtimeOf(predict.value);
          evaluations.push(evaluationOf(stage, byName, predict.value, rows.value));
        }
      }
    }

    if (stage.kind === 'serve') {
      // The Deployment and its Service share the serve stage's resource name.
      const name = stage.resourceName;
      const namespace = compiled.namespace;
      const port = stage.run.port ?? VLLM_DEFAULT_PORT;
      const modelPath = stage.config['model'];
      const servedKind = stage.dependsOn.map((d) => byName.get(d)?.kind).find((k) => k === 'quantize' || k === 'merge');
      const checkDir = local(artifactPath(compiled.pipeline, stage.name, stage.hash))!;
      let postDeploy: ReportEndpoint['postDeploy'];
      const checkFile = join(checkDir, POST_DEPLOY_FILE);
      if (await exists(checkFile)) {
        try {
          const parsed = zodParse(PostDeploySchema, parsePythonJson(await readFile(checkFile, 'utf8')), { area: 'report.post-deploy', pathPrefix: checkFile, fix: 're-run tunepipe verify with --out' });
          // Written redacted by `tunepipe verify`; redacted again in case another writer did not.
          if (parsed.ok) postDeploy = { passed: parsed.value.passed, lines: parsed.value.lines.map((line) => redactText(line)) };
          else problems.push(...parsed.issues);
        } catch (error) {
          problems.push({ path: checkFile, code: 'report.post-deploy.json', message: `not JSON (${(error as Error).message})`, fix: 're-run tunepipe verify with --out' });
        }
        const served = await readPredictResults(join(checkDir, 'predict_results.json'));
        const rows = await readGeneratedPredictions(join(checkDir, 'generated_predictions.jsonl'));
        if (served.value) {
          evaluations.push({
            model: 'served',
            stage: stage.name,
            method: `vLLM /v1/chat/completions${servedKind === 'quantize' ? ' (GPTQ weights)' : servedKind === 'merge' ? ' (merged weights)' : ''}`,
            ...(rows.value ? { samples: rows.value.length } : {}),
            metrics: served.value,
          });
        } else problems.push(...served.issues.filter((i) => i.code !== 'file.missing'));
      }
      endpoint = {
        serviceName: name,
        namespace,
        port,
        url: `http://${name}.${namespace}.svc.cluster.local:${port}/v1`,
        servedModelName: servedModelNameOf(stage, compiled.pipeline),
        ...(typeof modelPath === 'string' ? { modelPath } : {}),
        ...(postDeploy ? { postDeploy } : {}),
      };
    }

    const status: StageStatus = run?.status ?? (complete ? 'done' : gateFailed.has(stage.name) ? 'failed' : stage.kind === 'serve' && endpoint?.postDeploy ? 'done' : 'pending');
    const failedGate = gateFailed.has(stage.name) ? evaluations.find((e) => e.stage === stage.name)?.gate : undefined;
    const reason = run?.reason ?? (failedGate ? gateVerdictLine(failedGate) : undefined);
    stages.push({
      name: stage.name,
      kind: stage.kind,
      hash: stage.hash,
      status,
      ...(status === 'failed' && reason ? { reason } : {}),
      cacheHit: status === 'cached',
      ...(run?.startedAt ? { startedAt: run.startedAt } : {}),
      ...(duration ? { durationSeconds: duration.seconds, durationSource: duration.source } : {}),
      expectedSeconds: stage.expectedSeconds,
      gpus: stage.gpus,
      ...(stage.gpuType ? { gpuType: stage.gpuType } : {}),
    });
  }

  // Gates are judged once every evaluate stage's results are known (a baseline may come later in order).
  // The verdict the evaluate pod enforced (its gate.json) is shown as is, unless the caller passes gates.
  const judged: ReportEvaluation[] = [];
  for (const e of evaluations) {
    const stage = byName.get(e.stage);
    if (!stage || stage.kind !== 'evaluate' || e.gate) {
      judged.push(e);
      continue;
    }
    const enforced = stage.artifactPath && !options.gates?.[stage.name] ? await readEnforcedGate(local(stage.artifactPath), problems) : undefined;
    if (enforced) {
      judged.push({ ...e, gate: enforced });
      continue;
    }
    const source = gateOf(stage, options);
    if (!source) {
      judged.push(e);
      continue;
    }
    let baseline: MetricResults | undefined;
    if ('spec' in source) {
      baseline = source.spec.baseline ? results.get(source.spec.baseline) : undefined;
      if (source.spec.baseline && !baseline) {
        problems.push({ path: `stages.${e.stage}.gate`, code: 'report.no-baseline', message: `no results from baseline stage '${source.spec.baseline}'`, fix: 'run the baseline evaluate stage' });
      }
    } else if (source.baselineResults) {
      const file = local(source.baselineResults);
      const read = file ? await readPredictResults(file) : undefined;
      if (read) problems.push(...read.issues);
      baseline = read?.value;
    }
    judged.push({ ...e, gate: evaluateGate('spec' in source ? source.spec.gate : source.rules, e.metrics, baseline) });
  }

  return {
    pipeline: compiled.pipeline,
    namespace: compiled.namespace,
    generatedAt: (options.now ?? new Date()).toISOString(),
    stages,
    ...(training ? { training } : {}),
    evaluations: judged,
    artifacts,
    ...(endpoint ? { endpoint } : {}),
    problems,
  };
}

/**
 * `tunepipe report <pipeline>`: gathers the run from the artifacts folder and writes
 * `report.html` (self-contained) and `report.md` into `outDir`.
 */
export async function reportCommand(options: ReportCommandOptions): Promise<ReportCommandResult> {
  const data = await gatherRunReport(options);
  const { html, markdown } = renderReport(data);
  const outDir = options.outDir ?? join(options.artifactsDir, options.compiled.pipeline, 'report');
  await mkdir(outDir, { recursive: true });
  const htmlPath = join(outDir, 'report.html');
  const markdownPath = join(outDir, 'report.md');
  await writeFile(htmlPath, html);
  await writeFile(markdownPath, markdown);
  return { htmlPath, markdownPath, data };
}
