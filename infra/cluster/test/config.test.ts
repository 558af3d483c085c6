import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Issue } from '@tunepipe/core';
import { type ClusterConfig, parseClusterConfig, type SecretPresence } from '../src/config.ts';
import { AWS_CONFIG, EXISTING_CONFIG, GCP_CONFIG } from './mock-cloud.ts';

const WITH_KEY: SecretPresence = { vllmApiKey: true, hfToken: false, modelscopeToken: false, kubeconfig: false };
const EXISTING_SECRETS: SecretPresence = { ...WITH_KEY, kubeconfig: true };

function ok(raw: Record<string, unknown>, secrets: SecretPresence = WITH_KEY): ClusterConfig {
  const result = parseClusterConfig(raw, secrets);
  if (!result.ok) assert.fail(`expected valid config, got:\n${result.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return result.config;
}

function problems(raw: Record<string, unknown>, secrets: SecretPresence = WITH_KEY): Issue[] {
  const result = parseClusterConfig(raw, secrets);
  assert.equal(result.ok, false, 'expected the config to be rejected');
  return result.ok ? [] : result.issues;
}

const at = (issues: Issue[], path: string): Issue => {
  const found = issues.find((i) => i.path === path);
  assert.ok(found, `no issue at ${path}; issues: ${issues.map((i) => i.path).join(', ')}`);
  return found;
};

test('aws config: defaults fill in, GPUs per node come from the instance type', () => {
  const c = ok({ ...AWS_CONFIG });
  assert.equal(c.provider, 'aws');
  if (c.provider !== 'aws') return;
  assert.equal(c.kubernetesVersion, '1.34');
  assert.equal(c.clusterAutoscalerImage, 'v1.34.5');
  assert.deepEqual(c.network, { kind: 'create', vpcCidr: '10.0.0.0/16', availabilityZones: ['us-east-1a', 'us-east-1b'] });
  assert.deepEqual(
    c.gpuNodeGroups.map((g) => [g.name, g.gpusPerNode, g.minNodes, g.maxNodes, g.capacityType]),
    [
      ['a10g', 1, 0, 3, 'ON_DEMAND'],
      ['h100', 8, 0, 1, 'SPOT'],
    ],
  );
  assert.deepEqual(c.gpuTypes, [
    { id: 'a10g', quotaGpus: 8 },
    { id: 'h100-80gb', quotaGpus: 8 },
  ]);
  assert.equal(c.namespace, 'tunepipe');
  assert.equal(c.podSecurity, 'restricted');
  assert.equal(c.artifactsSize, '500Gi');
});

test('numbers and booleans written as strings by `pulumi config set --path` are accepted', () => {
  const c = ok({
    ...EXISTING_CONFIG,
    quota: { gpus: '4' },
    gpuNodeGroups: [{ gpu: 'a100-80gb', quotaGpus: '2' }],
    existing: { devicePlugin: 'false' },
  }, EXISTING_SECRETS);
  assert.equal(c.quota.gpus, 4);
  assert.deepEqual(c.gpuTypes, [{ id: 'a100-80gb', quotaGpus: 2 }]);
  assert.equal(c.provider === 'existing' && c.devicePlugin, false);
});

test('unknown provider, missing GPU instance types and quota 0 are reported together', () => {
  const issues = problems({ provider: 'azure', region: 'eu-west-1', gpuNodeGroups: [{ gpu: 'a10g' }], quota: { gpus: 0 } });
  const provider = at(issues, 'provider');
  assert.equal(provider.code, 'config.choice');
  assert.match(provider.message, /'aws', 'gcp', 'existing'/);
  assert.equal(provider.value, 'azure');
  assert.equal(at(issues, 'quota.gpus').message, 'must be at least 1');
  // The provider is unknown, so instance types cannot be judged yet; with provider aws they are:
  const aws = problems({ provider: 'aws', region: 'eu-west-1', gpuNodeGroups: [{ gpu: 'a10g' }], quota: { gpus: -2 } });
  assert.match(at(aws, 'gpuNodeGroups[0].instanceTypes').message, /required with provider aws/);
  assert.match(at(aws, 'gpuNodeGroups[0].instanceTypes').fix ?? '', /g5\.xlarge/);
  assert.equal(at(aws, 'quota.gpus').value, -2);
});

test('a misspelt provider gets a suggestion', () => {
  assert.match(at(problems({ ...AWS_CONFIG, provider: 'gpc' }), 'provider').fix ?? '', /'gcp'/);
});

test('unknown keys are errors with did-you-mean, at top level and nested', () => {
  const issues = problems({ ...AWS_CONFIG, gpuNodeGroup: [], quota: { gpus: 8, gpu: 2 }, aws: { vpcCidrs: '10.1.0.0/16' } });
  assert.match(at(issues, 'gpuNodeGroup').fix ?? '', /'gpuNodeGroups'/);
  assert.match(at(issues, 'quota.gpu').fix ?? '', /'gpus'/);
  assert.match(at(issues, 'aws.vpcCidrs').fix ?? '', /'vpcCidr'/);
});

test('missing required keys: provider, GPU groups, quota, vLLM API key', () => {
  const issues = problems({}, { ...WITH_KEY, vllmApiKey: false });
  for (const path of ['provider', 'gpuNodeGroups', 'quota', 'vllmApiKey']) at(issues, path);
  assert.match(at(issues, 'vllmApiKey').fix ?? '', /--secret vllmApiKey/);
});

test('a GPU catalogue id that does not match the instance type is rejected with the right id', () => {
  const issues = problems({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'a100-80gb', instanceTypes: ['g5.2xlarge'] }] });
  const issue = at(issues, 'gpuNodeGroups[0].gpu');
  assert.match(issue.message, /A10G 24 GB/);
  assert.match(issue.fix ?? '', /a10g/);
  // p4d carries 40 GB A100s: the memory in the id is checked too.
  at(problems({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'a100-80gb', instanceTypes: ['p4d.24xlarge'] }] }), 'gpuNodeGroups[0].gpu');
  ok({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'a100-80gb', instanceTypes: ['p4de.24xlarge'] }] });
});

test('instance types: unknown ones get suggestions; mixed GPU counts in one group are rejected', () => {
  const unknown = at(problems({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'a10g', instanceTypes: ['g5.2xlarg'] }] }), 'gpuNodeGroups[0].instanceTypes[0]');
  assert.match(unknown.fix ?? '', /g5\.2xlarge/);
  const mixed = problems({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'a10g', instanceTypes: ['g5.2xlarge', 'g5.12xlarge'] }] });
  assert.match(at(mixed, 'gpuNodeGroups[0].instanceTypes[1]').message, /4 GPUs per node/);
  // An instance type the table does not know is accepted when the group states its GPU count.
  const c = ok({ ...AWS_CONFIG, gpuNodeGroups: [{ gpu: 'b200-180gb', instanceTypes: ['p6-b200.48xlarge'], gpusPerNode: 8 }] });
  assert.equal(c.provider === 'aws' && c.gpuNodeGroups[0]?.gpusPerNode, 8);
});

test('node counts: min above max, duplicate group names, group quota above the total', () => {
  const issues = problems({
    ...AWS_CONFIG,
    gpuNodeGroups: [
      { name: 'big', gpu: 'a10g', instanceTypes: ['g5.xlarge'], minNodes: 3, maxNodes: 1, quotaGpus: 9 },
      { name: 'big', gpu: 'l4', instanceTypes: ['g6.xlarge'] },
    ],
  });
  at(issues, 'gpuNodeGroups[0].minNodes');
  at(issues, 'gpuNodeGroups[1].name');
  assert.match(at(issues, 'gpuNodeGroups[0].quotaGpus').message, /above quota\.gpus \(8\)/);
});

test('provider sections and fields that the chosen provider would ignore are errors, not silently dropped', () => {
  const issues = problems({
    ...AWS_CONFIG,
    gcp: { project: 'p' },
    gpuNodeGroups: [{ gpu: 'a10g', instanceTypes: ['g5.xlarge'], machineType: 'g2-standard-8' }],
    storage: { storageClass: 'gp3' },
  });
  at(issues, 'gcp');
  at(issues, 'gpuNodeGroups[0].machineType');
  at(issues, 'storage.storageClass');
});

test('kubeconfig: required for existing, refused for aws/gcp', () => {
  at(problems({ ...EXISTING_CONFIG }, WITH_KEY), 'kubeconfig');
  at(problems({ ...AWS_CONFIG }, EXISTING_SECRETS), 'kubeconfig');
  at(problems({ ...EXISTING_CONFIG, region: 'us-east-1' }, EXISTING_SECRETS), 'region');
});

test('existing: needs a ReadWriteMany source; NFS export or class, not both', () => {
  at(problems({ ...EXISTING_CONFIG, storage: {} }, EXISTING_SECRETS), 'storage');
  at(problems({ ...EXISTING_CONFIG, storage: { storageClass: 'x', nfs: { server: 'nas', share: '/x' } } }, EXISTING_SECRETS), 'storage');
  const c = ok({ ...EXISTING_CONFIG, storage: { nfs: { server: 'nas.lan', share: '/export/tunepipe' } } }, EXISTING_SECRETS);
  assert.deepEqual(c.provider === 'existing' && c.storage, { kind: 'nfs', server: 'nas.lan', share: '/export/tunepipe' });
});

test('gcp: accelerator, machine type and GPU id must agree; Filestore class and minimum size', () => {
  const c = ok({ ...GCP_CONFIG });
  assert.equal(c.provider, 'gcp');
  if (c.provider !== 'gcp') return;
  assert.equal(c.gpuNodeGroups[0]?.acceleratorCount, 1);
  assert.equal(c.artifactsSize, '1Ti');
  assert.equal(c.storageClass, 'standard-rwx');

  const issues = problems({
    ...GCP_CONFIG,
    gpuNodeGroups: [{ gpu: 'h100-80gb', machineType: 'g2-standard-24', acceleratorType: 'nvidia-l4', acceleratorCount: 1 }],
    storage: { storageClass: 'standard-rwo', size: '100Gi' },
  });
  at(issues, 'gpuNodeGroups[0].gpu');
  assert.match(at(issues, 'gpuNodeGroups[0].acceleratorCount').message, /exactly 2 GPUs/);
  assert.match(at(issues, 'storage.storageClass').fix ?? '', /standard-rwx/);
  at(issues, 'storage.size');
  const wrongFamily = problems({ ...GCP_CONFIG, gpuNodeGroups: [{ gpu: 'a100-40gb', machineType: 'n1-standard-8', acceleratorType: 'nvidia-tesla-a100' }] });
  assert.match(at(wrongFamily, 'gpuNodeGroups[0].machineType').message, /a2/);
  at(problems({ ...GCP_CONFIG, gcp: undefined }), 'gcp.project');
});

test('aws: an unknown Kubernetes version needs an explicit autoscaler image', () => {
  at(problems({ ...AWS_CONFIG, kubernetesVersion: '1.29' }), 'kubernetesVersion');
  const c = ok({ ...AWS_CONFIG, kubernetesVersion: '1.29', versions: { clusterAutoscalerImage: 'v1.29.4' } });
  assert.equal(c.provider === 'aws' && c.clusterAutoscalerImage, 'v1.29.4');
});

test('aws: existing subnets replace the created VPC', () => {
  const c = ok({ ...AWS_CONFIG, aws: { subnetIds: ['subnet-a', 'subnet-b'] } });
  assert.deepEqual(c.provider === 'aws' && c.network, { kind: 'subnets', subnetIds: ['subnet-a', 'subnet-b'] });
  at(problems({ ...AWS_CONFIG, aws: { subnetIds: ['subnet-a', 'subnet-b'], vpcCidr: '10.0.0.0/16' } }), 'aws.subnetIds');
  at(problems({ ...AWS_CONFIG, aws: { vpcCidr: '10.0.0.0/24' } }), 'aws.vpcCidr');
});

test('names must be DNS labels', () => {
  const issues = problems({ ...AWS_CONFIG, namespace: 'Tune_Pipe', clusterName: '-x' });
  assert.match(at(issues, 'namespace').message, /DNS label/);
  at(issues, 'clusterName');
});
