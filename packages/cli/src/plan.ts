import {
  DEFAULT_HEADROOM,
  formatIssues,
  formatPipelinePlan,
  formatStageExplain,
  formatTable,
  PLAN_WIDTH,
  summarizePlans,
  wrapBlock,
  type CompiledPipeline,
  type Issue,
  type MemoryBreakdown,
  type PipelineResourcePlan,
  type PlanOptions,
  type StageDetails,
  type TableColumn,
} from '@tunepipe/core';

export interface RenderPlanOptions extends PlanOptions {
  /** Every column, nothing shortened or wrapped (`--wide`). */
  readonly wide?: boolean;
}

/** The deadline the stage's Job carries (its own plus the longest wait for its inputs), if it has a Job. */
function jobDeadline(stage: CompiledPipeline['stages'][number]): number | undefined {
  const job = stage.objects.find((o) => o.kind === 'Job') as { spec?: { activeDeadlineSeconds?: number } } | undefined;
  return job?.spec?.activeDeadlineSeconds;
}

/**
 * The stage graph of a compiled pipeline, then the planner's memory, time and cost per stage, in
 * one table style. Fits PLAN_WIDTH columns; `wide` shows every column in full instead.
 */
export function renderPlan(compiled: CompiledPipeline, warnings: readonly Issue[] = [], options: RenderPlanOptions = {}): string {
  const wide = options.wide === true;
  const width = wide ? undefined : PLAN_WIDTH;
  const columns: TableColumn[] = [
    { header: 'stage' },
    { header: 'kind' },
    { header: 'after', flex: true },
    ...(wide ? [{ header: 'image' }] : []),
    { header: 'hash' },
    ...(wide ? [{ header: 'artifact' }] : []),
    { header: 'outputs', flex: true },
  ];
  const rows = compiled.stages.map((stage) => [
    stage.name,
    stage.kind,
    stage.dependsOn.join(', ') || '-',
    ...(wide ? [stage.image] : []),
    stage.hash.slice(0, 8),
    ...(wide ? [stage.artifactPath ?? `svc/${stage.resourceName}`] : []),
    stage.expectedOutputs.join('\n'),
  ]);
  const lines = [
    `pipeline ${compiled.pipeline} (namespace ${compiled.namespace}): ${compiled.stages.length} stages, ${compiled.objects.length} objects`,
    formatTable(columns, rows, width === undefined ? {} : { width }),
    '',
    formatPipelinePlan(summarizePlans(compiled.stages.map((s) => s.estimate), options), { wide }),
  ];
  if (warnings.length > 0) {
    const text = formatIssues(warnings);
    lines.push('', 'warnings:', width === undefined ? text : wrapBlock(text, width));
  }
  return lines.join('\n');
}

/** `tunepipe plan <pipeline> --explain <stage>`: every term the planner added up for one stage. */
export function renderExplain(compiled: CompiledPipeline, stageName: string, options: RenderPlanOptions = {}): string {
  const stage = compiled.stages.find((s) => s.name === stageName);
  if (!stage) throw new Error(`internal: no stage ${stageName} in ${compiled.pipeline}`);
  const header = `pipeline ${compiled.pipeline}, stage ${stage.name}: hash ${stage.hash.slice(0, 8)}, image ${stage.image}`;
  return [
    options.wide ? header : wrapBlock(header, PLAN_WIDTH),
    '',
    formatStageExplain(stage.estimate, { wide: options.wide === true, headroom: options.headroom ?? DEFAULT_HEADROOM, ...(jobDeadline(stage) !== undefined ? { jobDeadlineSeconds: jobDeadline(stage)! } : {}) }),
  ].join('\n');
}

/**
 * `tunepipe plan --json`: one object per pipeline, for tools. The shape is versioned by `schema`;
 * within a version fields are only ever added. Bytes are bytes, times seconds, money USD.
 */
