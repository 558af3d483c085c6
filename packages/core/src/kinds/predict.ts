import { workDirOf } from '../artifacts/protocol.ts';
import type { Dataset, EvaluableModel } from '../handles.ts';
import { requireArchitecture } from '../model/source.ts';
import type { EvaluatePlanArgs } from '../planner/evaluate.ts';
import { checkDatasetEntries, checkInput, checkLlamaFactoryArgs, mergeToolArgs, numberArg, offlineEnv, placement, resolvedResources, splitRows, stagesOf } from './common.ts';
import { evaluatedModel, modelStages, PREDICT_DERIVED } from './evaluate.ts';
import { GENERATION_DEFAULTS } from '../defaults.ts';
import type { StageKindModule } from './types.ts';

/**
 * Batch generation: a model's answers to every row of a split, as `generated_predictions.jsonl`,
 * with no scores and no gate. What a team runs to label data, to read answers by hand, or to feed
 * another system; `evaluate` is the kind that scores and gates.
 */
export interface Predictions {
  readonly kind: 'predictions';
  readonly stage: string;
  readonly model: EvaluableModel;
  readonly data: Dataset;
}

export const predict: StageKindModule<'predict'> = {
  kind: 'predict',
  produces: 'predictions',
  configFormat: 'yaml',
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const model = checkInput(o.model, `${path}.model`, ['base-model', 'adapter', 'merged-model', 'quantized-model'], env);
    const data = checkInput(o.data, `${path}.data`, ['dataset'], env);
    if (data && o.data.kind === 'dataset') checkDatasetEntries(o.data, `${path}.data`, env);
    const isAdapter = model && o.model.kind === 'adapter';
    const { args, argPaths } = mergeToolArgs({
      path,
      defaults: { ...(isAdapter ? { finetuning_type: 'lora' } : {}), report_to: 'none', ...GENERATION_DEFAULTS },
      args: o.args as Record<string, unknown> | undefined,
      extraArgs: o.extraArgs,
      derived: PREDICT_DERIVED,
      add: env.add,
    });
    const stage = {
      kind: 'predict' as const,
      name: spec.name,
      path,
      spec,
      image: o.image ?? (model && o.model.kind === 'quantized-model' ? env.ctx.images.gptq : env.ctx.images.llamafactory),
      dependsOn: [...new Set([...(model ? Object.values(modelStages(o.model)) : []), ...stagesOf([data ? o.data : undefined])])],
      identities: {},
      resources: resolvedResources(o),
      backoffLimit: o.backoffLimit ?? 2,
      args,
      argPaths,
    };
    checkLlamaFactoryArgs(stage, 'train', env.add);
    return stage;
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    const data = splitRows(o.data, env);
    // Generation costs what an evaluation's generation costs; the planner's model is the same.
    return {
      name: stage.name,
      path: stage.path,
      resources: placement(stage.resources),
      kind: 'evaluate',
      architecture: requireArchitecture(o.model.kind === 'base-model' ? o.model : o.model.base, env.ctx),
      model: evaluatedModel(o.model, env),
      args: stage.args as EvaluatePlanArgs,
      data: { rows: data?.rows ?? numberArg(stage, 'max_samples') ?? 100, ...(data?.meanTokens !== undefined ? { meanPromptTokens: data.meanTokens } : {}) },
    };
  },
  config(stage, paths) {
    const o = stage.spec.options;
    const m = modelStages(o.model);
    const { finetuning_type, report_to, ...rest } = stage.args;
    return {
      stage: 'sft',
      do_predict: true,
      predict_with_generate: true,
      model_name_or_path: paths.of(m.model),
      ...(m.adapter ? { adapter_name_or_path: paths.of(m.adapter), finetuning_type } : {}),
      template: o.model.template,
      dataset_dir: paths.of(o.data.stage),
      eval_dataset: o.data.entries.join(','),
      output_dir: workDirOf(paths.self),
      report_to,
      ...rest,
    };
  },
  command(_stage, _paths, configFile) {
    return { mode: 'rename', argv: ['llamafactory-cli', 'train', configFile] };
  },
};
