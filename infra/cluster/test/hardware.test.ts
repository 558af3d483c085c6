import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClusterConfig, type SecretPresence } from '../src/config.ts';
import { GCP_ACCELERATORS, gcpBuiltInGpuCount } from '../src/hardware.ts';
import { GCP_CONFIG } from './mock-cloud.ts';

/**
 * NVIDIA accelerator type names as Compute Engine documents them ("GPU machine types",
 * cloud.google.com/compute/docs/gpus) and GKE takes them (`--accelerator type=…`, the node label
 * `cloud.google.com/gke-accelerator`). Typed here from the documentation: a name the stack accepts
 * must be one of these, or GKE rejects the node pool long after `pulumi preview` said yes.
 */
const DOCUMENTED_GKE_ACCELERATOR_TYPES = new Set([
  'nvidia-gb200',
  'nvidia-b200',
  'nvidia-h200-141gb',
  'nvidia-h100-mega-80gb',
  'nvidia-h100-80gb',
  'nvidia-a100-80gb',
  'nvidia-tesla-a100',
  'nvidia-l4',
  'nvidia-rtx-pro-6000',
  'nvidia-tesla-t4',
  'nvidia-tesla-v100',
  'nvidia-tesla-p100',
  'nvidia-tesla-p4',
]);

const SECRETS: SecretPresence = { vllmApiKey: true, hfToken: false, modelscopeToken: false, kubeconfig: false };

test('every GKE accelerator type the stack accepts is a documented name', () => {
  for (const name of Object.keys(GCP_ACCELERATORS)) {
    assert.ok(DOCUMENTED_GKE_ACCELERATOR_TYPES.has(name), `${name} is not a documented GKE accelerator type`);
  }
});

test('GKE H200 is nvidia-h200-141gb on A3 Ultra; the undocumented nvidia-h200 is refused', () => {
  assert.equal(GCP_ACCELERATORS['nvidia-h200-141gb']?.gpu.memoryGb, 141);
  assert.equal(GCP_ACCELERATORS['nvidia-h200'], undefined);
  assert.equal(gcpBuiltInGpuCount('a3-ultragpu-8g'), 8);
  const h200 = { name: 'h200', gpu: 'h200', machineType: 'a3-ultragpu-8g', acceleratorType: 'nvidia-h200-141gb', maxNodes: 1, zones: ['us-central1-a'] };
  const accepted = parseClusterConfig({ ...GCP_CONFIG, gpuNodeGroups: [h200], quota: { gpus: 8 } }, SECRETS);
  assert.ok(accepted.ok, accepted.ok ? '' : accepted.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  const refused = parseClusterConfig({ ...GCP_CONFIG, gpuNodeGroups: [{ ...h200, acceleratorType: 'nvidia-h200' }], quota: { gpus: 8 } }, SECRETS);
  assert.equal(refused.ok, false);
  if (!refused.ok) {
    const issue = refused.issues.find((i) => i.path === 'gpuNodeGroups[0].acceleratorType');
    assert.ok(issue, 'the wrong name is reported at its path');
    assert.match(`${issue.message} ${issue.fix ?? ''}`, /nvidia-h200-141gb/, 'the message names the right type');
  }
});
