// The in-cluster platform every provider gets: namespace, GPU daemons, artifacts volume, Kueue,
// runner RBAC and secrets. Each piece is a ComponentResource with typed args so the provider
// modules only decide *which* pieces and with what inputs, never how they are built.
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import type { GpuType } from './config.ts';
import {
  GPU_SYSTEM_NAMESPACE,
  KUEUE_NAMESPACE,
  artifactsClaimObject,
  clusterQueueObject,
  cpuFlavorObject,
  gpuFlavorObject,
  kueueManagerConfigYaml,
  localQueueObject,
  partOf,
  runnerAccessObjects,
  urgentPriorityClassObject,
  workloadNamespaceObject,
  workloadNetworkPolicies,
  workloadSecretObjects,
} from './platform-objects.ts';
import type { ClusterSecrets } from './stack-config.ts';
import { CHARTS, type ChartRef } from './versions.ts';

// The objects themselves (and their names) are plain data in platform-objects.ts, shared with the
// real-tools tier that applies them to a local API server without Pulumi.
export {
  ARTIFACTS_PVC,
  CPU_FLAVOR,
  GPU_SYSTEM_NAMESPACE,
  KUEUE_NAMESPACE,
  LOCAL_QUEUE,
  RUNNER_RULES,
  RUNNER_SERVICE_ACCOUNT,
  SECRET_NAMES,
  gpuFlavorName,
  gpuNodeLabels,
} from './platform-objects.ts';

const RELEASE_DEFAULTS = { cleanupOnFail: true, maxHistory: 5, timeout: 600 } as const;

function releaseSource(ref: ChartRef, version: string): Pick<k8s.helm.v3.ReleaseArgs, 'chart' | 'version' | 'repositoryOpts'> {
  return { chart: ref.chart, version, ...(ref.repo ? { repositoryOpts: { repo: ref.repo } } : {}) };
}

// ---------------------------------------------------------------------------------------------

export interface WorkloadNamespaceArgs {
  readonly name: string;
  /** Pod Security Standard enforced on every pod of the namespace. @default 'restricted' */
  readonly podSecurity: 'restricted' | 'baseline';
}

/** The namespace stage Jobs and vLLM run in, with Pod Security admission labels and NetworkPolicies. */
export class WorkloadNamespace extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>;
  constructor(name: string, args: WorkloadNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:WorkloadNamespace', name, {}, opts);
    const ns = new k8s.core.v1.Namespace(name, workloadNamespaceObject(args.name, args.podSecurity), { parent: this });
    for (const policy of workloadNetworkPolicies(ns.metadata.name)) {
      new k8s.networking.v1.NetworkPolicy(`${name}-${policy.metadata.name}`, policy, { parent: this });
    }
    this.name = ns.metadata.name;
    this.registerOutputs({ name: this.name });
  }
}

// ---------------------------------------------------------------------------------------------

export interface NvidiaGpuStackArgs {
  /** Install the NVIDIA device plugin (off where the platform runs its own, as on GKE). */
  readonly devicePlugin?: { readonly version: string };
  /** Install the DCGM exporter (off where the platform exports DCGM metrics, as on GKE). */
  readonly dcgmExporter?: { readonly version: string; readonly serviceMonitor: boolean };
}

/**
 * NVIDIA device plugin and DCGM exporter, pinned Helm releases, on GPU nodes only. No driver
 * install: on every provider the node image (EKS accelerated AMI, GKE driver installation, or the
 * operator of an existing cluster) already ships the driver and container toolkit.
 */
