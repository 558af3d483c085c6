import { z } from 'zod';
import { handle, stageCommon, toolArgs, trainingPlacement } from './schema.ts';
import type { Issue } from '../issues.ts';
import { deepSpeedConfig, DEEPSPEED_CONFIG_FILE, DISTRIBUTED_DDP_TIMEOUT_SECONDS, strategyArgs, usesTorchrun } from './distributed.ts';
import { gangNameIssues, queueAdmissionIssues } from './queue.ts';
import { llamaFactoryDefault } from '../defaults.ts';
import { modelArchitecture, requireArchitecture } from '../model/source.ts';
import type { SftPlanArgs } from '../planner/sft.ts';
import { checkpointCadenceIssues } from '../planner/plan.ts';
import { argPath, checkDatasetEntries, checkInput, checkLlamaFactoryArgs, mergeToolArgs, numberArg, plannerBase, resolvedStage, splitRows, stagesOf, type DerivedKey , offlineEnv } from './common.ts';
import type { StageKindModule } from './types.ts';


const DERIVED: Record<string, DerivedKey> = {
  stage: {},
  do_train: {},
  model_name_or_path: {},
  adapter_name_or_path: {},
  template: { message: "template is the base model's (baseModel({ template })); training with another one teaches a prompt format nothing else uses", fix: 'set template on the base model' },
  dataset_dir: {},
  dataset: {},
  eval_dataset: { fix: "remove it; wire convert's validation output as eval" },
  output_dir: {},
  overwrite_output_dir: { code: 'sft.overwrite', message: 'a restarted pod would throw away its checkpoints instead of resuming', fix: 'remove it; tunepipe keeps overwrite_output_dir: false' },
  resume_from_checkpoint: { fix: 'remove it; a restarted pod resumes from its own newest whole checkpoint' },
  deepspeed: { code: 'sft.strategy-args', message: 'the DeepSpeed config is generated from the stage\'s strategy (a file in its ConfigMap)', fix: "remove it; set strategy: 'zero2', 'zero3' or 'zero3-offload'" },
  fsdp: { code: 'sft.strategy-args', message: "FSDP is set from the stage's strategy", fix: "remove it; set strategy: 'fsdp'" },
  fsdp_config: { code: 'sft.strategy-args', message: "FSDP is set from the stage's strategy", fix: "remove it; set strategy: 'fsdp'" },
};

/** Where the stage's ConfigMap is mounted: the training YAML refers to its other files there. */
const CONFIG_DIR = '/config';

type Add = (issue: Issue) => void;

/**
 * QLoRA: LLaMA-Factory loads the base model quantized on the fly by bitsandbytes (its default
 * quantization_method), which the stock image does not ship; the qlora image adds it.
 */
function quantizesWithBitsandbytes(args: Readonly<Record<string, unknown>>): boolean {
  const bits = args['quantization_bit'];
  const method = args['quantization_method'] ?? 'bnb';
  return bits !== undefined && bits !== null && method === 'bnb';
}

/** A count of pods or GPUs: a whole number, at least 1. */
function checkCount(value: number | undefined, at: string, what: string, fix: string, add: Add): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) add({ code: `resources.${what}`, path: at, value, message: 'must be a whole number, at least 1', fix });
}

