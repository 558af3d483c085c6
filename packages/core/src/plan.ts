import type { ResolvedContext } from './context.ts';
import { convertInputSources, modelSourceOf, type Pipeline, type StageSpec } from './dsl.ts';
import { requireArchitecture } from './model/source.ts';
import type { EvaluableModel, Dataset } from './handles.ts';
import { checkpointCadenceIssues, planStage, type StagePlanInput, type StageResourcePlan, type PlanOptions } from './planner/plan.ts';
import type { EvaluatedModel } from './planner/evaluate.ts';
import type { SftPlanArgs } from './planner/sft.ts';
import { readServeArgs } from './planner/serve.ts';
import { vllmFlagValues } from './vllm.ts';
import type { Issue } from './issues.ts';

/** Placement, size and timing of one stage: what the compiler writes into its pod spec. */
export interface StagePlan {
  readonly gpus: number;
  readonly gpuType?: string;
  readonly cpu: string;
  readonly memory: string;
  /** Size of the memory-backed /dev/shm (NCCL and vLLM workers need more than the 64 MiB default). */
  readonly shmSize: string;
  readonly expectedSeconds: number;
  /** Job `activeDeadlineSeconds` / Deployment `progressDeadlineSeconds`. */
  readonly deadlineSeconds: number;
  readonly expectedOutputs: readonly string[];
  /** The planner's full answer: memory terms, GPU-hours, cost, warnings. */
  readonly resources: StageResourcePlan;
}

const GiB = 2 ** 30;

/** What the planner needs to know about a split of convert's output. */
function splitRows(pipeline: Pipeline, data: Dataset, ctx: ResolvedContext): { rows: number; meanTokens?: number; maxTokens?: number } | undefined {
  const convert = pipeline.stages.find((s) => s.name === data.stage);
  if (convert?.kind !== 'convert') return undefined;
  const o = convert.options;
  let rows = 0;
  let tokens = 0;
  let maxTokens = 0;
  for (const name of o.sources) {
    const stats = ctx.datasets[name]?.stats;
    if (!stats) return undefined;
    const kept = Math.min(stats.rows, o.maxSamples ?? Infinity);
    const held = (size: number | undefined, fallback: number) => {
      const v = size ?? fallback;
      return v < 1 ? Math.round(kept * v) : Math.min(kept, v);
    };
    const validation = held(o.split?.validation, 0.02);
    const test = held(o.split?.test, 0.1);
    const share = data.split === 'validation' ? validation : data.split === 'test' ? test : Math.max(0, kept - validation - test);
    rows += share;
    tokens += share * stats.meanTokens;
    maxTokens = Math.max(maxTokens, stats.maxTokens);
  }
  return rows > 0 ? { rows, meanTokens: tokens / rows, maxTokens } : { rows: 0 };
}

function evaluatedModel(model: EvaluableModel, pipeline: Pipeline): EvaluatedModel {
  switch (model.kind) {
    case 'base-model':
    case 'merged-model':
      return { format: 'dense' };
    case 'quantized-model':
      return { format: 'gptq', bits: model.bits };
    case 'adapter': {
      const sft = pipeline.stages.find((s) => s.name === model.stage);
      const args = sft?.kind === 'sft' ? { ...sft.options.extraArgs, ...sft.options.args } : {};
      return { format: 'adapter', rank: typeof args['lora_rank'] === 'number' ? args['lora_rank'] : 8, target: typeof args['lora_target'] === 'string' ? args['lora_target'] : 'all' };
    }
  }
}

function resourcesOf(spec: StageSpec) {
  if (spec.kind === 'fetch-model' || !spec.options.resources) return {};
  const r = spec.options.resources;
  return { resources: { ...(r.gpus !== undefined ? { gpus: r.gpus } : {}), ...(r.gpuType !== undefined ? { gpuType: r.gpuType } : {}) } };
}

