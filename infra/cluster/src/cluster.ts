// defineCluster(): the whole program as a function of validated config, so tests run it under
// Pulumi mocks with fresh state per case and index.ts stays a three-line edge.
import * as pulumi from '@pulumi/pulumi';
import type * as k8s from '@pulumi/kubernetes';
import { GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import type { ClusterConfig, ProviderName } from './config.ts';
import type { ClusterSecrets } from './stack-config.ts';
import { EksCluster } from './aws.ts';
import { GkeCluster } from './gcp.ts';
import { ExistingCluster } from './existing.ts';
import { type NvidiaGpuStackArgs, Platform } from './platform.ts';

/** Stack outputs: what the compiler, the runner and the pipelines stack read from this stack. */
export interface ClusterOutputs {
  readonly provider: ProviderName;
  /** Kubeconfig of the cluster, a Pulumi secret. */
  readonly kubeconfig: pulumi.Output<string>;
  readonly namespace: pulumi.Output<string>;
  /** ReadWriteMany claim mounted at /artifacts by every stage. */
  readonly artifactsPvc: pulumi.Output<string>;
  readonly storageClass: pulumi.Output<string>;
  /** LocalQueue for the `kueue.x-k8s.io/queue-name` label of GPU Jobs. */
  readonly localQueue: pulumi.Output<string>;
  readonly clusterQueue: pulumi.Output<string>;
  readonly runnerServiceAccount: pulumi.Output<string>;
  /** GPU catalogue ids the cluster has nodes for (values of the `tunepipe.dev/gpu` node label). */
  readonly gpuTypes: readonly string[];
  /** Node label keys GPU nodes carry. */
  readonly gpuNodeLabels: { readonly gpuType: string; readonly gpuNode: string };
  readonly gpuTaint: typeof GPU_TAINT;
  readonly secretNames: pulumi.Output<{ hubTokens: string; vllmApiKey: string }>;
  /** `{ <Secret name>: [<key>, …] }` of the Secrets above (names only, never values). */
  readonly secretKeys: pulumi.Output<Record<string, string[]>>;
  readonly chartVersions: ClusterConfig['versions'];
}

interface ClusterHandle {
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly storageClass: pulumi.Output<string>;
  readonly gpuStack: NvidiaGpuStackArgs;
}

/** Registers the cluster (for aws / gcp) and the tunepipe platform in it. */
export function defineCluster(config: ClusterConfig, secrets: ClusterSecrets): ClusterOutputs {
  const handle = createCluster(config, secrets);
  const platform = new Platform(
    'tunepipe',
    {
      namespace: config.namespace,
      podSecurity: config.podSecurity,
      gpuStack: handle.gpuStack,
      storageClass: handle.storageClass,
      artifactsSize: config.artifactsSize,
      queue: {
        clusterQueue: config.namespace,
        gpuTypes: config.gpuTypes,
        cpu: config.quota.cpu,
        memory: config.quota.memory,
        // An existing cluster may already run Kueue (its operator's): then only our queue objects are created.
        kueueVersion: config.provider === 'existing' && !config.kueue ? undefined : config.versions.kueue,
      },
      secrets,
    },
    // Never the ambient kubeconfig: everything in the platform goes to the cluster of this stack.
    { providers: [handle.provider] },
  );
  return {
    provider: config.provider,
    kubeconfig: handle.kubeconfig,
    namespace: platform.namespace,
    artifactsPvc: platform.artifactsClaim,
    storageClass: handle.storageClass,
    localQueue: platform.localQueue,
    clusterQueue: platform.clusterQueue,
    runnerServiceAccount: platform.runnerServiceAccount,
    gpuTypes: config.gpuTypes.map((g) => g.id),
    gpuNodeLabels: { gpuType: LABELS.gpuType, gpuNode: LABELS.gpuNode },
    gpuTaint: GPU_TAINT,
    secretNames: platform.secretNames,
    secretKeys: platform.secretKeys,
    chartVersions: config.versions,
  };
}

function createCluster(config: ClusterConfig, secrets: ClusterSecrets): ClusterHandle {
  const dcgm = config.dcgmExporter.enabled ? { dcgmExporter: { version: config.versions.dcgmExporter, serviceMonitor: config.dcgmExporter.serviceMonitor } } : {};
  switch (config.provider) {
    case 'aws': {
      const eks = new EksCluster(config.clusterName, { config });
      return { kubeconfig: eks.kubeconfig, provider: eks.provider, storageClass: eks.storageClass, gpuStack: { devicePlugin: { version: config.versions.nvidiaDevicePlugin }, ...dcgm } };
    }
    case 'gcp': {
      const gke = new GkeCluster(config.clusterName, { config });
      return { kubeconfig: gke.kubeconfig, provider: gke.provider, storageClass: gke.storageClass, gpuStack: {} };
    }
    case 'existing': {
      if (!secrets.kubeconfig) throw new Error('unreachable: the config check requires kubeconfig for provider existing');
      const existing = new ExistingCluster(config.clusterName, { config, kubeconfig: secrets.kubeconfig });
      return {
        kubeconfig: existing.kubeconfig,
        provider: existing.provider,
        storageClass: existing.storageClass,
        gpuStack: { ...(config.devicePlugin ? { devicePlugin: { version: config.versions.nvidiaDevicePlugin } } : {}), ...dcgm },
      };
    }
  }
}
