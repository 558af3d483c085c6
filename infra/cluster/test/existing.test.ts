import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARTS } from '../src/versions.ts';
import { EXISTING_CONFIG, KUBECONFIG, SECRETS, isSecretValue, runStack } from './mock-cloud.ts';

const secrets = { ...SECRETS, kubeconfig: KUBECONFIG };

test('existing: no cloud resources, only the platform, through a provider built from the secret kubeconfig', async () => {
  const { cloud, resolved } = await runStack({ ...EXISTING_CONFIG }, secrets);
  assert.deepEqual(cloud.registrations.filter((r) => /^(aws|gcp|pulumi:providers:(aws|gcp))/.test(r.type)), []);
  const provider = cloud.one('pulumi:providers:kubernetes');
  assert.ok(isSecretValue(provider.inputs['kubeconfig']));
  assert.equal(provider.inputs['kubeconfig'].value, KUBECONFIG);
  for (const r of cloud.registrations.filter((r) => r.type.startsWith('kubernetes:'))) {
    assert.match(r.provider ?? '(default provider)', /::gpu-box-k8s::/, `${r.type} ${r.name}`);
  }
  assert.equal(resolved['kubeconfig'], KUBECONFIG);
  const pvc = cloud.one('kubernetes:core/v1:PersistentVolumeClaim').inputs;
  assert.deepEqual([pvc['spec'].storageClassName, pvc['spec'].resources.requests.storage], ['nfs-client', '2Ti']);
  assert.equal(cloud.release('nvidia-device-plugin').inputs['version'], CHARTS.nvidiaDevicePlugin.version);
});

test('existing with an NFS export: csi-driver-nfs (pinned) and a StorageClass on that export back the PVC', async () => {
  const { cloud } = await runStack(
    { ...EXISTING_CONFIG, storage: { nfs: { server: 'nas.lab.internal', share: '/export/tunepipe' } } },
    secrets,
  );
  const driver = cloud.release('csi-driver-nfs');
  assert.equal(driver.inputs['version'], '4.13.4');
  assert.equal(driver.inputs['namespace'], 'kube-system');
  const sc = cloud.one('kubernetes:storage.k8s.io/v1:StorageClass').inputs;
  assert.equal(sc['provisioner'], 'nfs.csi.k8s.io');
  assert.deepEqual(sc['parameters'], { server: 'nas.lab.internal', share: '/export/tunepipe' });
  assert.equal(cloud.one('kubernetes:core/v1:PersistentVolumeClaim').inputs['spec'].storageClassName, sc['metadata'].name);
});

test('existing cluster that already runs a device plugin: ours is left out, DCGM stays', async () => {
  const { cloud } = await runStack({ ...EXISTING_CONFIG, existing: { devicePlugin: false } }, secrets);
  const charts = cloud.ofType('kubernetes:helm.sh/v3:Release').map((r) => r.inputs['chart']).sort();
  assert.deepEqual(charts, ['dcgm-exporter', 'oci://registry.k8s.io/kueue/charts/kueue']);
});

test('existing cluster that already runs Kueue: no Kueue chart, but its flavors and queues are still created', async () => {
  // The queue objects used to depend on our Kueue Helm release unconditionally, so a cluster whose
  // operator already runs Kueue (or the real-tools tier's local control plane) could not get them.
  const { cloud, resolved } = await runStack({ ...EXISTING_CONFIG, existing: { devicePlugin: false, kueue: false }, dcgmExporter: { enabled: false } }, secrets);
  assert.deepEqual(cloud.ofType('kubernetes:helm.sh/v3:Release'), []);
  const kinds = cloud.ofType('kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor').length;
  assert.equal(kinds, 2, 'the CPU flavor and one per GPU type');
  assert.equal(cloud.ofType('kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue').length, 1);
  assert.equal(resolved['localQueue'], 'tunepipe');
});

test('existing.kueue must be a boolean', async () => {
  await assert.rejects(runStack({ ...EXISTING_CONFIG, existing: { kueue: 'maybe' } }, secrets), (error: Error) => /existing\.kueue/.test(error.message));
});
