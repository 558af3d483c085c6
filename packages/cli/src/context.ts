import type { CompileContext, DatasetSourceInput, Pipeline } from '@tunepipe/core';
import { loadDatasetSources } from '@tunepipe/convert';
import { UserError } from './errors.ts';

export interface ContextOverrides {
  readonly namespace?: string;
  readonly queueName?: string;
  readonly artifactsClaim?: string;
}

/** Dataset sources the pipeline's convert stages name. */
function datasetNames(pipeline: Pipeline): string[] {
  const names = new Set<string>();
  for (const stage of pipeline.stages) if (stage.kind === 'convert') for (const s of stage.options.sources) names.add(s);
  return [...names].sort();
}

/**
 * The fs edge of compilation: reads the dataset descriptors and files a pipeline names, so that
 * `compile()` stays pure. Missing sources are left out and reported by `check()`.
 */
export async function loadCompileContext(root: string, pipeline: Pipeline, overrides: ContextOverrides = {}): Promise<CompileContext> {
  const names = datasetNames(pipeline);
  const loaded = await loadDatasetSources(root, names);
  if (loaded.issues.length > 0) throw new UserError(`dataset descriptors of pipeline ${pipeline.name}`, loaded.issues);
  const datasets: Record<string, DatasetSourceInput> = {};
  for (const source of loaded.sources) datasets[source.name] = source;
  return {
    datasets,
    ...(overrides.namespace ? { namespace: overrides.namespace } : {}),
    ...(overrides.queueName ? { queueName: overrides.queueName } : {}),
    ...(overrides.artifactsClaim ? { artifactsClaim: overrides.artifactsClaim } : {}),
  };
}
