import type { CompileContext } from './context.ts';
import type { Pipeline } from './dsl.ts';
import type { Issue } from './issues.ts';
import { analysePipeline } from './analyse.ts';

/**
 * Every problem with a pipeline that would otherwise surface inside a (GPU) pod, all at once: each
 * stage kind's rules on its resolved stage, the graph's, and the planner's findings.
 * Pure: reads nothing but its arguments.
 */
export function check(pipeline: Pipeline, context: CompileContext = {}): Issue[] {
  return [...analysePipeline(pipeline, context).issues];
}
