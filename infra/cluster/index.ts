// Pulumi entry point (see Pulumi.yaml). Validates the stack config before registering anything,
// then defines the cluster and platform; the exports below are the stack outputs.
import { loadStackConfig } from './src/stack-config.ts';
import { defineCluster } from './src/cluster.ts';

const { config, secrets } = loadStackConfig();
const cluster = defineCluster(config, secrets);

export const provider = cluster.provider;
export const kubeconfig = cluster.kubeconfig;
export const namespace = cluster.namespace;
export const artifactsPvc = cluster.artifactsPvc;
export const storageClass = cluster.storageClass;
export const localQueue = cluster.localQueue;
export const clusterQueue = cluster.clusterQueue;
export const runnerServiceAccount = cluster.runnerServiceAccount;
export const gpuTypes = cluster.gpuTypes;
export const gpuNodeLabels = cluster.gpuNodeLabels;
export const gpuTaint = cluster.gpuTaint;
export const secretNames = cluster.secretNames;
export const secretKeys = cluster.secretKeys;
export const chartVersions = cluster.chartVersions;
