// The real entry point, index.ts, as `pulumi up` loads it: imported with a fresh module instance
// per case (cache-busting query), config from the stack, resources into the double.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { ClusterConfigError } from '../src/stack-config.ts';
import { EXISTING_CONFIG, KUBECONFIG, SECRETS, installMocks, settle, valueOf } from './mock-cloud.ts';

let run = 0;
const importProgram = () => import(`../index.ts?case=${++run}`) as Promise<Record<string, unknown>>;

test('a bad stack config stops with one error listing every problem, before any resource is registered', async () => {
  const cloud = await installMocks(
    { provider: 'azure', gpuNodeGroups: [{ gpu: 'a10g' }], quota: { gpus: 0 }, storage: { storageClas: 'nfs' } },
    {},
  );
  const error = await importProgram().then(
    () => assert.fail('the program should have refused this config'),
    (e: unknown) => e,
  );
  await settle();
  assert.ok(error instanceof ClusterConfigError, `unexpected error: ${String(error)}`);
  // Pulumi prints RunErrors without a stack trace.
  assert.ok(pulumi.RunError.isInstance(error));
  assert.deepEqual(
    error.issues.map((i) => i.path).sort(),
    ['provider', 'quota.gpus', 'storage.storageClas', 'vllmApiKey'].sort(),
  );
  assert.match(error.message, /has 4 problems; nothing was created/);
  assert.equal(cloud.registrations.length, 0, `registered: ${cloud.registrations.map((r) => r.type).join(', ')}`);
});

test('missing GPU instance types on aws: refused before registering anything', async () => {
  const cloud = await installMocks(
    { provider: 'aws', region: 'us-east-1', gpuNodeGroups: [{ gpu: 'a10g' }, { gpu: 'l4', instanceTypes: [] }], quota: { gpus: 2 } },
    { vllmApiKey: SECRETS.vllmApiKey },
  );
  const error = await importProgram().catch((e: unknown) => e);
  await settle();
  assert.ok(error instanceof ClusterConfigError);
  assert.deepEqual(error.issues.map((i) => i.path), ['gpuNodeGroups[0].instanceTypes', 'gpuNodeGroups[1].instanceTypes']);
  assert.equal(cloud.registrations.length, 0);
});

test('secret config values never appear in the error text', async () => {
  await installMocks({ provider: 'aws', gpuNodeGroups: [{ gpu: 'x' }], quota: { gpus: 1 } }, { ...SECRETS, kubeconfig: KUBECONFIG });
  const error = await importProgram().catch((e: unknown) => e);
  await settle();
  assert.ok(error instanceof ClusterConfigError);
  for (const secret of [...Object.values(SECRETS), 'kubeconfig-secret-token-789']) {
    assert.ok(!error.message.includes(secret), `error text leaks ${secret}`);
  }
});

test('index.ts exports the stack outputs; the kubeconfig output is a secret', async () => {
  const cloud = await installMocks({ ...EXISTING_CONFIG }, { ...SECRETS, kubeconfig: KUBECONFIG });
  const program = await importProgram();
  const outputs = Object.fromEntries(
    await Promise.all(
      Object.entries(program).map(async ([k, v]) => [k, pulumi.Output.isInstance(v) ? await valueOf(v) : v] as const),
    ),
  );
  const kubeconfigIsSecret = await pulumi.isSecret(program['kubeconfig'] as pulumi.Output<string>);
  await settle();
  assert.ok(cloud.registrations.length > 0);
  assert.equal(kubeconfigIsSecret, true);
  assert.deepEqual(Object.keys(outputs).sort(), [
    'artifactsPvc',
    'chartVersions',
    'clusterQueue',
    'gpuNodeLabels',
    'gpuTaint',
    'gpuTypes',
    'kubeconfig',
    'localQueue',
    'namespace',
    'provider',
    'runnerServiceAccount',
    'secretKeys',
    'secretNames',
    'storageClass',
  ]);
  assert.equal(outputs['namespace'], 'tunepipe');
  assert.equal(outputs['artifactsPvc'], 'tunepipe-artifacts');
  assert.equal(outputs['localQueue'], 'tunepipe');
  assert.deepEqual(outputs['gpuTypes'], ['a100-80gb']);
  assert.deepEqual(outputs['gpuNodeLabels'], { gpuType: 'tunepipe.dev/gpu', gpuNode: 'tunepipe.dev/gpu-node' });
  assert.deepEqual(outputs['gpuTaint'], { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' });
  assert.deepEqual(outputs['secretNames'], { hubTokens: 'tunepipe-hub-tokens', vllmApiKey: 'tunepipe-vllm-api-key' });
  // The shape infra/pipelines reads to check every secretKeyRef: names and keys, no values.
  assert.deepEqual(outputs['secretKeys'], {
    'tunepipe-hub-tokens': ['HF_TOKEN', 'MODELSCOPE_API_TOKEN'],
    'tunepipe-vllm-api-key': ['VLLM_API_KEY'],
  });
});
