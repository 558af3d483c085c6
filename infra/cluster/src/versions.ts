// Every Helm chart the platform installs is pinned; `versions.<key>` in stack config overrides one.
// Bump deliberately: a chart upgrade is a `pulumi up` that rolls cluster daemons.

/** A Helm chart: where it lives and the version this stack installs. */
export interface ChartRef {
  readonly chart: string;
  /** Helm repository URL; `undefined` when `chart` is an `oci://` reference. */
  readonly repo?: string;
  readonly version: string;
}

export const CHARTS = {
  /** Exposes `nvidia.com/gpu` on nodes whose image already ships the driver and container toolkit. */
  nvidiaDevicePlugin: { chart: 'nvidia-device-plugin', repo: 'https://nvidia.github.io/k8s-device-plugin', version: '0.19.3' },
  /** GPU utilisation, memory and temperature metrics on :9400. */
  dcgmExporter: { chart: 'dcgm-exporter', repo: 'https://nvidia.github.io/dcgm-exporter/helm-charts', version: '4.8.2' },
  /** Job queueing with GPU quotas (serves the kueue.x-k8s.io/v1beta2 API). */
  kueue: { chart: 'oci://registry.k8s.io/kueue/charts/kueue', version: '0.19.2' },
  /** Scales the EKS node groups, including GPU groups from and to zero. */
  clusterAutoscaler: { chart: 'cluster-autoscaler', repo: 'https://kubernetes.github.io/autoscaler', version: '9.59.0' },
  /** Dynamic NFS provisioning for `existing` clusters that give an NFS export. */
  csiDriverNfs: { chart: 'csi-driver-nfs', repo: 'https://kubernetes-csi.github.io/csi-driver-nfs', version: '4.13.4' },
} as const satisfies Record<string, ChartRef>;

export type ChartName = keyof typeof CHARTS;

/** The Kueue API version the resources below are written against (v1beta2 since Kueue 0.15). */
export const KUEUE_API = 'kueue.x-k8s.io/v1beta2';

/**
 * Cluster-autoscaler image per Kubernetes minor: the autoscaler must match the control plane's
 * minor version, so the image follows `kubernetesVersion` (override: `versions.clusterAutoscalerImage`).
 */
export const CLUSTER_AUTOSCALER_IMAGES: Readonly<Record<string, string>> = {
  '1.33': 'v1.33.6',
  '1.34': 'v1.34.5',
  '1.35': 'v1.35.2',
};

/** EKS Kubernetes version the `aws` provider creates unless `kubernetesVersion` is set. */
export const DEFAULT_EKS_VERSION = '1.34';
