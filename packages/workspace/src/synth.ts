import { check, compile, isError, type CompileContext, type CompiledPipeline, type Issue, type Pipeline } from '@tunepipe/core';
import { loadCompileContext, type ContextOverrides } from './context.ts';
import { loadPipeline } from './repo.ts';

export interface SynthResult {
  readonly compiled: CompiledPipeline;
  readonly warnings: readonly Issue[];
  readonly pipeline: Pipeline;
  readonly context: CompileContext;
}

/** Loads, checks and compiles one pipeline of the repo. */
export async function synthPipeline(root: string, name: string, overrides: ContextOverrides = {}): Promise<SynthResult> {
  const pipeline = await loadPipeline(root, name);
  const context = await loadCompileContext(root, pipeline, overrides);
  const warnings = check(pipeline, context).filter((i) => !isError(i));
  return { compiled: compile(pipeline, context), warnings, pipeline, context };
}
