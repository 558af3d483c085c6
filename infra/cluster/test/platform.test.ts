// The in-cluster platform, checked on every provider branch.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import { CHARTS } from '../src/versions.ts';
import { KUEUE_PODS_READY, kueueManagerConfiguration } from '../src/platform-objects.ts';
import {
  AWS_CONFIG,
  EXISTING_CONFIG,
  GCP_CONFIG,
  KUBECONFIG,
  type MockCloudDouble,
  SECRETS,
  isSecretValue,
  plaintextOccurrences,
  runStack,
} from './mock-cloud.ts';

const BRANCHES = [
  { provider: 'aws', config: AWS_CONFIG, secrets: { ...SECRETS }, gpus: { 'a10g': 8, 'h100-80gb': 8 } },
  { provider: 'gcp', config: GCP_CONFIG, secrets: { ...SECRETS }, gpus: { 'l4': 4 } },
  { provider: 'existing', config: EXISTING_CONFIG, secrets: { ...SECRETS, kubeconfig: KUBECONFIG }, gpus: { 'a100-80gb': 2 } },
] as const;

const SEMVER = /^\d+\.\d+\.\d+$/;

for (const branch of BRANCHES) {
  describe(`platform on ${branch.provider}`, () => {
    let cloud: MockCloudDouble;
    before(async () => {
      ({ cloud } = await runStack({ ...branch.config }, branch.secrets));
    });
    const byName = (type: string, name: string) => {
      const found = cloud.ofType(type).find((r) => r.inputs['metadata']?.name === name);
      assert.ok(found, `no ${type} named ${name}`);
      return found.inputs;
    };

    test('workload namespace enforces the restricted Pod Security Standard', () => {
      const labels = byName('kubernetes:core/v1:Namespace', 'tunepipe')['metadata'].labels;
      assert.equal(labels['pod-security.kubernetes.io/enforce'], 'restricted');
      assert.equal(labels['pod-security.kubernetes.io/warn'], 'restricted');
      assert.equal(labels['pod-security.kubernetes.io/audit'], 'restricted');
    });

    test('NVIDIA daemons, where ours, run in their own privileged namespace, only on GPU nodes, tolerating the GPU taint', () => {
      const releases = cloud.ofType('kubernetes:helm.sh/v3:Release').filter((r) => ['nvidia-device-plugin', 'dcgm-exporter'].includes(r.inputs['chart']));
      if (branch.provider === 'gcp') return assert.deepEqual(releases, []);
      assert.equal(releases.length, 2);
      const ns = byName('kubernetes:core/v1:Namespace', 'tunepipe-gpu-system');
      assert.equal(ns['metadata'].labels['pod-security.kubernetes.io/enforce'], 'privileged');
      for (const r of releases) {
        assert.equal(r.inputs['namespace'], 'tunepipe-gpu-system');
        const terms = r.inputs['values'].affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
        assert.deepEqual(terms, [{ matchExpressions: [{ key: LABELS.gpuNode, operator: 'In', values: ['true'] }] }]);
        assert.ok(r.inputs['values'].tolerations.some((t: Record<string, string>) => t['key'] === GPU_TAINT.key && t['effect'] === GPU_TAINT.effect));
      }
    });

    test('every Helm chart is pinned to an exact version from the table', () => {
      const releases = cloud.ofType('kubernetes:helm.sh/v3:Release');
      assert.ok(releases.length > 0);
      const known = new Map<string, string>(Object.values(CHARTS).map((c) => [c.chart, c.version]));
      for (const r of releases) {
        assert.match(r.inputs['version'] ?? '(unpinned)', SEMVER, `${r.inputs['chart']}`);
        assert.equal(r.inputs['version'], known.get(r.inputs['chart']), `${r.inputs['chart']} not at its pinned version`);
      }
    });

    test('artifacts: one ReadWriteMany claim named tunepipe-artifacts in the namespace', () => {
      const pvc = byName('kubernetes:core/v1:PersistentVolumeClaim', 'tunepipe-artifacts');
      assert.equal(pvc['metadata'].namespace, 'tunepipe');
      assert.deepEqual(pvc['spec'].accessModes, ['ReadWriteMany']);
    });

    test('Kueue: pinned chart, a flavor per GPU type matching the node labels, GPU quota from config, LocalQueue in the namespace', () => {
      const kueue = cloud.release('oci://registry.k8s.io/kueue/charts/kueue');
      assert.equal(kueue.inputs['version'], CHARTS.kueue.version);
      const flavors = cloud.ofType('kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor').map((f) => f.inputs);
      const gpuFlavors = flavors.filter((f) => f['spec'].nodeLabels);
      assert.deepEqual(
        gpuFlavors.map((f) => f['spec'].nodeLabels[LABELS.gpuType]).sort(),
        Object.keys(branch.gpus).sort(),
      );
      for (const f of gpuFlavors) assert.deepEqual(f['spec'].nodeTaints, [{ ...GPU_TAINT }]);
      if (branch.provider === 'aws') {
        const nodeLabels = cloud.ofType('aws:eks/nodeGroup:NodeGroup').map((g) => g.inputs['labels']?.[LABELS.gpuType]).filter(Boolean);
        assert.deepEqual(nodeLabels.sort(), Object.keys(branch.gpus).sort(), 'flavors must select the labels the node groups carry');
      }
      const cq = cloud.one('kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue').inputs['spec'];
      assert.deepEqual(cq.namespaceSelector, { matchLabels: { 'kubernetes.io/metadata.name': 'tunepipe' } });
      const group = cq.resourceGroups[0];
      assert.deepEqual(group.coveredResources, ['cpu', 'memory', 'nvidia.com/gpu']);
      const flavorNameToGpu = new Map(gpuFlavors.map((f) => [f['metadata'].name, f['spec'].nodeLabels[LABELS.gpuType]]));
      const gpuQuota = Object.fromEntries(
        group.flavors
          .filter((f: { name: string }) => flavorNameToGpu.has(f.name))
          .map((f: { name: string; resources: { name: string; nominalQuota: string }[] }) => [
            flavorNameToGpu.get(f.name),
            Number(f.resources.find((r) => r.name === 'nvidia.com/gpu')?.nominalQuota),
          ]),
      );
      assert.deepEqual(gpuQuota, branch.gpus);
      const cpuFlavor = group.flavors[0];
      assert.equal(cpuFlavor.resources.find((r: { name: string }) => r.name === 'nvidia.com/gpu').nominalQuota, '0');
      // A higher WorkloadPriorityClass preempts stage Jobs of the same queue; Kueue evicts a gang whole.
      assert.deepEqual(cq.preemption, { withinClusterQueue: 'LowerPriority', reclaimWithinCohort: 'Never' });
      const urgent = cloud.one('kubernetes:kueue.x-k8s.io/v1beta2:WorkloadPriorityClass').inputs;
      assert.equal(urgent['metadata'].name, 'tunepipe-urgent');
      assert.ok(urgent['value'] > 0, 'above the stage Jobs (no class: priority 0)');
      const lq = cloud.one('kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue').inputs;
      assert.deepEqual([lq['metadata'].name, lq['metadata'].namespace, lq['spec'].clusterQueue], ['tunepipe', 'tunepipe', 'tunepipe']);
    });

    test('Kueue runs our manager configuration: waitForPodsReady on, Jobs and JobSets managed, the chart defaults it needs kept', () => {
      const values = cloud.release('oci://registry.k8s.io/kueue/charts/kueue').inputs['values'];
      // The chart reads the text with fromYaml; ours is JSON, which is YAML.
      const config = JSON.parse(values.managerConfig.controllerManagerConfigYaml);
      assert.deepEqual(config, kueueManagerConfiguration());
      assert.deepEqual(config.waitForPodsReady, {
        timeout: KUEUE_PODS_READY.timeout,
        recoveryTimeout: KUEUE_PODS_READY.recoveryTimeout,
        blockAdmission: false,
        requeuingStrategy: { timestamp: 'Eviction', backoffBaseSeconds: KUEUE_PODS_READY.backoffBaseSeconds, backoffMaxSeconds: KUEUE_PODS_READY.backoffMaxSeconds },
      });
      assert.deepEqual(config.integrations, { frameworks: ['batch/job', 'jobset.x-k8s.io/jobset'] });
      assert.equal(config.manageJobsWithoutQueueName, false);
      // The chart's Deployment probes :8081, its Services target :8443 and :9443, and two
      // replicas share the chart's lease.
      assert.deepEqual([config.health, config.metrics, config.webhook], [{ healthProbeBindAddress: ':8081' }, { bindAddress: ':8443' }, { port: 9443 }]);
      assert.deepEqual(config.leaderElection, { leaderElect: true, resourceName: 'c1f6bfd2.kueue.x-k8s.io' });
      // Certificates stay the chart's (it fills internalCertManagement in when we leave it out).
      assert.ok(!('internalCertManagement' in config));
    });

    test('runner RBAC: a namespaced Role with no wildcards, no Secrets and no cluster-wide grants', () => {
      assert.equal(cloud.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRole').length, 0);
      assert.equal(cloud.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding').length, 0);
      const role = cloud.one('kubernetes:rbac.authorization.k8s.io/v1:Role').inputs;
      assert.equal(role['metadata'].namespace, 'tunepipe');
      const rules = role['rules'] as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
      for (const rule of rules) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs]) assert.ok(!field.includes('*'), JSON.stringify(rule));
        assert.ok(!rule.resources.includes('secrets'), 'the runner must not read Secrets');
      }
      const grants = new Set(rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups[0]}/${res}:${v}`))));
      for (const needed of ['batch/jobs:create', 'batch/jobs:watch', 'batch/jobs:delete', '/pods:list', '/pods/log:get', '/configmaps:patch', 'apps/deployments:create', 'coordination.k8s.io/leases:update', 'kueue.x-k8s.io/workloads:watch']) {
        assert.ok(grants.has(needed), `runner lacks ${needed}`);
      }
      // Trimmed to what the runner calls (packages/runner/test/rbac.test.ts): no events, no reads of ConfigMaps.
      assert.ok(!grants.has('/pods:delete') && !grants.has('/configmaps:delete') && !grants.has('/events:list') && !grants.has('/configmaps:list'));
      assert.ok(!grants.has('kueue.x-k8s.io/workloads:patch') && !grants.has('kueue.x-k8s.io/workloads:delete'), 'Workloads are read only');
      const binding = cloud.one('kubernetes:rbac.authorization.k8s.io/v1:RoleBinding').inputs;
      assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tunepipe-runner' });
      assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'tunepipe-runner', namespace: 'tunepipe' }]);
    });

    test('secrets: hub tokens and vLLM key are Pulumi secrets in the registered Secrets; no plaintext anywhere', () => {
      const hub = byName('kubernetes:core/v1:Secret', 'tunepipe-hub-tokens');
      const vllm = byName('kubernetes:core/v1:Secret', 'tunepipe-vllm-api-key');
      assert.ok(isSecretValue(hub['stringData']));
      assert.ok(isSecretValue(vllm['stringData']));
      assert.deepEqual(hub['stringData'].value, { HF_TOKEN: SECRETS.hfToken, MODELSCOPE_API_TOKEN: SECRETS.modelscopeToken });
      assert.deepEqual(vllm['stringData'].value, { VLLM_API_KEY: SECRETS.vllmApiKey });
      const values = Object.values(branch.secrets);
      for (const r of cloud.registrations) {
        for (const secret of values) {
          assert.deepEqual(plaintextOccurrences(r.inputs, secret), [], `${r.type} ${r.name} holds a secret in plain text`);
        }
      }
    });
  });
}

test('without hub tokens the hub Secret is still created (stages reference it), holding no keys', async () => {
  const { cloud, resolved } = await runStack({ ...EXISTING_CONFIG }, { vllmApiKey: SECRETS.vllmApiKey, kubeconfig: KUBECONFIG });
  const hub = cloud.ofType('kubernetes:core/v1:Secret').find((s) => s.inputs['metadata'].name === 'tunepipe-hub-tokens');
  assert.deepEqual(hub?.inputs['stringData'].value, {});
  assert.deepEqual(resolved['secretKeys'], { 'tunepipe-hub-tokens': [], 'tunepipe-vllm-api-key': ['VLLM_API_KEY'] });
});

test('baseline Pod Security when asked, still warning at restricted', async () => {
  const { cloud } = await runStack({ ...EXISTING_CONFIG, podSecurity: 'baseline', namespace: 'ml' }, { ...SECRETS, kubeconfig: KUBECONFIG });
  const ns = cloud.ofType('kubernetes:core/v1:Namespace').find((n) => n.inputs['metadata'].name === 'ml');
  assert.equal(ns?.inputs['metadata'].labels['pod-security.kubernetes.io/enforce'], 'baseline');
  assert.equal(ns?.inputs['metadata'].labels['pod-security.kubernetes.io/warn'], 'restricted');
  const lq = cloud.one('kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue').inputs;
  assert.equal(lq['metadata'].namespace, 'ml');
});