export class NvidiaGpuStack extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  constructor(name: string, args: NvidiaGpuStackArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:NvidiaGpuStack', name, {}, opts);
    const ns = new k8s.core.v1.Namespace(
      `${name}-ns`,
      {
        metadata: {
          name: GPU_SYSTEM_NAMESPACE,
          labels: {
            ...partOf,
            // The device plugin mounts the kubelet's device-plugin socket dir (hostPath) and DCGM
            // needs SYS_ADMIN for profiling counters: neither passes baseline, so this namespace is
            // privileged and holds nothing but these two DaemonSets.
            'pod-security.kubernetes.io/enforce': 'privileged',
            'pod-security.kubernetes.io/warn': 'privileged',
          },
        },
      },
      { parent: this },
    );
    this.namespace = ns.metadata.name;
    const onGpuNodes = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: LABELS.gpuNode, operator: 'In', values: ['true'] }] }],
        },
      },
    };
    const tolerateGpuTaint = [{ key: GPU_TAINT.key, operator: 'Exists', effect: GPU_TAINT.effect }];

    if (args.devicePlugin) {
      new k8s.helm.v3.Release(
        `${name}-device-plugin`,
        {
          name: 'nvidia-device-plugin',
          namespace: this.namespace,
          ...releaseSource(CHARTS.nvidiaDevicePlugin, args.devicePlugin.version),
          ...RELEASE_DEFAULTS,
          values: {
            // The chart's default affinity waits for NFD labels we do not install; our GPU node label replaces it.
            affinity: onGpuNodes,
            tolerations: [...tolerateGpuTaint, { key: 'CriticalAddonsOnly', operator: 'Exists' }],
            gfd: { enabled: false },
            nfd: { enabled: false },
          },
        },
        { parent: this },
      );
    }
    if (args.dcgmExporter) {
      new k8s.helm.v3.Release(
        `${name}-dcgm-exporter`,
        {
          name: 'dcgm-exporter',
          namespace: this.namespace,
          ...releaseSource(CHARTS.dcgmExporter, args.dcgmExporter.version),
          ...RELEASE_DEFAULTS,
          values: {
            affinity: onGpuNodes,
            tolerations: tolerateGpuTaint,
            // A ServiceMonitor needs the Prometheus operator's CRDs; off unless the stack says they exist.
            serviceMonitor: { enabled: args.dcgmExporter.serviceMonitor },
          },
        },
        { parent: this },
      );
    }
    this.registerOutputs({ namespace: this.namespace });
  }
}

// ---------------------------------------------------------------------------------------------

export interface ArtifactsVolumeArgs {
  readonly namespace: pulumi.Input<string>;
  /** A StorageClass that provisions ReadWriteMany volumes (EFS, Filestore, NFS). */
  readonly storageClass: pulumi.Input<string>;
  /** Requested size, a Kubernetes quantity. */
  readonly size: string;
}

/** The shared ReadWriteMany claim all stages publish their artifacts to. */
export class ArtifactsVolume extends pulumi.ComponentResource {
  readonly claimName: pulumi.Output<string>;
  constructor(name: string, args: ArtifactsVolumeArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:ArtifactsVolume', name, {}, opts);
    const pvc = new k8s.core.v1.PersistentVolumeClaim(
      name,
      artifactsClaimObject({ namespace: args.namespace, storageClass: args.storageClass, size: args.size }),
      // Binding can take minutes on Filestore; the claim is usable once bound, not before.
      { parent: this, customTimeouts: { create: '20m' } },
    );
    this.claimName = pvc.metadata.name;
    this.registerOutputs({ claimName: this.claimName });
  }
}

// ---------------------------------------------------------------------------------------------

export interface QueueingArgs {
  readonly namespace: pulumi.Input<string>;
  /** Name of the ClusterQueue (cluster-scoped). */
  readonly clusterQueue: string;
  readonly gpuTypes: readonly GpuType[];
  /** CPU and memory the queue admits at once per flavor (Kueue needs quota for every requested resource). */
  readonly cpu: string;
  readonly memory: string;
  /**
   * Kueue chart version to install; `undefined` when the cluster already runs Kueue (only its
   * objects are created, and its manager configuration, waitForPodsReady included, stays the
   * operator's: kueueManagerConfiguration is what we would set).
   */
  readonly kueueVersion: string | undefined;
}

/**
 * Kueue with one ResourceFlavor per GPU type (selecting nodes by `tunepipe.dev/gpu` and requiring
 * the GPU taint to be tolerated), a ClusterQueue capping `nvidia.com/gpu` per type, and the
 * LocalQueue stage Jobs are submitted to.
 */
