import type { z } from 'zod';
import type { ResolvedContext } from '../context.ts';
import type { Pipeline, StageSpec } from '../dsl.ts';
import type { EnvVar } from 'kubernetes-types/core/v1.js';
import type { ArtifactHandle } from '../handles.ts';
import type { Issue } from '../issues.ts';
import type { StagePlanInput, StageResourcePlan } from '../planner/plan.ts';
import type { PublishMode } from '../artifacts/protocol.ts';
import type { ParallelLayout, TrainingStrategy } from '../planner/layout.ts';

export type StageKind = StageSpec['kind'];
export type SpecOf<K extends StageKind> = Extract<StageSpec, { kind: K }>;
/** A handle's kind: those of handles.ts, and any a newer stage kind declares. */
export type HandleKind = ArtifactHandle['kind'] | (string & {});

/** Placement the user asked for; anything left out is the planner's choice. */
export interface ResolvedResources {
  /** GPUs per pod (`gpus`, or a training stage's `gpusPerNode`). */
  readonly gpus?: number;
  /** Training stages: pods of the gang. */
  readonly nodes?: number;
  /** Training stages: how the ranks share the work. */
  readonly strategy?: TrainingStrategy;
  readonly gpuType?: string;
  readonly cpu?: string;
  readonly memory?: string;
}

/**
 * A stage after its kind resolved the DSL options: the one description that check(), the planner,
 * the hash, the renderers and the local runner read. Nothing downstream looks at the options again
 * to find a default or a precedence.
 */
export interface ResolvedStageOf<K extends StageKind> {
  readonly kind: K;
  readonly name: string;
  /** Where the stage sits in the pipeline definition, for issue paths: `stages.<name>`. */
  readonly path: string;
  readonly spec: SpecOf<K>;
  readonly image: string;
  /** Stages whose artifacts this one reads, once each, in the order the options name them. */
  readonly dependsOn: readonly string[];
  /** What the hash covers besides the upstream stages' hashes (model identity, dataset digests, gate rules). */
  readonly identities: Readonly<Record<string, string>>;
  readonly resources: ResolvedResources;
  readonly backoffLimit: number;
  /**
   * The tool's own keys with their final values: LLaMA-Factory keys for the trainer and exporter
   * kinds, `--flag` → value for serve, the converter's settings for convert. Keys derived from
   * handles (paths, `template`, `dataset`) are not here: the renderer adds them from the graph.
   */
  readonly args: Readonly<Record<string, unknown>>;
  /** Where the user set each key of `args` (`stages.sft.extraArgs.lora_rank`); defaults have none. */
  readonly argPaths: Readonly<Record<string, string>>;
}

/** A resolved stage of kind K; without K, any resolved stage (a union that narrows on `kind`). */
export type ResolvedStage<K extends StageKind = StageKind> = { [P in K]: ResolvedStageOf<P> }[K];

/** Where the compiled graph put things, as a stage's renderer needs them. */
export interface StagePaths {
  /** The stage's own artifact folder (`${self}` while hashing). */
  readonly self: string;
  /** An upstream stage's artifact folder. */
  readonly of: (stage: string) => string;
  /** An upstream stage's completion marker. */
  readonly marker: (stage: string) => string;
}

/** How a batch stage's tool is started inside the stage wrapper. */
export interface ToolCommand {
  readonly mode: PublishMode;
  readonly argv: readonly string[];
}

/** What a kind's resolver may look at, and where it reports problems. */
export interface ResolveEnv {
  readonly pipeline: Pipeline;
  readonly ctx: ResolvedContext;
  /** Stages resolved so far (every stage defined earlier), by name. */
  readonly resolved: ReadonlyMap<string, ResolvedStage>;
  /** Every stage of the pipeline by name, including later ones (to tell a forward reference from a typo). */
  readonly declared: ReadonlyMap<string, StageSpec>;
  readonly add: (issue: Issue) => void;
  /** Stages whose options did not have the shape of their kind: their errors are listed, and handles of them are not followed. */
  readonly unresolved: ReadonlySet<string>;
  /** Stages with errors of their own or in their inputs. */
  readonly broken: ReadonlySet<string>;
  /** Marks the stage being resolved as not sound without a new issue (its input's errors are listed already). */
  readonly blocked: () => void;
  /** The handle kind a stage kind produces (from the kinds table). */
  readonly produces: (kind: StageKind) => string;
}

/** What a renderer may look at besides the resolved stage: the planner's placement of it. */
export interface RenderEnv extends ResolveEnv {
  /** GPUs per pod the planner gave this stage. */
  readonly gpus: number;
  /** Training stages: the layout the stage runs with (nodes × GPUs per node, strategy). */
  readonly layout?: ParallelLayout;
}

/**
 * One stage kind as a unit: how its options resolve, what it checks, what the planner is told,
 * what its tool is given and how it is started. Adding a kind is adding one of these.
 */
export interface StageKindModule<K extends StageKind> {
  readonly kind: K;
  /** The handle the DSL method returns, which consumers are checked against. */
  readonly produces: HandleKind;
  /** The shape of the DSL options, parsed before `resolve` reads any of them. */
  readonly options: z.ZodType;
  /**
   * Resolves options into the stage every reader trusts, reporting problems with the options
   * through `env.add`. Never throws on bad input.
   */
  resolve(spec: SpecOf<K>, env: ResolveEnv): ResolvedStage<K>;
  /** The planner's view: plain numbers read from the resolved stage (and its resolved upstream). */
  plannerInput(stage: ResolvedStage<K>, env: ResolveEnv): StagePlanInput;
  /** Problems only the planner's answer shows (a run that would never write a checkpoint, a gang the queue cannot admit). */
  planIssues?(stage: ResolvedStage<K>, resources: StageResourcePlan, env: ResolveEnv): Issue[];
  /** The tool's configuration file content, keys in the order they are written. */
  config(stage: ResolvedStage<K>, paths: StagePaths, env: RenderEnv): Record<string, unknown>;
  /** Further files of the stage's ConfigMap (`/config/<name>`) the config refers to, e.g. a DeepSpeed config. */
  files?(stage: ResolvedStage<K>, env: RenderEnv): Readonly<Record<string, string>>;
  /** Batch kinds: the tool command; `configFile` is where the pod sees the config. */
  command?(stage: ResolvedStage<K>, paths: StagePaths, configFile: string, env: ResolveEnv): ToolCommand;
  /** `yaml` for LLaMA-Factory's configs, `json` for our own tools. */
  readonly configFormat: 'yaml' | 'json';
  /** Environment of the tool's container beyond the wrapper's (credentials as Secret references, offline switches). */
  toolEnv?(stage: ResolvedStage<K>, env: ResolveEnv): EnvVar[];
  /** Dataset sources whose files are delivered into the pod (convert's inputs). */
  dataSources?(stage: ResolvedStage<K>): readonly string[];
  /** A gated stage: the rules and the baseline's results, checked before publishing. */
  gate?(stage: ResolvedStage<K>, paths: StagePaths): { readonly rules: unknown; readonly baselineResults: string | null } | undefined;
}
