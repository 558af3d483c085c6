import { z } from 'zod';
import { handle, stageCommon, toolArgs } from './schema.ts';
import { workDirOf } from '../artifacts/protocol.ts';
import { requireArchitecture } from '../model/source.ts';
import type { QuantizePlanArgs } from '../planner/plan.ts';
import { argPath, checkDatasetEntries, checkInput, checkLlamaFactoryArgs, mergeToolArgs, numberArg, plannerBase, resolvedStage, stagesOf , offlineEnv } from './common.ts';
import { exportDerivedKeys } from './merge.ts';
import { CALIBRATION_DEFAULTS, EXPORT_DEFAULTS, llamaFactoryDefault } from '../defaults.ts';
import type { StageKindModule } from './types.ts';

const GPTQ_BITS = [2, 3, 4, 8];

export const quantize: StageKindModule<'quantize'> = {
  kind: 'quantize',
  produces: 'quantized-model',
  configFormat: 'yaml',
  options: z.strictObject({ ...stageCommon, model: handle(), calibration: handle(), args: toolArgs(), extraArgs: toolArgs().optional() }),
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const wired = checkInput(o.model, `${path}.model`, ['merged-model'], env, { code: 'quantize.input', message: 'GPTQ quantizes a merged model only (LLaMA-Factory: "Please merge adapters before quantizing the model.")', fix: 'add a merge stage and quantize its output: p.quantize({ model: p.merge({ adapter }), … })' });
    const { args, argPaths } = mergeToolArgs({
      path,
      defaults: { ...CALIBRATION_DEFAULTS, ...EXPORT_DEFAULTS },
      args: o.args as unknown as Record<string, unknown> | undefined,
      extraArgs: o.extraArgs,
      derived: {
        ...exportDerivedKeys((o.model as { template?: unknown } | undefined)?.template),
        export_quantization_dataset: { fix: "wire convert's calibration output as calibration" },
        adapter_name_or_path: { code: 'quantize.adapter', message: 'LLaMA-Factory refuses to quantize with an adapter attached ("Please merge adapters before quantizing the model.")', fix: 'remove it; quantize the merged model' },
      },
      add,
    });
    const calibrationOk = o.calibration !== undefined && checkInput(o.calibration, `${path}.calibration`, ['dataset'], env);
    const stage = resolvedStage(spec, { image: o.image ?? env.ctx.images.gptq, dependsOn: stagesOf([wired ? o.model : undefined, calibrationOk ? o.calibration : undefined]), args, argPaths });
    checkLlamaFactoryArgs(stage, 'export', add);
    const bits = args['export_quantization_bit'];
    if (!GPTQ_BITS.includes(bits as number)) {
      add({ code: 'quantize.bits', path: argPath(stage, 'export_quantization_bit'), value: bits, message: 'GPTQ supports 2, 3, 4 or 8 bits', fix: 'use 4 (the usual choice) or 8' });
    }
    if (o.calibration === undefined) {
      add({ code: 'quantize.calibration', path: `${path}.calibration`, message: 'GPTQ needs calibration data (export_quantization_dataset)', fix: "wire convert's `calibration` output and configure `calibration` on the convert stage" });
    } else if (calibrationOk) {
      checkDatasetEntries(o.calibration, `${path}.calibration`, env);
      const convert = env.resolved.get(o.calibration.stage);
      if (o.calibration.split !== 'calibration') {
        add({ code: 'quantize.calibration', path: `${path}.calibration`, value: o.calibration.split, message: 'calibration must be text rows from the calibration split', fix: "wire convert's `calibration` output" });
      } else if (convert?.kind === 'convert') {
        const cal = convert.args['calibration'] as { nsamples: number; maxlen: number } | undefined;
        const maxlen = numberArg(stage, 'export_quantization_maxlen') ?? llamaFactoryDefault<number>('export_quantization_maxlen');
        const nsamples = numberArg(stage, 'export_quantization_nsamples') ?? llamaFactoryDefault<number>('export_quantization_nsamples');
        if (!cal) {
          add({ code: 'quantize.calibration', path: `${convert.path}.calibration`, message: `quantize '${spec.name}' needs calibration data but convert '${convert.name}' builds none`, fix: `add calibration: { nsamples: ${nsamples}, maxlen: ${maxlen} } to convert` });
        } else if (cal.maxlen < maxlen || cal.nsamples < nsamples) {
          add({ code: 'quantize.calibration-size', path: `${convert.path}.calibration`, value: cal, message: `quantize draws ${nsamples} windows of ${maxlen} tokens; convert checks only for ${cal.nsamples} rows longer than ${cal.maxlen}`, fix: `set calibration to { nsamples: ${nsamples}, maxlen: ${maxlen} } (or more)` });
        }
      }
    }
    return stage;
  },
  plannerInput(stage, env) {
    return {
      ...plannerBase(stage),
      kind: 'quantize',
      architecture: requireArchitecture(stage.spec.options.model.base, env.ctx),
      args: stage.args as unknown as QuantizePlanArgs,
    };
  },
  config(stage, paths) {
    const o = stage.spec.options;
    const { export_quantization_bit, export_quantization_nsamples, export_quantization_maxlen, export_size, export_legacy_format, ...rest } = stage.args;
    return {
      model_name_or_path: paths.of(o.model.stage),
      template: o.model.template,
      export_dir: workDirOf(paths.self),
      export_quantization_bit,
      export_quantization_dataset: `${paths.of(o.calibration.stage)}/calibration.jsonl`,
      export_quantization_nsamples,
      export_quantization_maxlen,
      export_size,
      export_legacy_format,
      ...rest,
    };
  },
  command(_stage, _paths, configFile) {
    return { mode: 'rename', argv: ['llamafactory-cli', 'export', configFile] };
  },
};
