// provider `gcp`: a GKE Standard cluster with a CPU pool for the platform and GPU pools that GKE's
// own autoscaler scales from zero. GKE installs the NVIDIA driver (gpuDriverInstallationConfig),
// runs its own device plugin and exports DCGM metrics, so the platform adds no NVIDIA daemons here.
import * as pulumi from '@pulumi/pulumi';
import * as gcp from '@pulumi/gcp';
import * as k8s from '@pulumi/kubernetes';
import { GPU_TAINT } from '@tunepipe/core/labels';
import type { GcpConfig } from './config.ts';
import { gpuNodeLabels } from './platform.ts';

const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

export interface GkeClusterArgs {
  readonly config: GcpConfig;
}

/** A GKE cluster ready for the tunepipe platform; `provider` deploys into it. */
export class GkeCluster extends pulumi.ComponentResource {
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly storageClass: pulumi.Output<string>;
  readonly clusterName: pulumi.Output<string>;

  constructor(name: string, args: GkeClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:cluster:GkeCluster', name, {}, opts);
    const c = args.config;
    const gcpProvider = new gcp.Provider(`${name}-gcp`, { project: c.project, region: c.region }, { parent: this });
    const o = { parent: this, provider: gcpProvider };

    const cluster = new gcp.container.Cluster(
      `${name}-gke`,
      {
        name: c.clusterName,
        location: c.location,
        // Node pools are separate resources so each can change without replacing the cluster.
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        deletionProtection: c.deletionProtection,
        releaseChannel: { channel: c.releaseChannel },
        ...(c.kubernetesVersion ? { minMasterVersion: c.kubernetesVersion } : {}),
        network: c.network,
        ...(c.subnetwork ? { subnetwork: c.subnetwork } : {}),
        networkingMode: 'VPC_NATIVE',
        ipAllocationPolicy: {},
        workloadIdentityConfig: { workloadPool: `${c.project}.svc.id.goog` },
        addonsConfig: { gcpFilestoreCsiDriverConfig: { enabled: true } },
        // GKE-managed DCGM exporter: GPU metrics without a privileged DaemonSet of ours.
        monitoringConfig: {
          enableComponents: ['SYSTEM_COMPONENTS', ...(c.dcgmExporter.enabled ? ['DCGM'] : [])],
          managedPrometheus: { enabled: true },
        },
      },
      o,
    );
    this.clusterName = cluster.name;

    const nodeBasics = { oauthScopes: [CLOUD_PLATFORM_SCOPE], workloadMetadataConfig: { mode: 'GKE_METADATA' } };
    const cpuPool = new gcp.container.NodePool(
      `${name}-cpu`,
      {
        name: 'cpu',
        cluster: cluster.id,
        location: c.location,
        initialNodeCount: 1,
        autoscaling: { totalMinNodeCount: c.cpuNodes.minNodes, totalMaxNodeCount: c.cpuNodes.maxNodes, locationPolicy: 'BALANCED' },
        management: { autoRepair: true, autoUpgrade: true },
        nodeConfig: { ...nodeBasics, machineType: c.cpuNodes.machineType, diskSizeGb: c.cpuNodes.diskSizeGb, diskType: 'pd-balanced' },
      },
      { ...o, ignoreChanges: ['initialNodeCount'] },
    );
    const gpuPools = c.gpuNodeGroups.map(
      (g) =>
        new gcp.container.NodePool(
          `${name}-${g.name}`,
          {
            name: g.name,
            cluster: cluster.id,
            location: c.location,
            // GPUs exist in a few zones per region only; the pool goes where the stack says.
            ...(g.zones ? { nodeLocations: [...g.zones] } : {}),
            initialNodeCount: 0,
            autoscaling: { totalMinNodeCount: g.minNodes, totalMaxNodeCount: g.maxNodes, locationPolicy: 'ANY' },
            management: { autoRepair: true, autoUpgrade: true },
            nodeConfig: {
              ...nodeBasics,
              machineType: g.machineType,
              diskSizeGb: g.diskSizeGb,
              diskType: 'pd-ssd',
              spot: g.spot,
              guestAccelerators: [
                { type: g.acceleratorType, count: g.acceleratorCount, gpuDriverInstallationConfig: { gpuDriverVersion: c.gpuDriverVersion } },
              ],
              labels: gpuNodeLabels(g.gpu),
              taints: [{ key: GPU_TAINT.key, value: GPU_TAINT.value, effect: 'NO_SCHEDULE' }],
            },
          },
          o,
        ),
    );

    this.kubeconfig = pulumi.secret(
      pulumi.all([cluster.name, cluster.endpoint, cluster.masterAuth]).apply(([clusterName, endpoint, auth]) =>
        gkeKubeconfig(clusterName, endpoint, auth.clusterCaCertificate ?? ''),
      ),
    );
    this.provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: this.kubeconfig, enableServerSideApply: true },
      { parent: this, dependsOn: [cpuPool, ...gpuPools] },
    );
    // GKE's Filestore CSI driver ships the ReadWriteMany classes; nothing to create.
    this.storageClass = pulumi.output(c.storageClass);
    this.registerOutputs({ kubeconfig: this.kubeconfig, storageClass: this.storageClass, clusterName: this.clusterName });
  }
}

/** Kubeconfig that authenticates with `gke-gcloud-auth-plugin` (gcloud of whoever runs kubectl). */
export function gkeKubeconfig(clusterName: string, endpoint: string, caCertificate: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster: { server: `https://${endpoint}`, 'certificate-authority-data': caCertificate } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    'current-context': clusterName,
    users: [
      {
        name: clusterName,
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: 'gke-gcloud-auth-plugin',
            provideClusterInfo: true,
            interactiveMode: 'Never',
          },
        },
      },
    ],
  });
}