export interface PlanJson {
  readonly schema: 'tunepipe.plan/v1';
  readonly pipelines: readonly PipelinePlanJson[];
}

export interface PipelinePlanJson {
  readonly pipeline: string;
  readonly namespace: string;
  readonly cloud: string;
  /** Share of GPU memory kept free beyond the estimate (also the error band of `planner.tight-fit`). */
  readonly headroom: number;
  readonly objects: number;
  readonly stages: readonly StagePlanJson[];
  /** The planner's totals, as it computes them (costComplete is false when a GPU stage had no price). */
  readonly totals: PipelineResourcePlan['totals'];
  /** Warnings of check() and the planner (errors stop `plan` before it prints). */
  readonly warnings: readonly Issue[];
}

export interface StagePlanJson {
  readonly name: string;
  readonly kind: string;
  readonly dependsOn: readonly string[];
  readonly image: string;
  readonly hash: string;
  /** Folder on the artifacts volume; null for serve. */
  readonly artifactPath: string | null;
  readonly resourceName: string;
  readonly outputs: readonly string[];
  /** GPU catalogue id, null on CPU. */
  readonly gpuType: string | null;
  readonly gpus: number;
  readonly placement: 'auto' | 'explicit' | 'cpu';
  readonly memory: {
    /** What the stage needs per GPU, as placement compared it; null on CPU. */
    readonly requiredGpuBytes: number | null;
    /** What it may use per GPU (after headroom, or vLLM's budget); null on CPU. */
    readonly usableGpuBytes: number | null;
    /** Named terms per GPU (`planner` README documents each). */
    readonly gpu: MemoryBreakdown | null;
    readonly host: MemoryBreakdown | null;
    readonly disk: MemoryBreakdown | null;
  };
  readonly expectedSeconds: number;
  /** Seconds per step (startup, download, train, …); they add up to expectedSeconds. */
  readonly secondsBreakdown: Readonly<Record<string, number>>;
  /** The Job's activeDeadlineSeconds (its own allowance plus the longest wait for its inputs); null for serve. */
  readonly deadlineSeconds: number | null;
  readonly gpuHours: number;
  readonly costUsd: number | null;
  readonly usdPerHour: number | null;
  /** Kind-specific facts (sft: `paramsLogLine`, trainable and all params, schedule; merge: shards; …). */
  readonly details: StageDetails;
  readonly warnings: readonly string[];
}

export function planJson(compiled: CompiledPipeline, warnings: readonly Issue[] = [], options: PlanOptions = {}): PipelinePlanJson {
  const plan = summarizePlans(compiled.stages.map((s) => s.estimate), options);
  return {
    pipeline: compiled.pipeline,
    namespace: compiled.namespace,
    cloud: plan.cloud,
    headroom: plan.headroom,
    objects: compiled.objects.length,
    stages: compiled.stages.map((stage) => {
      const e = stage.estimate;
      return {
        name: stage.name,
        kind: stage.kind,
        dependsOn: stage.dependsOn,
        image: stage.image,
        hash: stage.hash,
        artifactPath: stage.artifactPath ?? null,
        resourceName: stage.resourceName,
        outputs: stage.expectedOutputs,
        gpuType: e.gpuType ?? null,
        gpus: e.gpus,
        placement: e.placement,
        memory: { requiredGpuBytes: e.requiredGpuBytes ?? null, usableGpuBytes: e.usableGpuBytes ?? null, gpu: e.gpuMemory ?? null, host: e.hostMemory ?? null, disk: e.disk ?? null },
        expectedSeconds: e.expectedSeconds,
        secondsBreakdown: e.secondsBreakdown,
        deadlineSeconds: jobDeadline(stage) ?? null,
        gpuHours: e.gpuHours,
        costUsd: e.costUsd,
        usdPerHour: e.usdPerHour,
        details: e.details,
        warnings: e.warnings,
      };
    }),
    totals: plan.totals,
    warnings,
  };
}
