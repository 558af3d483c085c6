import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import { GCP_CONFIG, type MockCloudDouble, SECRETS, isSecretValue, runStack } from './mock-cloud.ts';

let cloud: MockCloudDouble;
let resolved: Record<string, unknown>;
before(async () => {
  ({ cloud, resolved } = await runStack({ ...GCP_CONFIG }, { ...SECRETS }));
});

const pool = (name: string) => cloud.one('gcp:container/nodePool:NodePool', `tunepipe-test-${name}`).inputs;

test('GKE cluster: own node pools, Workload Identity, Filestore CSI, managed DCGM metrics', () => {
  const gke = cloud.one('gcp:container/cluster:Cluster').inputs;
  assert.equal(gke['name'], 'tunepipe-test');
  assert.equal(gke['location'], 'us-central1');
  assert.equal(gke['removeDefaultNodePool'], true);
  assert.deepEqual(gke['workloadIdentityConfig'], { workloadPool: 'tunepipe-dev.svc.id.goog' });
  assert.deepEqual(gke['addonsConfig'], { gcpFilestoreCsiDriverConfig: { enabled: true } });
  assert.deepEqual(gke['monitoringConfig'], { enableComponents: ['SYSTEM_COMPONENTS', 'DCGM'], managedPrometheus: { enabled: true } });
  assert.deepEqual(cloud.one('pulumi:providers:gcp').inputs['project'], 'tunepipe-dev');
});

test('GPU pool: guest accelerators with driver installation, autoscaling from 0, GPU taint and labels, chosen zones', () => {
  const gpu = pool('l4');
  assert.equal(gpu['initialNodeCount'], 0);
  assert.deepEqual(gpu['autoscaling'], { totalMinNodeCount: 0, totalMaxNodeCount: 4, locationPolicy: 'ANY' });
  assert.deepEqual(gpu['nodeLocations'], ['us-central1-a', 'us-central1-c']);
  const node = gpu['nodeConfig'];
  assert.equal(node.machineType, 'g2-standard-8');
  assert.deepEqual(node.guestAccelerators, [{ type: 'nvidia-l4', count: 1, gpuDriverInstallationConfig: { gpuDriverVersion: 'LATEST' } }]);
  assert.deepEqual(node.taints, [{ key: GPU_TAINT.key, value: GPU_TAINT.value, effect: 'NO_SCHEDULE' }]);
  assert.deepEqual(node.labels, { [LABELS.gpuType]: 'l4', [LABELS.gpuNode]: 'true' });
});

test('CPU pool: no accelerators, no taint, at least one node', () => {
  const cpu = pool('cpu');
  assert.equal(cpu['nodeConfig'].guestAccelerators, undefined);
  assert.equal(cpu['nodeConfig'].taints, undefined);
  assert.equal(cpu['autoscaling'].totalMinNodeCount, 1);
});

test('no NVIDIA daemons of ours on GKE (GKE runs the device plugin and DCGM); artifacts on Filestore', () => {
  const charts = cloud.ofType('kubernetes:helm.sh/v3:Release').map((r) => r.inputs['chart']);
  assert.deepEqual(charts, ['oci://registry.k8s.io/kueue/charts/kueue']);
  assert.ok(!cloud.ofType('kubernetes:core/v1:Namespace').some((n) => n.inputs['metadata'].name === 'tunepipe-gpu-system'));
  const pvc = cloud.one('kubernetes:core/v1:PersistentVolumeClaim').inputs;
  assert.equal(pvc['spec'].storageClassName, 'standard-rwx');
  assert.equal(pvc['spec'].resources.requests.storage, '1Ti');
});

test('kubeconfig via gke-gcloud-auth-plugin, handed to the Kubernetes provider as a secret; every resource uses an explicit provider', () => {
  const kubeconfig = JSON.parse(resolved['kubeconfig'] as string);
  assert.equal(kubeconfig.clusters[0].cluster.server, 'https://203.0.113.10');
  assert.equal(kubeconfig.users[0].user.exec.command, 'gke-gcloud-auth-plugin');
  assert.ok(isSecretValue(cloud.one('pulumi:providers:kubernetes').inputs['kubeconfig']));
  for (const r of cloud.registrations.filter((r) => r.custom && !r.type.startsWith('pulumi:providers:'))) {
    const expected = r.type.startsWith('gcp:') ? 'tunepipe-test-gcp' : 'tunepipe-test-k8s';
    assert.match(r.provider ?? '(default provider)', new RegExp(`::${expected}::`), `${r.type} ${r.name}`);
  }
});

test('GPU pools without zones of their own use gcp.zones', async () => {
  const { cloud: c } = await runStack({ ...GCP_CONFIG, gpuNodeGroups: [{ gpu: 'a100-80gb', machineType: 'a2-ultragpu-1g', acceleratorType: 'nvidia-a100-80gb' }] }, { ...SECRETS });
  const gpu = c.one('gcp:container/nodePool:NodePool', 'tunepipe-test-gpu-a100-80gb').inputs;
  assert.deepEqual(gpu['nodeLocations'], ['us-central1-a']);
  assert.deepEqual(gpu['nodeConfig'].guestAccelerators[0].count, 1);
});

test('DCGM metrics can be switched off', async () => {
  const { cloud: c } = await runStack({ ...GCP_CONFIG, dcgmExporter: { enabled: false } }, { ...SECRETS });
  assert.deepEqual(c.one('gcp:container/cluster:Cluster').inputs['monitoringConfig'].enableComponents, ['SYSTEM_COMPONENTS']);
});
