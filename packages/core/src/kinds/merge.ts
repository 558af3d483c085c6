import { z } from 'zod';
import { handle, stageCommon, toolArgs } from './schema.ts';
import { workDirOf } from '../artifacts/protocol.ts';
import { canonicalJson } from '../hash.ts';
import { EXPORT_DEFAULTS, llamaFactoryDefault } from '../defaults.ts';
import { requireArchitecture } from '../model/source.ts';
import type { ExportPlanArgs } from '../planner/merge.ts';
import { checkInput, checkLlamaFactoryArgs, mergeToolArgs, plannerBase, resolvedStage, stagesOf, stringArg, numberArg, effectiveArg, type DerivedKey , offlineEnv } from './common.ts';
import type { ResolveEnv, StageKindModule } from './types.ts';


/** Keys of an export the compiler derives; `template` is the adapter's, so it cannot differ. */
export function exportDerivedKeys(template: unknown): Record<string, DerivedKey> {
  return {
    model_name_or_path: {},
    adapter_name_or_path: {},
    export_dir: {},
    template: { code: 'export.template', message: `the template is the one the model was trained with${typeof template === 'string' ? ` ('${template}')` : ''}; another one changes the prompt format the model learned`, fix: 'remove template (tunepipe writes the trained one)' },
  };
}

export const merge: StageKindModule<'merge'> = {
  kind: 'merge',
  produces: 'merged-model',
  configFormat: 'yaml',
  options: z.strictObject({ ...stageCommon, adapter: handle(), base: handle().optional(), args: toolArgs().optional(), extraArgs: toolArgs().optional() }),
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const adapterOk = checkInput(o.adapter, `${path}.adapter`, ['adapter'], env, { code: 'merge.input', message: 'merge takes the adapter an sft stage produced', fix: 'pass the value returned by p.sft(…)' });
    const baseModel = adapterOk ? (o.base ?? o.adapter.base) : undefined;
    if (o.base !== undefined) checkInput(o.base, `${path}.base`, ['base-model'], env);
    // The producer's resolved value: finetuning_type may come through extraArgs, which the handle does not see.
    const trained = adapterOk ? env.resolved.get(o.adapter.stage)?.args['finetuning_type'] : undefined;
    if (trained === 'full') {
      add({ code: 'merge.full-finetune', path: `${path}.adapter`, value: o.adapter.stage, message: `sft '${o.adapter.stage}' is a full fine-tune: its output is a whole model, not an adapter, so there is nothing to merge into the base`, fix: 'remove the merge stage and use the sft output as the model (evaluate it, or quantize a merged copy of a LoRA run instead)' });
    }
    if (adapterOk && o.base && canonicalJson(o.base.source) !== canonicalJson(o.adapter.base.source)) {
      add({ code: 'merge.base-mismatch', path: `${path}.base`, value: `${o.base.id}@${o.base.revision}`, message: `the adapter was trained on ${o.adapter.base.id}@${o.adapter.base.revision}; LoRA weights only fit the base they were trained on`, fix: 'remove `base` (merge reads it from the adapter)' });
    }
    const { args, argPaths } = mergeToolArgs({
      path,
      defaults: { finetuning_type: 'lora', ...EXPORT_DEFAULTS, export_device: llamaFactoryDefault('export_device') },
      args: o.args as Record<string, unknown> | undefined,
      extraArgs: o.extraArgs,
      derived: { ...exportDerivedKeys((o.adapter as { template?: unknown } | undefined)?.template), finetuning_type: {}, export_quantization_bit: { fix: 'quantize in a quantize stage after the merge' } },
      add,
    });
    const stage = resolvedStage(spec, { image: o.image ?? env.ctx.images.llamafactory, dependsOn: stagesOf([baseModel, adapterOk ? o.adapter : undefined]), args, argPaths });
    checkLlamaFactoryArgs(stage, 'export', add);
    return stage;
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    const adapter = adapterArgs(o.adapter.stage, env);
    return {
      ...plannerBase(stage),
      kind: 'merge',
      architecture: requireArchitecture(o.adapter.base, env.ctx),
      adapter,
      args: stage.args as ExportPlanArgs,
    };
  },
  config(stage, paths) {
    const o = stage.spec.options;
    const { finetuning_type, export_size, export_device, export_legacy_format, ...rest } = stage.args;
    return {
      model_name_or_path: paths.of((o.base ?? o.adapter.base).stage),
      adapter_name_or_path: paths.of(o.adapter.stage),
      template: o.adapter.template,
      finetuning_type,
      export_dir: workDirOf(paths.self),
      export_size,
      export_device,
      export_legacy_format,
      ...rest,
    };
  },
  command(_stage, _paths, configFile) {
    return { mode: 'rename', argv: ['llamafactory-cli', 'export', configFile] };
  },
};

/** The rank and target modules of the adapter an sft stage trains, as LLaMA-Factory will see them. */
export function adapterArgs(sftStage: string, env: ResolveEnv): { rank: number; target: string } {
  const sft = env.resolved.get(sftStage);
  const rank = sft ? effectiveArg(sft, 'lora_rank') : undefined;
  const target = sft ? effectiveArg(sft, 'lora_target') : undefined;
  return { rank: typeof rank === 'number' ? rank : Number.NaN, target: typeof target === 'string' ? target : 'all' };
}
