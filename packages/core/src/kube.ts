import type { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-types/core/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';

import type { JobSpec } from 'kubernetes-types/batch/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';

/** A JobSet (jobset.x-k8s.io/v1alpha2): the fields the compiler sets. */
export interface JobSet {
  apiVersion: 'jobset.x-k8s.io/v1alpha2';
  kind: 'JobSet';
  metadata: ObjectMeta;
  spec: {
    network?: { enableDNSHostnames?: boolean; subdomain?: string; publishNotReadyAddresses?: boolean };
    failurePolicy?: { maxRestarts?: number; rules?: { name: string; action: 'FailJobSet' | 'RestartJobSet' | 'RestartJobSetAndIgnoreMaxRestarts'; onJobFailureReasons?: string[] }[] };
    replicatedJobs: { name: string; replicas: number; template: { metadata?: ObjectMeta; spec: JobSpec } }[];
  };
}

export type KubeObject = ConfigMap | Job | Deployment | Service | PersistentVolumeClaim | Secret | JobSet;

/** Objects whose apiVersion and kind are set (kubernetes-types leaves them optional). */
export type Typed<T> = T & { apiVersion: string; kind: string; metadata: NonNullable<T extends { metadata?: infer M } ? M : never> };
