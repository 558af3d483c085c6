import type { KubeObject } from '@tunepipe/core';

/** The kinds `compile()` emits, each registered as its typed `@pulumi/kubernetes` resource. */
export type KubeKind = 'ConfigMap' | 'Secret' | 'PersistentVolumeClaim' | 'Service' | 'Job' | 'Deployment';

interface KindRule {
  readonly apiVersion: string;
  /** Top-level fields the typed resource class passes on; any other field would be dropped by it. */
  readonly fields: readonly string[];
}

export const KIND_RULES: Readonly<Record<KubeKind, KindRule>> = {
  ConfigMap: { apiVersion: 'v1', fields: ['metadata', 'data', 'binaryData', 'immutable'] },
  Secret: { apiVersion: 'v1', fields: ['metadata', 'data', 'stringData', 'type', 'immutable'] },
  PersistentVolumeClaim: { apiVersion: 'v1', fields: ['metadata', 'spec'] },
  Service: { apiVersion: 'v1', fields: ['metadata', 'spec'] },
  Job: { apiVersion: 'batch/v1', fields: ['metadata', 'spec'] },
  Deployment: { apiVersion: 'apps/v1', fields: ['metadata', 'spec'] },
};

/** Pulumi type token of each kind, as the typed classes register it. */
export const PULUMI_TYPES: Readonly<Record<KubeKind, string>> = {
  ConfigMap: 'kubernetes:core/v1:ConfigMap',
  Secret: 'kubernetes:core/v1:Secret',
  PersistentVolumeClaim: 'kubernetes:core/v1:PersistentVolumeClaim',
  Service: 'kubernetes:core/v1:Service',
  Job: 'kubernetes:batch/v1:Job',
  Deployment: 'kubernetes:apps/v1:Deployment',
};

export function isKubeKind(kind: unknown): kind is KubeKind {
  return typeof kind === 'string' && Object.hasOwn(KIND_RULES, kind);
}

/**
 * `Kind/name`: unique among the objects of one stack, because the Pulumi URN is the resource type
 * plus its name (the parent component's name is not part of it).
 */
export type ResourceKey = `${KubeKind}/${string}`;

export function resourceKey(kind: KubeKind, name: string): ResourceKey {
  return `${kind}/${name}`;
}

/** The key of a compiled object, or `undefined` when its kind or name is missing or unknown. */
export function keyOf(object: KubeObject): ResourceKey | undefined {
  const name = object.metadata?.name;
  return isKubeKind(object.kind) && name ? resourceKey(object.kind, name) : undefined;
}