export class Queueing extends pulumi.ComponentResource {
  readonly localQueue: pulumi.Output<string>;
  readonly clusterQueue: pulumi.Output<string>;
  constructor(name: string, args: QueueingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:Queueing', name, {}, opts);
    const kueue =
      args.kueueVersion === undefined
        ? []
        : [
            new k8s.helm.v3.Release(
              `${name}-kueue`,
              {
                name: 'kueue',
                namespace: KUEUE_NAMESPACE,
                createNamespace: true,
                ...releaseSource(CHARTS.kueue, args.kueueVersion),
                ...RELEASE_DEFAULTS,
                // The whole manager configuration replaces the chart's default (kept fields and
                // why: kueueManagerConfiguration), adding waitForPodsReady so a gang admitted on
                // quota but unable to start hands its GPUs back.
                values: { managerConfig: { controllerManagerConfigYaml: kueueManagerConfigYaml() } },
              },
              { parent: this },
            ),
          ];
    const afterKueue = { parent: this, dependsOn: kueue };

    const cpuFlavor = new k8s.apiextensions.CustomResource(`${name}-flavor-cpu`, cpuFlavorObject(), afterKueue);
    const gpuFlavors = args.gpuTypes.map((gpu) => new k8s.apiextensions.CustomResource(`${name}-flavor-${gpu.id}`, gpuFlavorObject(gpu.id), afterKueue));
    new k8s.apiextensions.CustomResource(`${name}-priority-urgent`, urgentPriorityClassObject(), afterKueue);
    const cq = new k8s.apiextensions.CustomResource(
      `${name}-cluster-queue`,
      clusterQueueObject({ name: args.clusterQueue, namespace: args.namespace, gpuTypes: args.gpuTypes, cpu: args.cpu, memory: args.memory }),
      { parent: this, dependsOn: [...kueue, cpuFlavor, ...gpuFlavors] },
    );
    const lq = new k8s.apiextensions.CustomResource(
      `${name}-local-queue`,
      localQueueObject({ namespace: args.namespace, clusterQueue: args.clusterQueue }),
      { parent: this, dependsOn: [cq] },
    );
    this.localQueue = lq.metadata.name;
    this.clusterQueue = cq.metadata.name;
    this.registerOutputs({ localQueue: this.localQueue, clusterQueue: this.clusterQueue });
  }
}

// ---------------------------------------------------------------------------------------------

export interface RunnerAccessArgs {
  readonly namespace: pulumi.Input<string>;
}

/** The runner's ServiceAccount with a namespaced Role holding RUNNER_RULES. */
export class RunnerAccess extends pulumi.ComponentResource {
  readonly serviceAccount: pulumi.Output<string>;
  constructor(name: string, args: RunnerAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:RunnerAccess', name, {}, opts);
    const objects = runnerAccessObjects(args.namespace);
    const sa = new k8s.core.v1.ServiceAccount(name, objects.serviceAccount, { parent: this });
    const role = new k8s.rbac.v1.Role(name, objects.role, { parent: this });
    new k8s.rbac.v1.RoleBinding(
      name,
      {
        ...objects.roleBinding,
        roleRef: { ...objects.roleBinding.roleRef, name: role.metadata.name },
        subjects: [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: args.namespace }],
      },
      { parent: this },
    );
    this.serviceAccount = sa.metadata.name;
    this.registerOutputs({ serviceAccount: this.serviceAccount });
  }
}

// ---------------------------------------------------------------------------------------------

export interface WorkloadSecretsArgs {
  readonly namespace: pulumi.Input<string>;
  readonly secrets: ClusterSecrets;
}

