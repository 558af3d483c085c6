// The `infra/cluster` stack (provider `existing`) against the local control plane: its config, the
// objects the test sets up first (what a cluster operator would already have), and the inline
// program that runs infra/cluster/index.ts exactly as `pulumi up` loads it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { automation } from '@pulumi/pulumi';
import type { LocalCluster } from '../support/cluster.ts';
import { type Backend, configMap, inlineStack, repoRoot } from './engine.ts';

export const CLUSTER_PROJECT = 'tunepipe-cluster';
/** ReadWriteMany class an operator of an existing cluster would provide (no provisioner: a pre-made PV). */
export const STORAGE_CLASS = 'tunepipe-local-rwx';
export const NAMESPACE = 'tunepipe';

/** Test values of the config secrets; the state file must never contain them in plain text. */
export const SECRET_VALUES = {
  vllmApiKey: 'vllm-real-tier-key-3c51f0e2a9b84d7e',
  hfToken: 'hf_realTierFakeToken8d02b7',
};

export type { LocalCluster } from '../support/cluster.ts';

/**
 * The admin kubeconfig with its files inlined (`*-data`), as a user pastes a kubeconfig into
 * `pulumi config set --secret kubeconfig`; the state check then covers a real private key.
 */
export function inlineKubeconfig(cluster: LocalCluster): { text: string; privateKeyData: string } {
  let privateKeyData = '';
  const text = readFileSync(cluster.kubeconfig, 'utf8').replace(/^(\s*)(client-certificate|client-key|certificate-authority): (\S+)$/gm, (_, indent: string, key: string, file: string) => {
    const data = readFileSync(file).toString('base64');
    if (key === 'client-key') privateKeyData = data;
    return `${indent}${key}-data: ${data}`;
  });
  if (!privateKeyData) throw new Error(`${cluster.kubeconfig} has no client-key file to inline`);
  return { text, privateKeyData };
}

/**
 * What the operator of an existing cluster already has: a ReadWriteMany StorageClass with a volume
 * (the control plane runs no storage driver, so the PV is made by hand and the PV binder binds it).
 */
export async function prepareStorage(cluster: LocalCluster): Promise<void> {
  await cluster.api.apply({
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: STORAGE_CLASS },
    provisioner: 'kubernetes.io/no-provisioner',
    volumeBindingMode: 'Immediate',
    reclaimPolicy: 'Retain',
  });
  await cluster.api.apply({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: 'tunepipe-local-artifacts' },
    spec: {
      storageClassName: STORAGE_CLASS,
      capacity: { storage: '50Gi' },
      accessModes: ['ReadWriteMany'],
      persistentVolumeReclaimPolicy: 'Retain',
      // Never mounted: kwok's pods do not start containers.
      nfs: { server: '127.0.0.1', path: '/export/tunepipe' },
    },
  });
}

/** GPU groups matching the control plane's kwok nodes (test/real/support/cluster.ts). */
export const GPU_GROUPS = [{ gpu: 'l4' }, { gpu: 't4' }, { gpu: 'a100-80gb' }];

export function clusterStackConfig(kubeconfig: string): automation.ConfigMap {
  return configMap(
    CLUSTER_PROJECT,
    {
      provider: 'existing',
      clusterName: 'local',
      namespace: NAMESPACE,
      gpuNodeGroups: GPU_GROUPS,
      quota: { gpus: 2 },
      storage: { storageClass: STORAGE_CLASS, size: '50Gi' },
      // The charts (device plugin, DCGM, Kueue) are remote Helm charts: the control plane runs its
      // own Kueue, and kwok nodes advertise nvidia.com/gpu without a device plugin.
      existing: { devicePlugin: false, kueue: false },
      dcgmExporter: { enabled: false },
    },
    { vllmApiKey: SECRET_VALUES.vllmApiKey, hfToken: SECRET_VALUES.hfToken, kubeconfig },
  );
}

let programRuns = 0;

/**
 * infra/cluster/index.ts as the program: imported afresh per run (its top level reads the stack
 * config and registers everything, as under `pulumi up`); its exports are the stack outputs.
 */
export const clusterProgram: automation.PulumiFn = async () => {
  const url = pathToFileURL(join(repoRoot, 'infra', 'cluster', 'index.ts')).href;
  const module = (await import(`${url}?run=${++programRuns}`)) as Record<string, unknown>;
  return { ...module };
};

export async function clusterStack(backend: Backend, stackName: string, kubeconfig: string): Promise<automation.Stack> {
  const stack = await inlineStack(backend, CLUSTER_PROJECT, stackName, clusterProgram);
  await stack.setAllConfig(clusterStackConfig(kubeconfig));
  return stack;
}
