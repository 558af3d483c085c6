import { resolveContext, type CompileContext, type ResolvedContext } from './context.ts';
import type { Pipeline, StageSpec } from './dsl.ts';
import { isError, issuePath, type Issue } from './issues.ts';
import { zodParse, type ZodIssueContext } from './zod.ts';
import { DNS_LABEL_MAX, isDnsLabel, toDnsLabel } from './names.ts';
import { stageKind, isStageKind, STAGE_KINDS } from './kinds/index.ts';
import { checkImage } from './kinds/common.ts';
import type { ResolveEnv, ResolvedStage, StageKindModule } from './kinds/types.ts';
import { planStage, type StageResourcePlan } from './planner/plan.ts';
import { redactIssue, scanForSecrets } from './rules/secrets.ts';
import { unknownSecretIssues } from './secrets.ts';
import { planOptions, stagePlan, type StagePlan } from './plan.ts';

/** Characters a Job name spends on `-<hash8>` after `<pipeline>-<stage>`. */
const HASH_SUFFIX = 9;

/** Planner findings check()'s own rules already report with a better path. */
const REPORTED_BY_CHECK = new Set(['planner.export-size', 'planner.gptq-bits', 'planner.sft-arg', 'planner.serve-arg']);

/**
 * A pipeline read once: every stage resolved by its kind in definition order (which is the graph's
 * topological order: a stage can only name handles of earlier stages), every sound stage planned,
 * and every problem found on the way, the planner's included.
 */
export interface PipelineAnalysis {
  readonly pipeline: Pipeline;
  readonly ctx: ResolvedContext;
  /** Resolved stages in topological order. */
  readonly stages: readonly ResolvedStage[];
  readonly plans: ReadonlyMap<string, StagePlan>;
  readonly issues: readonly Issue[];
  readonly env: ResolveEnv;
}

export function analysePipeline(pipeline: Pipeline, context: CompileContext = {}): PipelineAnalysis {
  const ctx = resolveContext(context);
  const issues: Issue[] = [];
  const stageSpecs: readonly StageSpec[] = Array.isArray(pipeline?.stages) ? pipeline.stages : [];
  const pipelineName = typeof pipeline?.name === 'string' ? pipeline.name : '';

  if (!isDnsLabel(pipelineName)) {
    issues.push({ code: 'name.dns', path: 'pipeline.name', value: pipeline?.name, message: 'is not a DNS-1123 label (lower-case letters, digits and -, at most 63)', fix: `use '${toDnsLabel(String(pipeline?.name ?? 'my-pipeline'))}'` });
  }

  const declared = new Map<string, StageSpec>();
  const resolved = new Map<string, ResolvedStage>();
  const broken = new Set<string>();
  const stages: ResolvedStage[] = [];
  let current: string | undefined;
  const add = (issue: Issue) => {
    issues.push(issue);
    if (current !== undefined && isError(issue)) broken.add(current);
  };
  const unresolved = new Set<string>();
  // Stages an input of which could not be followed: not planned, since what they would size is unknown.
  const starved = new Set<string>();
  const blocked = () => {
    if (current === undefined) return;
    broken.add(current);
    starved.add(current);
  };
  const env: ResolveEnv = { pipeline, ctx, resolved, declared, unresolved, broken, add, blocked, produces: (kind) => stageKind(kind).produces };
  for (const spec of stageSpecs) if (spec && typeof spec.name === 'string' && !declared.has(spec.name)) declared.set(spec.name, spec);

  const named = new Set<string>();
  for (const spec of stageSpecs) {
    if (!spec || typeof spec !== 'object') continue;
    const path = `stages.${spec.name}`;
    if (!isStageKind(spec.kind)) {
      add({ code: 'stage.kind', path, value: spec.kind, message: 'is not a stage kind', fix: `use a p.<kind>(…) method: ${Object.keys(STAGE_KINDS).join(', ')}` });
      continue;
    }
    current = spec.name;
    if (!isDnsLabel(spec.name)) {
      add({ code: 'name.dns', path: `${path}.name`, value: spec.name, message: 'stage name is not a DNS-1123 label', fix: `use '${toDnsLabel(String(spec.name))}'` });
    }
    const duplicate = named.has(spec.name);
    if (duplicate) {
      add({ code: 'stage.duplicate', path: `${path}.name`, value: spec.name, message: `two stages are named '${spec.name}'`, fix: `give the second ${spec.kind} stage its own name: { name: '${spec.name}-2', … }` });
    }
    named.add(spec.name);
    const verifySuffix = spec.kind === 'serve' && spec.options?.verify ? '-verify'.length : 0;
    const jobNameLength = pipelineName.length + 1 + String(spec.name).length + verifySuffix + HASH_SUFFIX;
    if (jobNameLength > DNS_LABEL_MAX) {
      add({ code: 'name.length', path: `${path}.name`, value: `${pipelineName}-${spec.name}${verifySuffix ? '-verify' : ''}-<hash8>`, message: `Job name would be ${jobNameLength} characters; Kubernetes allows ${DNS_LABEL_MAX}`, fix: `shorten the pipeline or stage name by ${jobNameLength - DNS_LABEL_MAX} characters` });
    }

    const module = stageKind(spec.kind);
    const shaped = zodParse(module.options, spec.options, {
      area: 'options',
      root: spec.options,
      schema: module.options,
      formatPath: (at) => [path, issuePath(at)].filter(Boolean).join('.'),
      fix: (context) => context.suggestion ?? optionFix(context),
    });
    if (!shaped.ok) {
      for (const issue of shaped.issues) add(issue);
      unresolved.add(spec.name);
      continue;
    }
    const image = (spec.options as { image?: unknown }).image;
    if (typeof image === 'string') checkImage(image, `${path}.image`, add);
    const stage = (module.resolve as (s: StageSpec, e: ResolveEnv) => ResolvedStage)(spec, env);
    // Every string that reaches an object, by its value: a token pasted into a prompt variable or
    // an unknown key is as much a leak as one under a key named `token`.
    for (const issue of scanForSecrets(withoutHandles(spec.options), path)) {
      if (!issues.some((i) => i.code === issue.code && i.path === issue.path)) add(issue);
    }
    if (ctx.knownSecrets) for (const issue of unknownSecretIssues(spec.options, path, ctx.knownSecrets)) add(issue);
    if (duplicate) continue;
    resolved.set(spec.name, stage);
    stages.push(stage);
  }
  current = undefined;
  for (const [name, source] of Object.entries(ctx.datasets)) {
    if (!stages.some((s) => s.kind === 'convert' && (s.args['sources'] as { name: string }[]).some((x) => x.name === name))) continue;
    issues.push(...scanForSecrets(source.descriptor, `datasets/${name}/dataset.yaml`));
  }

  // The planner sizes every stage whose inputs are sound (its own options may have errors: the
  // planner's findings on them join the same list, so a pipeline shows every problem at once).
  const plans = new Map<string, StagePlan>();
  for (const stage of stages) {
    if (starved.has(stage.name) || stage.dependsOn.some((d) => broken.has(d) || !plans.has(d))) continue;
    const kind = stageKind(stage.kind) as unknown as StageKindModule<typeof stage.kind>;
    let planned: StageResourcePlan;
    try {
      const resources = planStage(kind.plannerInput(stage as never, env), planOptions(ctx));
      const later = kind.planIssues?.(stage as never, resources, env) ?? [];
      planned = later.length === 0 ? resources : { ...resources, issues: [...resources.issues, ...later] };
    } catch (error) {
      // A stage with errors of its own may be too broken to size; its errors are already listed.
      if (broken.has(stage.name)) continue;
      throw error;
    }
    // The planner checks GPU and node counts too (it is also called on its own); where the kind
    // already reported the same field, that one issue says it.
    const countsReported = new Set(issues.filter((i) => i.code.startsWith('resources.')).map((i) => i.path));
    for (const issue of planned.issues) {
      if (REPORTED_BY_CHECK.has(issue.code) || (issue.code === 'planner.gpus' && countsReported.has(issue.path))) continue;
      issues.push(issue);
    }
    plans.set(stage.name, stagePlan(stage, planned));
  }
  // No message ever prints a secret-shaped value, whichever rule found the problem.
  return { pipeline, ctx, stages, plans, issues: issues.map(redactIssue), env };
}