/** The planner's view of a stage: plain numbers taken from the pipeline and its data. */
export function plannerInput(pipeline: Pipeline, spec: StageSpec, ctx: ResolvedContext): StagePlanInput {
  const common = { name: spec.name, path: `stages.${spec.name}`, ...resourcesOf(spec) };
  switch (spec.kind) {
    case 'fetch-model':
      return { ...common, kind: 'fetch-model', architecture: requireArchitecture({ source: modelSourceOf(spec.options), ...(spec.options.architecture ? { architecture: spec.options.architecture } : {}), stage: spec.name }, ctx) };
    case 'convert': {
      const sources = convertInputSources(spec.options).map((n) => ctx.datasets[n]);
      const rows = sources.every((s) => s?.stats) ? sources.reduce((sum, s) => sum + s!.stats!.rows, 0) : undefined;
      const bytes = sources.reduce((sum, s) => sum + (s?.files.reduce((b, f) => b + f.size, 0) ?? 0), 0);
      return { ...common, kind: 'convert', ...(rows !== undefined ? { rows } : {}), bytes };
    }
    case 'sft': {
      const o = spec.options;
      const data = splitRows(pipeline, o.train, ctx);
      return {
        ...common,
        kind: 'sft',
        architecture: requireArchitecture(o.model, ctx),
        args: { ...o.extraArgs, ...o.args } as SftPlanArgs,
        data: data
          ? { rows: data.rows, ...(data.meanTokens !== undefined ? { meanTokensPerRow: data.meanTokens } : {}), ...(data.maxTokens ? { maxTokensPerRow: data.maxTokens } : {}) }
          : { rows: o.args?.max_samples ?? 1000 },
      };
    }
    case 'merge': {
      const o = spec.options;
      const sft = pipeline.stages.find((s) => s.name === o.adapter.stage);
      const sftArgs = sft?.kind === 'sft' ? { ...sft.options.extraArgs, ...sft.options.args } : {};
      return {
        ...common,
        kind: 'merge',
        architecture: requireArchitecture(o.adapter.base, ctx),
        adapter: { ...(typeof sftArgs['lora_rank'] === 'number' ? { rank: sftArgs['lora_rank'] } : {}), ...(typeof sftArgs['lora_target'] === 'string' ? { target: sftArgs['lora_target'] } : {}) },
        args: { ...o.args },
      };
    }
    case 'quantize':
      return { ...common, kind: 'quantize', architecture: requireArchitecture(spec.options.model.base, ctx), args: { ...spec.options.args } };
    case 'evaluate': {
      const o = spec.options;
      const data = splitRows(pipeline, o.data, ctx);
      const architecture = requireArchitecture(o.model.kind === 'base-model' ? o.model : o.model.base, ctx);
      return {
        ...common,
        kind: 'evaluate',
        architecture,
        model: evaluatedModel(o.model, pipeline),
        args: { ...o.args },
        data: { rows: data?.rows ?? o.args?.max_samples ?? 100, ...(data?.meanTokens !== undefined ? { meanPromptTokens: data.meanTokens } : {}) },
      };
    }
    case 'serve': {
      const o = spec.options;
      const flags = Object.fromEntries(vllmFlagValues(pipeline.name, o, o.resources?.gpus ?? 1));
      return {
        ...common,
        kind: 'serve',
        architecture: requireArchitecture(o.model.base, ctx),
        weights: o.model.kind === 'quantized-model' ? { format: 'gptq', bits: o.model.bits } : { format: 'dense' },
        args: readServeArgs(flags),
        replicas: o.replicas ?? 1,
      };
    }
  }
}

function cpuFor(spec: StageSpec, gpus: number): string {
  if (spec.kind !== 'fetch-model' && spec.options.resources?.cpu) return spec.options.resources.cpu;
  if (spec.kind === 'convert' || spec.kind === 'fetch-model') return '1';
  return gpus > 0 ? String(4 * gpus) : '4';
}

