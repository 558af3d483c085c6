// The Secrets the cluster stack creates are the ones check() knows: pipelines and infra share one
// naming scheme (PLATFORM_SECRETS), so a SecretRef check() accepts is one the pod can read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_SECRET_KEYS } from '@tunepipe/core';
import { workloadSecretObjects } from '../src/platform-objects.ts';

test('with every optional token configured, the workload Secrets hold exactly CLUSTER_SECRET_KEYS', () => {
  const objects = workloadSecretObjects('tunepipe', { hfToken: 'h', modelscopeToken: 'm', vllmApiKey: 'v' });
  const created = Object.fromEntries(Object.values(objects).map((s) => [s.metadata.name, Object.keys(s.stringData)]));
  assert.deepEqual(created, CLUSTER_SECRET_KEYS);
});
