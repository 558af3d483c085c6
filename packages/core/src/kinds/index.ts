import { convert } from './convert.ts';
import { evaluate } from './evaluate.ts';
import { fetchModel } from './fetch-model.ts';
import { merge } from './merge.ts';
import { predict } from './predict.ts';
import { quantize } from './quantize.ts';
import { serve } from './serve.ts';
import { sft } from './sft.ts';
import type { StageKind, StageKindModule } from './types.ts';

/** Every stage kind, by name: the one table check(), the planner and the compiler dispatch on. */
export const STAGE_KINDS: { readonly [K in StageKind]: StageKindModule<K> } = {
  'fetch-model': fetchModel,
  convert,
  sft,
  merge,
  quantize,
  evaluate,
  predict,
  serve,
};

export function stageKind<K extends StageKind>(kind: K): StageKindModule<K> {
  return STAGE_KINDS[kind];
}

export function isStageKind(kind: unknown): kind is StageKind {
  return typeof kind === 'string' && Object.hasOwn(STAGE_KINDS, kind);
}

export type { ResolvedStage, StageKind, StageKindModule, StagePaths, ResolveEnv, RenderEnv, ToolCommand, ResolvedResources } from './types.ts';
export { servedFlags, servedPort } from './serve.ts';
export type { Predictions } from './predict.ts';
