import type { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-types/core/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';

export type KubeObject = ConfigMap | Job | Deployment | Service | PersistentVolumeClaim | Secret;

/** Objects whose apiVersion and kind are set (kubernetes-types leaves them optional). */
export type Typed<T> = T & { apiVersion: string; kind: string; metadata: NonNullable<T extends { metadata?: infer M } ? M : never> };
