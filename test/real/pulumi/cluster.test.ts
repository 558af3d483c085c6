// `pulumi up` of infra/cluster (provider `existing`) with the real engine and Kubernetes provider
// against the local control plane: every in-cluster part that needs no remote Helm chart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RUNNER_RULES } from '../../../infra/cluster/src/platform-objects.ts';
import { startCluster } from '../support/cluster.ts';
import { type Backend, changed, configMap, expectProgramFailure, inlineStack, localBackend, plaintextIn, recorder } from './engine.ts';
import { CLUSTER_PROJECT, GPU_GROUPS, NAMESPACE, SECRET_VALUES, STORAGE_CLASS, clusterProgram, clusterStack, inlineKubeconfig, prepareStorage } from './platform.ts';

let cluster: Awaited<ReturnType<typeof startCluster>>;
let backend: Backend;
let kubeconfig: { text: string; privateKeyData: string };
const STACK = 'local';

before(async () => {
  cluster = await startCluster({ cpuNodes: 1 });
  backend = await localBackend();
  kubeconfig = inlineKubeconfig(cluster);
  await prepareStorage(cluster);
});

after(async () => {
  await cluster?.stop();
  backend?.dispose();
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('a config with problems stops `pulumi up` with every problem listed, no stack trace, nothing created', async () => {
  const stack = await inlineStack(backend, CLUSTER_PROJECT, 'bad-config', clusterProgram);
  await stack.setAllConfig(
    configMap(
      CLUSTER_PROJECT,
      { provider: 'existing', gpuNodeGroups: [{ gpu: 'l4', instanceTypes: ['g6.xlarge'] }], quota: { gpus: 0 }, storage: { storageClas: STORAGE_CLASS } },
      { vllmApiKey: SECRET_VALUES.vllmApiKey, kubeconfig: kubeconfig.text },
    ),
  );
  const { error } = await expectProgramFailure(() => stack.up());
  const text = String(error.message);
  assert.match(text, /problems?; nothing was created/);
  for (const path of ['gpuNodeGroups\\[0\\]\\.instanceTypes', 'quota\\.gpus', 'storage\\.storageClas']) assert.match(text, new RegExp(`✗ ${path}`));
  assert.doesNotMatch(text, /\n\s+at .+\(.+:\d+:\d+\)/, 'a user error must not print a stack trace');
  const state = await stack.exportStack();
  assert.equal((state.deployment.resources ?? []).filter((r: { type: string }) => r.type.startsWith('kubernetes:')).length, 0);
  await stack.workspace.removeStack('bad-config', { force: true });
});

test('pulumi up applies namespace, RBAC, Kueue objects, claim and Secrets for real; secrets stay encrypted in the state', async () => {
  const stack = await clusterStack(backend, STACK, kubeconfig.text);
  const rec = recorder();
  const started = Date.now();
  const result = await stack.up({ onEvent: rec.onEvent, onOutput: rec.onOutput });
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(`[pulumi] infra/cluster first pulumi up: ${seconds.toFixed(1)} s, ${rec.recorded.steps.length} steps\n`);
  assert.equal(result.summary.result, 'succeeded');

  // Namespace with Pod Security admission labels.
  const ns = await cluster.api.get('v1', 'Namespace', NAMESPACE);
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/warn'], 'restricted');
  // ... and the real admission enforces it: a root pod is refused (server-side dry run).
  await assert.rejects(
    cluster.api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'root-probe', namespace: NAMESPACE }, spec: { containers: [{ name: 'c', image: 'busybox:1.37.0' }] } }, { dryRun: true }),
    /violates PodSecurity "restricted:latest"/,
  );

  // Runner RBAC exactly as declared.
  const role = await cluster.api.get('rbac.authorization.k8s.io/v1', 'Role', 'tunepipe-runner', NAMESPACE);
  assert.deepEqual(
    role.rules.map((r: { apiGroups: string[]; resources: string[]; verbs: string[] }) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs })),
    RUNNER_RULES.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })),
  );
  const binding = await cluster.api.get('rbac.authorization.k8s.io/v1', 'RoleBinding', 'tunepipe-runner', NAMESPACE);
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'tunepipe-runner', namespace: NAMESPACE }]);
  assert.ok(await cluster.api.get('v1', 'ServiceAccount', 'tunepipe-runner', NAMESPACE));

  // Kueue objects, accepted by Kueue's webhooks and reconciled by its controller.
  const flavors = (await cluster.api.list('kueue.x-k8s.io/v1beta2', 'ResourceFlavor')).map((f: { metadata: { name: string } }) => f.metadata.name).sort();
  assert.deepEqual(flavors, ['tunepipe-cpu', ...GPU_GROUPS.map((g) => `tunepipe-gpu-${g.gpu}`)].sort());
  await waitUntil('ClusterQueue tunepipe Active', async () => {
    const cq = await cluster.api.get('kueue.x-k8s.io/v1beta2', 'ClusterQueue', NAMESPACE);
    return cq?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Active' && c.status === 'True');
  });
  await waitUntil('LocalQueue tunepipe Active', async () => {
    const lq = await cluster.api.get('kueue.x-k8s.io/v1beta2', 'LocalQueue', 'tunepipe', NAMESPACE);
    return lq?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Active' && c.status === 'True');
  });

  // The artifacts claim, bound (pulumi up waited for it).
  const pvc = await cluster.api.get('v1', 'PersistentVolumeClaim', 'tunepipe-artifacts', NAMESPACE);
  assert.equal(pvc.status.phase, 'Bound');

  // Secrets from config secrets, with the values the stack was given.
  const vllm = await cluster.api.get('v1', 'Secret', 'tunepipe-vllm-api-key', NAMESPACE);
  assert.equal(vllm.data.VLLM_API_KEY, b64(SECRET_VALUES.vllmApiKey));
  const hub = await cluster.api.get('v1', 'Secret', 'tunepipe-hub-tokens', NAMESPACE);
  assert.deepEqual(Object.keys(hub.data), ['HF_TOKEN']);
  assert.equal(hub.data.HF_TOKEN, b64(SECRET_VALUES.hfToken));

  // Secrets stay encrypted in the state file: neither the plain values nor their base64 forms.
  const stateFile = backend.stateFile(CLUSTER_PROJECT, STACK);
  const leaks = plaintextIn(stateFile, {
    vllmApiKey: SECRET_VALUES.vllmApiKey,
    'vllmApiKey (base64)': b64(SECRET_VALUES.vllmApiKey),
    hfToken: SECRET_VALUES.hfToken,
    'hfToken (base64)': b64(SECRET_VALUES.hfToken),
    'kubeconfig client key': kubeconfig.privateKeyData,
  });
  assert.deepEqual(leaks, [], `plaintext secrets in ${stateFile}`);
  assert.match(readFileSync(stateFile, 'utf8'), /"ciphertext":/, 'the secrets are in the state, encrypted');

  const outputs = await stack.outputs();
  assert.equal(outputs['kubeconfig']?.secret, true);
  assert.equal(outputs['namespace']?.value, NAMESPACE);
  assert.equal(outputs['localQueue']?.value, 'tunepipe');
  assert.deepEqual(outputs['secretKeys']?.value, { 'tunepipe-hub-tokens': ['HF_TOKEN'], 'tunepipe-vllm-api-key': ['VLLM_API_KEY'] });
});

test('a second pulumi up changes nothing', async () => {
  const stack = await clusterStack(backend, STACK, kubeconfig.text);
  const rec = recorder();
  const result = await stack.up({ onEvent: rec.onEvent });
  assert.deepEqual(changed(rec.recorded), {});
  assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ['same']);
});

test('pulumi destroy removes what the stack installed and leaves the cluster', async () => {
  const stack = await clusterStack(backend, STACK, kubeconfig.text);
  await stack.destroy();
  await waitUntil('namespace tunepipe gone', async () => (await cluster.api.get('v1', 'Namespace', NAMESPACE)) === undefined);
  assert.deepEqual(await cluster.api.list('kueue.x-k8s.io/v1beta2', 'ResourceFlavor'), []);
  assert.equal(await cluster.api.get('kueue.x-k8s.io/v1beta2', 'ClusterQueue', NAMESPACE), undefined);
  // What the operator had stays: the storage class and the nodes.
  assert.ok(await cluster.api.get('storage.k8s.io/v1', 'StorageClass', STORAGE_CLASS));
  assert.ok((await cluster.api.list('v1', 'Node')).length > 0);
});

async function waitUntil(what: string, check: () => Promise<unknown>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
