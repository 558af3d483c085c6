import type { CompileContext, DatasetSourceInput, Pipeline } from '@tunepipe/core';
import { ConvertError, loadDatasetSources } from '@tunepipe/convert';
import { UserError } from './errors.ts';

export interface ContextOverrides {
  readonly namespace?: string;
  readonly queueName?: string;
  readonly artifactsClaim?: string;
  readonly cloud?: 'aws' | 'gcp';
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
  let sources: readonly DatasetSourceInput[];
  try {
    sources = await loadDatasetSources(root, datasetNames(pipeline));
  } catch (error) {
    if (error instanceof ConvertError) throw new UserError(`dataset sources of pipeline ${pipeline.name}`, error.issues);
    throw error;
  }
  const datasets: Record<string, DatasetSourceInput> = {};
  for (const source of sources) datasets[source.name] = source;
  return {
    datasets,
    ...(overrides.namespace ? { namespace: overrides.namespace } : {}),
    ...(overrides.queueName ? { queueName: overrides.queueName } : {}),
    ...(overrides.artifactsClaim ? { artifactsClaim: overrides.artifactsClaim } : {}),
    ...(overrides.cloud ? { cloud: overrides.cloud } : {}),
  };
}
