// provider `existing`: a cluster someone else runs (on-prem, a GPU cloud) that already has GPU
// nodes with drivers. The stack only connects to it and, given an NFS export, provisions the
// artifacts volume from it; everything else is the shared platform.
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import type { ExistingConfig } from './config.ts';
import { CHARTS } from './versions.ts';

/** StorageClass the stack creates when `storage.nfs` is given. */
export const NFS_STORAGE_CLASS = 'tunepipe-nfs';

export interface ExistingClusterArgs {
  readonly config: ExistingConfig;
  /** The cluster's kubeconfig, a Pulumi secret. */
  readonly kubeconfig: pulumi.Output<string>;
}

export class ExistingCluster extends pulumi.ComponentResource {
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly storageClass: pulumi.Output<string>;

  constructor(name: string, args: ExistingClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:cluster:ExistingCluster', name, {}, opts);
    this.kubeconfig = pulumi.secret(args.kubeconfig);
    this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: this.kubeconfig, enableServerSideApply: true }, { parent: this });
    const storage = args.config.storage;
    if (storage.kind === 'class') {
      this.storageClass = pulumi.output(storage.storageClass);
    } else {
      const k = { parent: this, provider: this.provider };
      const driver = new k8s.helm.v3.Release(
        `${name}-csi-driver-nfs`,
        {
          name: 'csi-driver-nfs',
          namespace: 'kube-system',
          chart: CHARTS.csiDriverNfs.chart,
          version: args.config.versions.csiDriverNfs,
          repositoryOpts: { repo: CHARTS.csiDriverNfs.repo },
          cleanupOnFail: true,
          maxHistory: 5,
          timeout: 600,
        },
        k,
      );
      const sc = new k8s.storage.v1.StorageClass(
        `${name}-nfs`,
        {
          metadata: { name: NFS_STORAGE_CLASS },
          provisioner: 'nfs.csi.k8s.io',
          // One sub-directory of the export per claim.
          parameters: { server: storage.server, share: storage.share },
          reclaimPolicy: 'Retain',
          volumeBindingMode: 'Immediate',
          mountOptions: ['nfsvers=4.1'],
        },
        { ...k, dependsOn: [driver] },
      );
      this.storageClass = sc.metadata.name;
    }
    this.registerOutputs({ kubeconfig: this.kubeconfig, storageClass: this.storageClass });
  }
}
