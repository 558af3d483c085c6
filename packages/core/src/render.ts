import { stringify } from 'yaml';
import type { CompiledPipeline } from './compiled.ts';
import type { KubeObject } from './kube.ts';

export interface RenderedFile {
  /** Path relative to the output folder. */
  readonly path: string;
  readonly content: string;
}

const TOP_KEYS = ['apiVersion', 'kind', 'metadata'];

/** apiVersion, kind and metadata first, then the rest in the order the compiler built them. */
export function orderTopLevel<T extends object>(object: T): T {
  const entries = Object.entries(object);
  const head = TOP_KEYS.flatMap((k) => entries.filter(([key]) => key === k));
  const tail = entries.filter(([key]) => !TOP_KEYS.includes(key));
  return Object.fromEntries([...head, ...tail]) as T;
}

/** Deterministic YAML for Kubernetes objects: no line folding, no anchors, literal blocks for scripts. */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false, blockQuote: 'literal' });
}

/** Named by kind and name only: adding a stage adds files without renaming the others. */
export function objectFileName(object: KubeObject): string {
  return `${(object.kind ?? 'object').toLowerCase()}-${object.metadata?.name ?? 'unnamed'}.yaml`;
}

/** One file per object, plus a kustomization.yaml that lists them in apply order. */
export function renderManifests(compiled: CompiledPipeline): RenderedFile[] {
  const files = compiled.objects.map((object) => ({
    path: objectFileName(object),
    content: toYaml(orderTopLevel(object)),
  }));
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: compiled.namespace,
    resources: files.map((f) => f.path),
  };
  return [...files, { path: 'kustomization.yaml', content: toYaml(kustomization) }];
}