export const sft: StageKindModule<'sft'> = {
  kind: 'sft',
  produces: 'adapter',
  configFormat: 'yaml',
  options: z.strictObject({ ...stageCommon, ...trainingPlacement, model: handle(), train: handle(), eval: handle().optional(), args: toolArgs().optional(), extraArgs: toolArgs().optional() }),
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const model = checkInput(o.model, `${path}.model`, ['base-model'], env);
    const train = checkInput(o.train, `${path}.train`, ['dataset'], env);
    const evalOk = o.eval === undefined || checkInput(o.eval, `${path}.eval`, ['dataset'], env);
    if (train && o.train.kind === 'dataset') {
      checkDatasetEntries(o.train, `${path}.train`, env);
      if (o.train.split !== 'train') add({ code: 'sft.split', path: `${path}.train`, value: o.train.split, message: `trains on the ${o.train.split} split`, fix: "wire convert's `train` output" });
    }
    if (o.eval && evalOk) checkDatasetEntries(o.eval, `${path}.eval`, env);
    const { args, argPaths } = mergeToolArgs({
      path,
      defaults: { finetuning_type: 'lora', report_to: 'none', ...(o.eval ? { eval_strategy: 'steps' } : {}) },
      args: o.args as Record<string, unknown> | undefined,
      extraArgs: o.extraArgs,
      derived: DERIVED,
      add,
    });
    const stage = resolvedStage(spec, { image: o.image ?? (quantizesWithBitsandbytes(args) ? env.ctx.images.qlora : env.ctx.images.llamafactory), dependsOn: stagesOf([o.model, o.train, o.eval]), args, argPaths });
    checkLlamaFactoryArgs(stage, 'train', add);
    if (args['bf16'] === true && args['fp16'] === true) {
      add({ code: 'sft.precision', path: `${path}.args`, value: { bf16: true, fp16: true }, message: 'bf16 and fp16 are mutually exclusive', fix: 'keep bf16 on Ampere or newer GPUs, fp16 on T4/V100' });
    }
    if (!o.eval && typeof args['eval_strategy'] === 'string' && args['eval_strategy'] !== 'no') {
      add({ code: 'sft.eval-strategy', path: argPath(stage, 'eval_strategy'), value: args['eval_strategy'], message: 'evaluates during training, but no eval dataset is wired (the Trainer stops at start-up)', fix: "wire convert's validation output as eval, or remove eval_strategy" });
    }
    if (o.eval && evalOk) {
      const producer = env.resolved.get(o.eval.stage);
      const validation = (producer?.args['split'] as { validation?: number } | undefined)?.validation;
      if (producer?.kind === 'convert' && validation === 0) {
        add({ code: 'sft.eval-empty', path: `${path}.eval`, value: 0, message: `convert '${producer.name}' holds out no validation rows, so evaluation during training would see an empty set`, fix: 'set split.validation on convert (e.g. 0.02) or remove eval' });
      }
    }
    const cutoff = numberArg(stage, 'cutoff_len') ?? llamaFactoryDefault<number>('cutoff_len');
    const context = model ? modelArchitecture(o.model, env.ctx)?.maxPositionEmbeddings : undefined;
    if (context !== undefined && cutoff > context) {
      add({ code: 'sft.cutoff-context', path: argPath(stage, 'cutoff_len'), value: cutoff, message: `is longer than the model's context (${context} tokens)`, fix: `use at most ${context}` });
    }
    const convert = train ? env.resolved.get(o.train.stage) : undefined;
    const filteredAt = convert?.args['cutoffLen'];
    if (convert?.kind === 'convert' && typeof filteredAt === 'number' && filteredAt !== cutoff) {
      add({ code: 'sft.cutoff-mismatch', path: argPath(stage, 'cutoff_len'), value: cutoff, message: `convert '${convert.name}' filters rows at cutoffLen ${filteredAt}, training truncates at ${cutoff}`, fix: 'use the same value in both (a shared constant in pipeline.ts)' });
    }
    // The handle p.sft() returns carries the type (evaluate loads a full fine-tune as a whole model,
    // merge refuses one); it is read from typed args when the pipeline is defined.
    if (argPaths['finetuning_type']?.startsWith(`${path}.extraArgs.`) && args['finetuning_type'] !== 'lora') {
      add({ code: 'sft.finetuning-type', path: argPaths['finetuning_type'], value: args['finetuning_type'], message: "is set in extraArgs, where the stage's handle does not see it: evaluate would load the output as a LoRA adapter", fix: 'set finetuning_type in args' });
    }
    const r = o.resources ?? {};
    if (r.gpus !== undefined && (!Number.isInteger(r.gpus) || r.gpus < 1)) {
      add({ code: 'resources.gpus', path: `${path}.resources.gpus`, value: r.gpus, message: 'training needs a whole number of GPUs, at least 1', fix: 'use 1, 2, 4 or 8' });
    }
    checkCount(r.gpusPerNode, `${path}.resources.gpusPerNode`, 'gpus-per-node', 'use 1, 2, 4 or 8 (the GPUs of one node)', add);
    checkCount(r.nodes, `${path}.resources.nodes`, 'nodes', 'use 1 for one pod, 2 or more for a gang of pods', add);
    if (r.gpus !== undefined && r.gpusPerNode !== undefined) {
      add({ code: 'resources.conflict', path: `${path}.resources.gpusPerNode`, value: { gpus: r.gpus, gpusPerNode: r.gpusPerNode }, message: `gpusPerNode is also set as gpus (${r.gpus}); both are the GPUs of each pod, and a count has one value`, fix: 'keep gpusPerNode (beside nodes), remove gpus' });
    }
    return stage;
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    const data = splitRows(o.train, env);
    const base = plannerBase(stage);
    const { nodes, strategy } = stage.resources;
    // The planner's gang input (resources.nodes / gpusPerNode, strategy): the user's choices, the
    // rest is the planner's. `gpus` stays the per-pod count the planner has always read.
    const resources = { ...base.resources, ...(nodes !== undefined ? { nodes } : {}), ...(o.resources?.gpusPerNode !== undefined ? { gpusPerNode: o.resources.gpusPerNode } : {}) };
    return {
      ...base,
      resources,
      ...(strategy !== undefined ? { strategy } : {}),
      kind: 'sft',
      architecture: requireArchitecture(o.model, env.ctx),
      args: stage.args as SftPlanArgs,
      data: data
        ? { rows: data.rows, ...(data.meanTokens !== undefined ? { meanTokensPerRow: data.meanTokens } : {}), ...(data.maxTokens ? { maxTokensPerRow: data.maxTokens } : {}) }
        : { rows: numberArg(stage, 'max_samples') ?? 1000 },
    };
  },
  planIssues(stage, resources, env) {
    const queue = [...queueAdmissionIssues(stage, resources, env.ctx), ...gangNameIssues(stage, resources, env)];
    if (resources.details.kind !== 'sft') return queue;
    const saveSteps = numberArg(stage, 'save_steps');
    const { optimizerSteps, trainRows } = resources.details.schedule;
    return [...checkpointCadenceIssues(saveSteps !== undefined && saveSteps > 0 ? saveSteps : llamaFactoryDefault<number>('save_steps'), optimizerSteps, trainRows, stage.path), ...queue];
  },
  config(stage, paths, env) {
    const o = stage.spec.options;
    const { finetuning_type, eval_strategy, report_to, ...rest } = stage.args;
    // Nothing changes for a single-GPU stage: its YAML stays what it was before layouts existed.
    const distributed = usesTorchrun(env.layout)
      ? { ...strategyArgs(env.layout, CONFIG_DIR), ddp_timeout: rest['ddp_timeout'] ?? DISTRIBUTED_DDP_TIMEOUT_SECONDS }
      : {};
    return {
      stage: 'sft',
      do_train: true,
      model_name_or_path: paths.of(o.model.stage),
      template: o.model.template,
      finetuning_type,
      dataset_dir: paths.of(o.train.stage),
      dataset: o.train.entries.join(','),
      ...(o.eval ? { eval_dataset: o.eval.entries.join(','), eval_strategy } : {}),
      output_dir: paths.self,
      // A restarted pod must find and resume from its own checkpoints.
      overwrite_output_dir: false,
      report_to,
      ...(!o.eval && eval_strategy !== undefined ? { eval_strategy } : {}),
      ...rest,
      ...distributed,
    };
  },
  files(_stage, env) {
    const config = usesTorchrun(env.layout) ? deepSpeedConfig(env.layout.strategy) : undefined;
    return config ? { [DEEPSPEED_CONFIG_FILE]: `${JSON.stringify(config, null, 2)}\n` } : {};
  },
  command(_stage, _paths, configFile) {
    // In place: a preempted pod's successor resumes from the checkpoints in the same folder.
    return { mode: 'in-place', argv: ['llamafactory-cli', 'train', configFile] };
  },
};
