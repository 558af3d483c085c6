import { convertInputSources, type CompileContext, type DatasetSourceInput, type Pipeline } from '@tunepipe/core';
import { datasetDeliveryIssues, loadDatasetSources, remoteUrl, sourceStats } from '@tunepipe/convert';
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
  for (const stage of pipeline.stages) if (stage.kind === 'convert') for (const s of convertInputSources(stage.options)) names.add(s);
  return [...names].sort();
}

/**
 * The fs edge of compilation: reads the dataset descriptors and files a pipeline names, so that
 * `compile()` stays pure. Missing sources are left out and reported by `check()`.
 */
export async function loadCompileContext(root: string, pipeline: Pipeline, overrides: ContextOverrides = {}): Promise<CompileContext> {
  // Bad descriptors throw a ConvertError (a CheckError): every problem, rendered without a stack.
  const loaded = await loadDatasetSources(root, datasetNames(pipeline));
  // A file that fits neither a ConfigMap nor a declared download would arrive truncated or not at all.
  const undeliverable = loaded.flatMap((source) => datasetDeliveryIssues(source));
  if (undeliverable.length > 0) throw new UserError(`dataset files of pipeline ${pipeline.name} cannot reach the cluster`, undeliverable);
  const datasets: Record<string, DatasetSourceInput> = {};
  for (const source of loaded) {
    const stats = await sourceStats(root, source);
    datasets[source.name] = {
      ...source,
      files: source.files.map((file) => {
        const url = remoteUrl(source, file.path);
        return url ? { ...file, url } : file;
      }),
      ...(stats ? { stats } : {}),
    };
  }
  return {
    datasets,
    ...(overrides.namespace ? { namespace: overrides.namespace } : {}),
    ...(overrides.queueName ? { queueName: overrides.queueName } : {}),
    ...(overrides.artifactsClaim ? { artifactsClaim: overrides.artifactsClaim } : {}),
    ...(overrides.cloud ? { cloud: overrides.cloud } : {}),
  };
}