/** Every sound stage's placement, size and timing (what `tunepipe plan` prints). */
export function planStages(pipeline: Pipeline, context: CompileContext = {}): ReadonlyMap<string, StagePlan> {
  return analysePipeline(pipeline, context).plans;
}

/** Options without the handles they wire in: a handle's strings belong to (and are scanned with) its own stage. */
function withoutHandles(options: unknown): unknown {
  if (!options || typeof options !== 'object') return options;
  const isHandle = (v: unknown) => !!v && typeof v === 'object' && typeof (v as { stage?: unknown }).stage === 'string' && typeof (v as { kind?: unknown }).kind === 'string';
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => !isHandle(v) && !(Array.isArray(v) && v.length > 0 && v.every(isHandle))),
  );
}

const ARTICLE: Readonly<Record<string, string>> = { array: 'a list', object: 'a mapping', string: 'a string', number: 'a finite number', boolean: 'true or false', int: 'a whole number' };

/** A fix for an option of the wrong shape: what to give instead, in words a pipeline author uses. */
function optionFix(context: ZodIssueContext): string | undefined {
  const zod = context.zod as { code: string; expected?: string; minimum?: unknown; maximum?: unknown; values?: readonly unknown[] };
  switch (zod.code) {
    case 'invalid_type':
      return zod.expected ? `give ${ARTICLE[zod.expected] ?? zod.expected}${context.rule === 'missing' ? '' : ' here'}` : undefined;
    case 'too_small':
      return zod.minimum !== undefined ? `use at least ${String(zod.minimum)}` : undefined;
    case 'too_big':
      return zod.maximum !== undefined ? `use at most ${String(zod.maximum)}` : undefined;
    case 'invalid_value':
      return zod.values ? `use one of ${zod.values.map((v) => JSON.stringify(v)).join(', ')}` : undefined;
    default:
      return undefined;
  }
}
