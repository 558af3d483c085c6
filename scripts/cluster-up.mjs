#!/usr/bin/env node
// `npm run cluster:up`: a local control plane (etcd, kube-apiserver, controller-manager,
// scheduler, kwok with fake GPU nodes, Kueue) in the foreground, with the `tunepipe` namespace
// made as infra/cluster makes it, for trying `tunepipe run` by hand. Ctrl-C stops everything.
//
// Runs under tsx (see package.json) because the namespace comes from infra/cluster's TypeScript.
import { installAll } from './real/install.mjs';
import { formatSeconds } from './real/lib.mjs';
import { startCluster } from '../test/real/support/cluster.ts';

const namespace = process.env.TUNEPIPE_NAMESPACE ?? 'tunepipe';
const started = Date.now();
await installAll(['controlplane']);
// Four GPUs of each type the example pipelines use (qwen-support's stages take up to 2 A100s).
const cluster = await startCluster({
  gpuNodes: ['l4', 't4', 'a100-80gb'].map((type) => ({ type, count: 1, gpus: 4 })),
  cpuNodes: 2,
  podRunMs: 5000,
});
let stopping = false;
const stop = async (code) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('\nstopping the local cluster …\n');
  await cluster.stop();
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

const ns = await cluster.createTunepipeNamespace(namespace, { gpuQuota: 4 });
// A day-long token: long enough for an afternoon of trying, short enough not to matter.
const runnerKubeconfig = await cluster.serviceAccountKubeconfig(namespace, 'tunepipe-runner', 86_400);

process.stdout.write(
  [
    '',
    `local cluster ready in ${formatSeconds((Date.now() - started) / 1000)} (control plane ${formatSeconds(cluster.startSeconds)}) at ${cluster.server}`,
    `nodes: ${cluster.nodes.join(', ')} (kwok: pods are simulated and succeed after 5 s)`,
    `namespace ${namespace}: Pod Security restricted, Kueue LocalQueue ${ns.queue} (4 GPUs per type), runner ServiceAccount tunepipe-runner`,
    '',
    '# as the runner (its ServiceAccount token, RBAC as infra/cluster grants it):',
    `export KUBECONFIG=${runnerKubeconfig}`,
    `npm run tunepipe -- run llama3-fintech --namespace ${namespace} --queue ${ns.queue}`,
    `npm run tunepipe -- status llama3-fintech --namespace ${namespace}`,
    '',
    '# as cluster admin:',
    `export KUBECONFIG=${cluster.kubeconfig}`,
    '',
    `logs: ${cluster.logDir}   (Ctrl-C stops the cluster and removes its folder)`,
    '',
  ].join('\n'),
);
// Keep the event loop alive until a signal arrives.
setInterval(() => undefined, 1 << 30);
