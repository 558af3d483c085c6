import { z } from 'zod';

/**
 * The shapes every option of the DSL must have at run time. A pipeline written in plain
 * JavaScript, or built from JSON/YAML, reaches the kinds without TypeScript's help: each kind's
 * schema is parsed before its resolver reads a value, so no rule ever calls a method on a value it
 * has not checked. Handles are left to the kinds (`checkInput` says what a handle should be).
 */

/** Longer than any name, path or prompt variable a pipeline needs; longer text is a mistake or an attack. */
export const MAX_TEXT = 4096;

export const text = () => z.string().min(1).max(MAX_TEXT);
export const count = () => z.number().int().min(1);
export const handle = () => z.unknown();
/** LLaMA-Factory keys: each value is checked against the pinned argument table by the kind. */
export const toolArgs = () => z.record(z.string().max(200), z.unknown());

import { TRAINING_STRATEGIES } from '../planner/layout.ts';

const quantity = z.string().regex(/^\d+(\.\d+)?(e\d+)?(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/, 'a Kubernetes quantity');

/** Options every stage kind takes (StageCommon in dsl.ts). */
export const stageCommon = {
  name: text().optional(),
  image: text().optional(),
  backoffLimit: z.number().int().min(0).max(100).optional(),
  resources: z
    .strictObject({
      gpus: z.number().optional(),
      gpuType: text().optional(),
      cpu: quantity.optional(),
      memory: quantity.optional(),
    })
    .optional(),
};

/**
 * A training stage's options besides stageCommon: its gang's shape and strategy. Other kinds take
 * none of these (their strict schemas reject `strategy`, `nodes` and `gpusPerNode`). Counts are
 * loose numbers here: the kind says what is wrong with a fraction or a zero, with a fix.
 */
export const trainingPlacement = {
  resources: stageCommon.resources.unwrap().extend({ gpusPerNode: z.number().optional(), nodes: z.number().optional() }).optional(),
  strategy: z.enum(TRAINING_STRATEGIES).optional(),
};

const whole = (max: number) => z.number().int().min(1).max(max);

/**
 * A declared architecture: the planner sizes memory and time from these, so each is a whole number
 * within what any released model has (a 10-trillion-parameter cap, a thousand layers), and the
 * heads divide as attention needs them to.
 */
export const architectureSchema = z
  .strictObject({
    modelType: text(),
    parameterCount: whole(1e13),
    hiddenSize: whole(1_000_000),
    intermediateSize: whole(10_000_000),
    numHiddenLayers: whole(1000),
    numAttentionHeads: whole(10_000),
    numKeyValueHeads: whole(10_000),
    headDim: whole(100_000),
    vocabSize: whole(10_000_000),
    maxPositionEmbeddings: whole(100_000_000),
    tieWordEmbeddings: z.boolean(),
    torchDtype: z.enum(['bfloat16', 'float16', 'float32']),
  })
  .refine((a) => a.numKeyValueHeads <= a.numAttentionHeads && a.numAttentionHeads % a.numKeyValueHeads === 0, {
    message: 'numKeyValueHeads must divide numAttentionHeads (grouped-query attention shares each key/value head among a whole number of query heads)',
    params: { rule: 'heads', fix: "copy num_key_value_heads and num_attention_heads from the model's config.json" },
  });
