import type { Container, EnvVar, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration } from 'kubernetes-types/core/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { SecretRef } from './dsl.ts';
import { ARTIFACTS_MOUNT } from './context.ts';
import { GPU_RESOURCE, GPU_TAINT, LABELS, MANAGED_BY } from './labels.ts';
import type { StagePlan } from './plan.ts';
import { sha256Hex } from './hash.ts';
import { shellQuote, shellQuoteIn } from './shell.ts';
import { shellCheckFunctions, shellVerifyInputs, STAGE_ENV } from './artifacts/protocol.ts';

/**
 * The compiler's pod builder: every pod tunepipe creates (stage Jobs, the serve Deployment, the
 * verify Job, the runner's marker check) gets its security context, scratch and placement here,
 * so all of them pass the same admission (Pod Security `restricted`).
 */
const RUN_AS_USER = 1000;

export function metadata(name: string, namespace: string, labels: Record<string, string>, annotations?: Record<string, string>) {
  return { name, namespace, labels, ...(annotations ? { annotations } : {}) };
}

export function secretEnv(name: string, ref: SecretRef | undefined, options: { optional?: boolean } = {}): EnvVar[] {
  return ref ? [{ name, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key, ...(options.optional ? { optional: true } : {}) } } }] : [];
}

/**
 * Object-store credentials for the fetch-model Job, each from a key of the named Secret (never a
 * literal); without a Secret the pod's workload identity (IRSA, GKE Workload Identity) is used.
 */
export function objectStoreEnv(uri: string, credentials: { readonly secretName: string } | undefined): EnvVar[] {
  if (!credentials) return [];
  const secretName = credentials.secretName;
  if (uri.startsWith('gs://')) return secretEnv('GOOGLE_SERVICE_ACCOUNT_JSON', { secretName, key: 'GOOGLE_SERVICE_ACCOUNT_JSON' });
  return [
    ...secretEnv('AWS_ACCESS_KEY_ID', { secretName, key: 'AWS_ACCESS_KEY_ID' }),
    ...secretEnv('AWS_SECRET_ACCESS_KEY', { secretName, key: 'AWS_SECRET_ACCESS_KEY' }),
    ...secretEnv('AWS_SESSION_TOKEN', { secretName, key: 'AWS_SESSION_TOKEN' }, { optional: true }),
  ];
}

// Functions, not shared constants: one object referenced twice would turn into YAML anchors.
export function containerSecurity(): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    // Tools write only to the volumes mounted for them: /tmp (HOME and caches), /dev/shm, /artifacts.
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function podSecurity(): PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: RUN_AS_USER,
    runAsGroup: RUN_AS_USER,
    fsGroup: RUN_AS_USER,
    // Without it the kubelet re-owns every file of the shared artifacts volume at each pod start
    // (minutes on a large NFS volume, and a failure on root_squash exports); the root of a volume
    // already owned by the group is proof enough.
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Writable scratch for tools that expect a home directory (caches, Triton kernels). */
export function scratchEnv(): EnvVar[] {
  return [
    { name: 'HOME', value: '/tmp' },
    { name: 'HF_HOME', value: '/tmp/hf' },
    { name: 'XDG_CACHE_HOME', value: '/tmp/cache' },
  ];
}

export function gpuPlacement(plan: StagePlan): { nodeSelector?: Record<string, string>; tolerations?: Toleration[] } {
  if (plan.gpus === 0) return {};
  const tolerations: Toleration[] = [{ key: GPU_TAINT.key, operator: 'Exists', effect: GPU_TAINT.effect }];
  return {
    ...(plan.gpuType ? { nodeSelector: { [LABELS.gpuType]: plan.gpuType } } : {}),
    tolerations,
  };
}

export function resourcesFor(plan: StagePlan): ResourceRequirements {
  const requests: Record<string, string> = { cpu: plan.cpu, memory: plan.memory };
  const limits: Record<string, string> = { memory: plan.memory };
  if (plan.gpus > 0) {
    requests[GPU_RESOURCE] = String(plan.gpus);
    limits[GPU_RESOURCE] = String(plan.gpus);
  }
  return { requests, limits };
}

/**
 * A pod waits for its inputs' completion markers before its tool starts. Pulumi and the runner
 * order stages themselves, but a GitOps controller may release a stage early (Flux counts a
 * Kueue-suspended Job as ready), and a stage must never read a half-written artifact.
 */
export function waitForMarkers(name: string, markers: readonly string[], runtimeImage: string, options: { readonly verify?: readonly string[] } = {}): Container {
  const test = markers.map((marker) => `[ -f ${shellQuote(marker)} ]`).join(' && ');
  const wait = `until ${test}; do echo "waiting for: ${shellQuoteIn(markers.join(' '), 'double')}"; sleep 15; done`;
  // `verify`: folders checked byte for byte against their SHA256SUMS once the markers are there,
  // by the stage wrapper's own input check (a pod with no wrapper, such as vLLM's, reads them
  // unchecked otherwise). The folders reach the shell through the environment, never its text.
  const verify = options.verify ?? [];
  return {
    name,
    image: runtimeImage,
    command: ['/bin/sh', '-c'],
    args: [verify.length > 0 ? `${wait}\n${shellCheckFunctions()}\n${shellVerifyInputs()}` : wait],
    ...(verify.length > 0 ? { env: [{ name: STAGE_ENV.inputs, value: verify.join('\n') }] } : {}),
    securityContext: containerSecurity(),
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    volumeMounts: [{ name: 'artifacts', mountPath: ARTIFACTS_MOUNT, readOnly: true }],
  };
}

/** What the runner's marker check needs to know about the pipeline's volume and images. */
export interface MarkerCheckSettings {
  readonly pipeline: string;
  readonly namespace: string;
  readonly artifactsClaim: string;
  readonly runtimeImage: string;
}

/** Name of the marker-check Job for a set of markers (stable, so a re-run finds its own). */
export function markerCheckJobName(pipeline: string, markers: readonly string[]): string {
  const digest = sha256Hex(markers.join('\n')).slice(0, 8);
  return `${pipeline.slice(0, 63 - 22).replace(/-+$/, '')}-marker-check-${digest}`;
}

/**
 * The runner's question to the artifacts volume, which completion markers exist: one small CPU
 * pod that mounts the claim read-only and prints `present <path>` per marker.
 */
export function markerCheckJob(settings: MarkerCheckSettings, markers: readonly string[], options: { readonly timeoutSeconds: number; readonly image?: string }): Job {
  const name = markerCheckJobName(settings.pipeline, markers);
  const labels = {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.partOf]: 'tunepipe',
    [LABELS.component]: 'marker-check',
    [LABELS.pipeline]: settings.pipeline,
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(name, settings.namespace, labels),
    spec: {
      backoffLimit: 0,
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: options.timeoutSeconds,
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          securityContext: podSecurity(),
          containers: [
            {
              name: 'check',
              image: options.image ?? settings.runtimeImage,
              securityContext: containerSecurity(),
              // printf, not echo: dash's echo reads backslashes in the path as escapes.
              command: ['sh', '-c', 'for m in "$@"; do if [ -f "$m" ]; then printf \'present %s\\n\' "$m"; fi; done', 'marker-check', ...markers],
              resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '32Mi' } },
              volumeMounts: [{ name: 'artifacts', mountPath: ARTIFACTS_MOUNT, readOnly: true }],
            },
          ],
          volumes: [{ name: 'artifacts', persistentVolumeClaim: { claimName: settings.artifactsClaim, readOnly: true } }],
        },
      },
    },
  };
}
