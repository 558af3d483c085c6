import { workDirOf } from '../artifacts/protocol.ts';
import { GENERATION_DEFAULTS } from '../defaults.ts';
import { checkGate, gateRules } from '../gate.ts';
import { canonicalJson } from '../hash.ts';
import type { EvaluableModel } from '../handles.ts';
import { requireArchitecture } from '../model/source.ts';
import type { EvaluatedModel } from '../planner/evaluate.ts';
import type { EvaluatePlanArgs } from '../planner/evaluate.ts';
import { checkDatasetEntries, checkInput, checkLlamaFactoryArgs, mergeToolArgs, numberArg, placement, resolvedResources, splitRows, stagesOf , offlineEnv } from './common.ts';
import { adapterArgs } from './merge.ts';
import type { ResolveEnv, ResolvedStage, StageKindModule } from './types.ts';


/** Keys of a generation run the compiler derives from the model and data handles. */
export const PREDICT_DERIVED = Object.fromEntries(
  ['stage', 'do_predict', 'do_train', 'predict_with_generate', 'model_name_or_path', 'adapter_name_or_path', 'template', 'dataset_dir', 'eval_dataset', 'dataset', 'output_dir'].map((k) => [k, {}]),
);

/** The stages whose artifacts make up a model, and the folders LLaMA-Factory loads. */
export function modelStages(model: EvaluableModel): { model: string; adapter?: string } {
  return model.kind === 'adapter' ? { model: model.base.stage, adapter: model.stage } : { model: model.stage };
}

export const evaluate: StageKindModule<'evaluate'> = {
  kind: 'evaluate',
  produces: 'eval-report',
  configFormat: 'yaml',
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const model = checkInput(o.model, `${path}.model`, ['base-model', 'adapter', 'merged-model', 'quantized-model'], env);
    const data = checkInput(o.data, `${path}.data`, ['dataset'], env);
    const baseline = o.baseline === undefined || checkInput(o.baseline, `${path}.baseline`, ['eval-report'], env);
    if (data && o.data.kind === 'dataset') {
      checkDatasetEntries(o.data, `${path}.data`, env);
      if (o.data.split === 'train' || o.data.split === 'calibration') {
        add({ code: 'evaluate.split', path: `${path}.data`, value: o.data.split, message: `scores the model on its ${o.data.split} data: the numbers would say nothing about unseen inputs`, fix: "wire convert's `test` output" });
      }
    }
    for (const issue of checkGate(o.gate, { path: `${path}.gate`, hasBaseline: o.baseline !== undefined })) add(issue);
    if (o.baseline && baseline && env.resolved.get(o.baseline.stage)?.kind !== 'evaluate') {
      add({ code: 'gate.baseline', path: `${path}.baseline`, value: o.baseline.stage, message: 'the baseline must be another evaluate stage (usually of the base model on the same test split)', fix: 'pass the value p.evaluate({ model: base, … }) returned' });
    }
    const isAdapter = model && o.model.kind === 'adapter';
    const { args, argPaths } = mergeToolArgs({
      path,
      defaults: { ...(isAdapter ? { finetuning_type: 'lora' } : {}), report_to: 'none', ...GENERATION_DEFAULTS },
      args: o.args as Record<string, unknown> | undefined,
      extraArgs: o.extraArgs,
      derived: PREDICT_DERIVED,
      add,
    });
    const identities: Record<string, string> = {};
    if (o.gate !== undefined) identities['gate'] = canonicalJson(gateRules(o.gate));
    const modelDeps = model ? Object.values(modelStages(o.model)) : [];
    const stage: ResolvedStage<'evaluate'> = {
      kind: 'evaluate',
      name: spec.name,
      path,
      spec,
      image: o.image ?? (model && o.model.kind === 'quantized-model' ? env.ctx.images.gptq : env.ctx.images.llamafactory),
      dependsOn: [...new Set([...modelDeps, ...stagesOf([data ? o.data : undefined, o.baseline && baseline ? o.baseline : undefined])])],
      identities,
      resources: resolvedResources(o),
      backoffLimit: o.backoffLimit ?? 2,
      args,
      argPaths,
    };
    checkLlamaFactoryArgs(stage, 'train', add);
    return stage;
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    const data = splitRows(o.data, env);
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
      ...(m.adapter ? { adapter_name_or_path: paths.of(m.adapter), finetuning_type } : finetuning_type !== undefined ? { finetuning_type } : {}),
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
  gate(stage, paths) {
    const o = stage.spec.options;
    if (o.gate === undefined) return undefined;
    return { rules: gateRules(o.gate), baselineResults: o.baseline ? `${paths.of(o.baseline.stage)}/predict_results.json` : null };
  },
};

export function evaluatedModel(model: EvaluableModel, env: ResolveEnv): EvaluatedModel {
  switch (model.kind) {
    case 'base-model':
    case 'merged-model':
      return { format: 'dense' };
    case 'quantized-model':
      return { format: 'gptq', bits: model.bits };
    case 'adapter': {
      const adapter = adapterArgs(model.stage, env);
      return { format: 'adapter', rank: adapter.rank, target: adapter.target };
    }
  }
}
