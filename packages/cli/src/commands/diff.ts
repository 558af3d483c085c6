import { diffPipelineSets, renderPlanMarkdown, renderPlanTable, synthAtRef } from '@tunepipe/gitops';
import type { CompiledPipeline } from '@tunepipe/core';
import { discoverPipelines, synthPipeline, type ContextOverrides } from '@tunepipe/workspace';

async function synthAll(root: string, overrides: ContextOverrides): Promise<CompiledPipeline[]> {
  const out: CompiledPipeline[] = [];
  for (const name of discoverPipelines(root)) out.push((await synthPipeline(root, name, overrides)).compiled);
  return out;
}

/** Which stages a change re-runs, why, and the GPU-hours it spends: base ref against the working tree. */
export async function diffCommand(root: string, base: string, format: 'table' | 'markdown', overrides: ContextOverrides): Promise<string> {
  const before = await synthAtRef(root, base, (tree) => synthAll(tree, overrides));
  const after = await synthAll(root, overrides);
  const plan = diffPipelineSets(before, after);
  return format === 'markdown' ? renderPlanMarkdown(plan) : renderPlanTable(plan);
}
