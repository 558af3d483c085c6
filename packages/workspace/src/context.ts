import { join } from 'node:path';
import { CLUSTER_SECRET_KEYS, convertInputSources, modelSourceOf, type CompileContext, type DatasetSourceInput, type MultiNodeEngine, type LocalModelInput, type Pipeline } from '@tunepipe/core';
import { DigestCache, loadLocalModel } from './model-folder.ts';
import { loadRepoConfig } from './config.ts';
import { loadDatasetSources, sourceStats } from '@tunepipe/convert';

export interface ContextOverrides {
  readonly namespace?: string;
  readonly queueName?: string;
  readonly artifactsClaim?: string;
  readonly cloud?: 'aws' | 'gcp';
  /** @default tunepipe.json `queue.gpus` */
  readonly queueGpus?: Readonly<Record<string, number>>;
  /** @default tunepipe.json `multiNode` */
  readonly multiNode?: MultiNodeEngine;
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
  const datasets: Record<string, DatasetSourceInput> = {};
  for (const source of loaded) {
    const stats = await sourceStats(root, source);
    // A file that fits neither a ConfigMap nor a declared download is check()'s finding, listed
    // with every other problem of the pipeline.
    datasets[source.name] = { ...source, ...(stats ? { stats } : {}) };
  }
  const models = await loadLocalModels(root, pipeline);
  // The repository's settings every synth must agree on (the CLI passes the namespace and queue).
  const repo = loadRepoConfig(root);
  const queueGpus = overrides.queueGpus ?? repo.queueGpus;
  const multiNode = overrides.multiNode ?? repo.multiNode;
  return {
    datasets,
    // The Secrets infra/cluster creates: a SecretRef to anything else is a check() warning.
    knownSecrets: CLUSTER_SECRET_KEYS,
    ...(Object.keys(models).length > 0 ? { models } : {}),
    ...(overrides.namespace ? { namespace: overrides.namespace } : {}),
    ...(overrides.queueName ? { queueName: overrides.queueName } : {}),
    ...(overrides.artifactsClaim ? { artifactsClaim: overrides.artifactsClaim } : {}),
    ...(overrides.cloud ? { cloud: overrides.cloud } : {}),
    ...(queueGpus ? { queueGpus } : {}),
    ...(multiNode !== undefined ? { multiNode } : {}),
  };
}

/** Folders of the pipeline's local base models (`baseModel({ path })`), by their declared path. */
export function localModelPaths(pipeline: Pipeline): string[] {
  const paths = new Set<string>();
  for (const stage of pipeline.stages) {
    if (stage.kind !== 'fetch-model') continue;
    const source = modelSourceOf(stage.options);
    if (source.kind === 'local' && typeof source.path === 'string') paths.add(source.path);
  }
  return [...paths].sort();
}

/**
 * Hashes each local model folder and reads its config.json, so compile() can name the model by its
 * content and the planner can size it. Digests are cached by file size and mtime in
 * `.tunepipe/file-digests.json`, so only changed files are read again.
 */
async function loadLocalModels(root: string, pipeline: Pipeline): Promise<Record<string, LocalModelInput>> {
  const paths = localModelPaths(pipeline);
  if (paths.length === 0) return {};
  const cache = await DigestCache.open(join(root, '.tunepipe', 'file-digests.json'));
  const models: Record<string, LocalModelInput> = {};
  for (const path of paths) models[path] = await loadLocalModel(root, path, cache);
  await cache.save();
  return models;
}
