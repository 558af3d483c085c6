import { z } from 'zod';
import type { Dataset, EvaluableModel } from '../handles.ts';
import { offlineEnv } from './common.ts';
import { generationConfig, generationOptions, generationPlannerInput, resolveGeneration } from './generation.ts';
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
  options: z.strictObject(generationOptions),
  toolEnv: offlineEnv,
  resolve: (spec, env) => resolveGeneration(spec, env),
  plannerInput: generationPlannerInput,
  config: generationConfig,
  command(_stage, _paths, configFile) {
    return { mode: 'rename', argv: ['llamafactory-cli', 'train', configFile] };
  },
};