function memoryFor(spec: StageSpec, plan: StageResourcePlan): string {
  if (spec.kind !== 'fetch-model' && spec.options.resources?.memory) return spec.options.resources.memory;
  const bytes = plan.hostMemory?.totalBytes ?? 0;
  // Requests below these floors starve the Python process of page cache and tokenizer memory.
  const floor = spec.kind === 'convert' ? 0.5 : spec.kind === 'fetch-model' ? 2 : 8;
  return `${Math.max(floor, Math.ceil(bytes / GiB))}Gi`;
}

const QUANTITY_FACTORS: Readonly<Record<string, number>> = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
};

/** Bytes of a Kubernetes memory quantity (`8Gi`, `16000Mi`, `2e9`); undefined when it is not one. */
export function memoryQuantityBytes(quantity: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(quantity.trim());
  if (!m) return undefined;
  return Number(m[1]) * QUANTITY_FACTORS[m[2] ?? '']!;
}

/**
 * Only GPU pods mount a memory-backed /dev/shm (NCCL, vLLM workers, DataLoader workers): 8 GiB per
 * GPU, but at most half the container's memory limit. Pages written to a memory-backed emptyDir
 * are charged to the pod's memory cgroup, so a size limit at or above the memory limit caps
 * nothing (the OOM killer strikes first); half leaves the other half to the process itself.
 */
export function shmFor(gpus: number, memoryLimit: string): string {
  const limitBytes = memoryQuantityBytes(memoryLimit);
  const wantedMi = Math.max(2, 8 * gpus) * 1024;
  const halfMi = limitBytes === undefined ? 1024 : Math.floor(limitBytes / 2 / 1024 ** 2);
  const mi = Math.max(1, Math.min(wantedMi, halfMi));
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
}

export function planOptions(ctx: ResolvedContext): PlanOptions {
  return { cloud: ctx.cloud };
}

/**
 * An SFT stage that would write no checkpoint before its end gets a warning (`sft.no-checkpoint`):
 * the planner knows the optimizer steps the Trainer will run, check() reports it with the rest.
 */
function withCheckpointCadence(spec: StageSpec, resources: StageResourcePlan): StageResourcePlan {
  if (spec.kind !== 'sft' || resources.details.kind !== 'sft') return resources;
  const args: Record<string, unknown> = { ...spec.options.extraArgs, ...spec.options.args };
  // Hugging Face's default, as the planner resolves it.
  const saveSteps = typeof args['save_steps'] === 'number' && args['save_steps'] > 0 ? args['save_steps'] : 500;
  const { optimizerSteps, trainRows } = resources.details.schedule;
  const cadence = checkpointCadenceIssues(saveSteps, optimizerSteps, trainRows, `stages.${spec.name}`);
  return cadence.length === 0 ? resources : { ...resources, issues: [...resources.issues, ...cadence] };
}

/** Plans every stage with the resource planner; placement the user chose explicitly wins. */
export function planStages(pipeline: Pipeline, ctx: ResolvedContext): Map<string, StagePlan> {
  const out = new Map<string, StagePlan>();
  for (const spec of pipeline.stages) {
    const resources = withCheckpointCadence(spec, planStage(plannerInput(pipeline, spec, ctx), planOptions(ctx)));
    out.set(spec.name, {
      gpus: resources.gpus,
      ...(resources.gpuType ? { gpuType: resources.gpuType } : {}),
      cpu: cpuFor(spec, resources.gpus),
      memory: memoryFor(spec, resources),
      shmSize: shmFor(resources.gpus, memoryFor(spec, resources)),
      expectedSeconds: Math.ceil(resources.expectedSeconds),
      deadlineSeconds: Math.ceil(resources.deadlineSeconds),
      expectedOutputs: resources.expectedOutputs,
      resources,
    });
  }
  return out;
}

/** Planner issues not already reported by check()'s own rules. */
const REPORTED_BY_CHECK = new Set(['planner.export-size', 'planner.gptq-bits', 'planner.sft-arg']);
export function plannerIssues(plans: ReadonlyMap<string, StagePlan>): Issue[] {
  return [...plans.values()].flatMap((p) => p.resources.issues).filter((i) => !REPORTED_BY_CHECK.has(i.code));
}
