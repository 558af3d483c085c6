import { diffPipelineSets, renderPlanMarkdown, renderPlanTable, synthAtRef } from '@tunepipe/gitops';
import type { CompiledPipeline } from '@tunepipe/core';
import { discoverPipelines, synthPipeline, type ContextOverrides } from '@tunepipe/workspace';
import { toJson, type DiffJson } from '../json.ts';

async function synthAll(root: string, overrides: ContextOverrides, only: readonly string[] | undefined): Promise<CompiledPipeline[]> {
  const out: CompiledPipeline[] = [];
  for (const name of discoverPipelines(root)) {
    if (only && !only.includes(name)) continue;
    out.push((await synthPipeline(root, name, overrides)).compiled);
  }
  return out;
}

/**
 * Which stages a change re-runs, why, and the GPU-hours it spends: base ref against the working
 * tree, for every pipeline or only those named (`only`).
 */
export async function diffCommand(root: string, base: string, format: 'table' | 'markdown' | 'json', overrides: ContextOverrides, only?: readonly string[]): Promise<string> {
  const before = await synthAtRef(root, base, (tree) => synthAll(tree, overrides, only));
  const after = await synthAll(root, overrides, only);
  const plan = diffPipelineSets(before, after);
  if (format === 'json') return toJson({ schema: 'tunepipe.diff/v1', base, ...plan } satisfies DiffJson).trimEnd();
  return format === 'markdown' ? renderPlanMarkdown(plan) : renderPlanTable(plan);
}