/** Hub tokens and the vLLM API key, from Pulumi config secrets (encrypted in state, never literals). */
export class WorkloadSecrets extends pulumi.ComponentResource {
  readonly hubTokens: pulumi.Output<string>;
  readonly vllmApiKey: pulumi.Output<string>;
  /** `{ <Secret name>: [<key>, …] }`: names only, so consumers can check their secretKeyRefs. */
  readonly keys: pulumi.Output<Record<string, string[]>>;
  constructor(name: string, args: WorkloadSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:WorkloadSecrets', name, {}, opts);
    const objects = workloadSecretObjects(args.namespace, {
      ...(args.secrets.hfToken ? { hfToken: args.secrets.hfToken } : {}),
      ...(args.secrets.modelscopeToken ? { modelscopeToken: args.secrets.modelscopeToken } : {}),
      vllmApiKey: args.secrets.vllmApiKey,
    });
    const hubData = objects.hubTokens.stringData;
    const hub = new k8s.core.v1.Secret(`${name}-hub-tokens`, { ...objects.hubTokens, stringData: pulumi.secret(hubData) }, { parent: this });
    const vllm = new k8s.core.v1.Secret(`${name}-vllm-api-key`, { ...objects.vllmApiKey, stringData: pulumi.secret(objects.vllmApiKey.stringData) }, { parent: this });
    this.hubTokens = hub.metadata.name;
    this.vllmApiKey = vllm.metadata.name;
    const hubKeys = Object.keys(hubData);
    this.keys = pulumi.all([hub.metadata.name, vllm.metadata.name]).apply(([h, v]) => ({ [h]: hubKeys, [v]: Object.keys(objects.vllmApiKey.stringData) }));
    this.registerOutputs({ hubTokens: this.hubTokens, vllmApiKey: this.vllmApiKey, keys: this.keys });
  }
}

// ---------------------------------------------------------------------------------------------

export interface PlatformArgs {
  readonly namespace: string;
  readonly podSecurity: 'restricted' | 'baseline';
  readonly gpuStack: NvidiaGpuStackArgs;
  readonly storageClass: pulumi.Input<string>;
  readonly artifactsSize: string;
  readonly queue: Omit<QueueingArgs, 'namespace'>;
  readonly secrets: ClusterSecrets;
}

/** Everything tunepipe needs inside a cluster that already has GPU nodes. */
export class Platform extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  readonly artifactsClaim: pulumi.Output<string>;
  readonly localQueue: pulumi.Output<string>;
  readonly clusterQueue: pulumi.Output<string>;
  readonly runnerServiceAccount: pulumi.Output<string>;
  readonly secretNames: pulumi.Output<{ hubTokens: string; vllmApiKey: string }>;
  readonly secretKeys: pulumi.Output<Record<string, string[]>>;
  constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:platform:Platform', name, {}, opts);
    const child = { parent: this };
    const ns = new WorkloadNamespace(`${name}-namespace`, { name: args.namespace, podSecurity: args.podSecurity }, child);
    // On GKE the node image, GKE's device plugin and managed DCGM cover it all: no namespace of ours.
    if (args.gpuStack.devicePlugin || args.gpuStack.dcgmExporter) new NvidiaGpuStack(`${name}-nvidia`, args.gpuStack, child);
    const volume = new ArtifactsVolume(`${name}-artifacts`, { namespace: ns.name, storageClass: args.storageClass, size: args.artifactsSize }, child);
    const queue = new Queueing(`${name}-queue`, { ...args.queue, namespace: ns.name }, child);
    const runner = new RunnerAccess(`${name}-runner`, { namespace: ns.name }, child);
    const secrets = new WorkloadSecrets(`${name}-secrets`, { namespace: ns.name, secrets: args.secrets }, child);
    this.namespace = ns.name;
    this.artifactsClaim = volume.claimName;
    this.localQueue = queue.localQueue;
    this.clusterQueue = queue.clusterQueue;
    this.runnerServiceAccount = runner.serviceAccount;
    this.secretNames = pulumi.output({ hubTokens: secrets.hubTokens, vllmApiKey: secrets.vllmApiKey });
    this.secretKeys = secrets.keys;
    this.registerOutputs({
      namespace: this.namespace,
      artifactsClaim: this.artifactsClaim,
      localQueue: this.localQueue,
      clusterQueue: this.clusterQueue,
      runnerServiceAccount: this.runnerServiceAccount,
      secretNames: this.secretNames,
      secretKeys: this.secretKeys,
    });
  }
}
