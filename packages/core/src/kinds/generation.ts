import { handle, stageCommon, toolArgs } from './schema.ts';
import { workDirOf } from '../artifacts/protocol.ts';
import { GENERATION_DEFAULTS } from '../defaults.ts';
import type { EvaluableModel } from '../handles.ts';
import { requireArchitecture } from '../model/source.ts';
import type { EvaluatedModel, EvaluatePlanArgs } from '../planner/evaluate.ts';
import type { StagePlanInput } from '../planner/plan.ts';
import { checkDatasetEntries, checkInput, checkLlamaFactoryArgs, mergeToolArgs, numberArg, plannerBase, resolvedStage, splitRows, stagesOf } from './common.ts';
import { adapterArgs } from './merge.ts';
import type { ResolveEnv, ResolvedStage, SpecOf, StagePaths } from './types.ts';

/**
 * What evaluate and predict share: LLaMA-Factory's `do_predict` with generation on a model (an
 * adapter on its base, or a standalone one) over a dataset split, written to
 * `generated_predictions.jsonl`.
 */
type GenerationKind = 'evaluate' | 'predict';

const DERIVED = Object.fromEntries(
  ['stage', 'do_predict', 'do_train', 'predict_with_generate', 'model_name_or_path', 'adapter_name_or_path', 'template', 'dataset_dir', 'eval_dataset', 'dataset', 'output_dir'].map((k) => [k, {}]),
);

/** Options evaluate and predict share. */
export const generationOptions = { ...stageCommon, model: handle(), data: handle(), args: toolArgs().optional(), extraArgs: toolArgs().optional() };

/** The stages whose artifacts make up a model, and the folders LLaMA-Factory loads. */
function modelStages(model: EvaluableModel): { model: string; adapter?: string } {
  return isLoraAdapter(model) ? { model: model.base.stage, adapter: model.stage } : { model: model.stage };
}

/** A LoRA adapter loads on its base; a full fine-tune's output is a whole model of its own. */
function isLoraAdapter(model: EvaluableModel): model is Extract<EvaluableModel, { kind: 'adapter' }> {
  return model.kind === 'adapter' && model.finetuningType !== 'full';
}

/** Resolves the model, the data and the generation settings; `more` adds the kind's own inputs. */
export function resolveGeneration<K extends GenerationKind>(
  generationSpec: SpecOf<K>,
  env: ResolveEnv,
  more: { readonly dependsOn?: readonly string[]; readonly identities?: Readonly<Record<string, string>> } = {},
): ResolvedStage<K> {
  const spec = generationSpec as SpecOf<GenerationKind>;
  const o = spec.options;
  const path = `stages.${spec.name}`;
  const model = checkInput(o.model, `${path}.model`, ['base-model', 'adapter', 'merged-model', 'quantized-model'], env);
  const data = checkInput(o.data, `${path}.data`, ['dataset'], env);
  if (data && o.data.kind === 'dataset') checkDatasetEntries(o.data, `${path}.data`, env);
  const { args, argPaths } = mergeToolArgs({
    path,
    defaults: { ...(model && isLoraAdapter(o.model) ? { finetuning_type: 'lora' } : {}), report_to: 'none', ...GENERATION_DEFAULTS },
    args: o.args as Record<string, unknown> | undefined,
    extraArgs: o.extraArgs,
    derived: DERIVED,
    add: env.add,
  });
  const modelDeps = model ? Object.values(modelStages(o.model)) : [];
  const stage = resolvedStage(spec, {
    image: o.image ?? (model && o.model.kind === 'quantized-model' ? env.ctx.images.gptq : env.ctx.images.llamafactory),
    dependsOn: [...new Set([...modelDeps, ...stagesOf([data ? o.data : undefined]), ...(more.dependsOn ?? [])])],
    args,
    argPaths,
    ...(more.identities ? { identities: more.identities } : {}),
  });
  checkLlamaFactoryArgs(stage, 'train', env.add);
  return stage as ResolvedStage<K>;
}

/** The planner sizes generation the same way for both kinds. */
export function generationPlannerInput(stage: ResolvedStage<GenerationKind>, env: ResolveEnv): StagePlanInput {
  const o = stage.spec.options;
  const data = splitRows(o.data, env);
  return {
    ...plannerBase(stage),
    kind: 'evaluate',
    architecture: requireArchitecture(o.model.kind === 'base-model' ? o.model : o.model.base, env.ctx),
    model: evaluatedModel(o.model, env),
    args: stage.args as EvaluatePlanArgs,
    data: { rows: data?.rows ?? numberArg(stage, 'max_samples') ?? 100, ...(data?.meanTokens !== undefined ? { meanPromptTokens: data.meanTokens } : {}) },
  };
}

export function generationConfig(stage: ResolvedStage<GenerationKind>, paths: StagePaths): Record<string, unknown> {
  const o = stage.spec.options;
  const m = modelStages(o.model);
  const { finetuning_type, report_to, ...rest } = stage.args;
  return {
    stage: 'sft',
    do_predict: true,
    predict_with_generate: true,
    model_name_or_path: paths.of(m.model),
    ...(m.adapter ? { adapter_name_or_path: paths.of(m.adapter), finetuning_type } : finetuning_type !== undefined ? { finetuning_type } : {}),
    template: o.model.template,
    dataset_dir: paths.of(o.data.stage),
    eval_dataset: o.data.entries.join(','),
    output_dir: workDirOf(paths.self),
    report_to,
    ...rest,
  };
}

function evaluatedModel(model: EvaluableModel, env: ResolveEnv): EvaluatedModel {
  switch (model.kind) {
    case 'base-model':
    case 'merged-model':
      return { format: 'dense' };
    case 'quantized-model':
      return { format: 'gptq', bits: model.bits };
    case 'adapter': {
      if (!isLoraAdapter(model)) return { format: 'dense' };
      const adapter = adapterArgs(model.stage, env);
      return { format: 'adapter', rank: adapter.rank, target: adapter.target };
    }
  }
}
