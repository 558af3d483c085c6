// The Kueue manager configuration we run (kueueManagerConfiguration): the values of
// waitForPodsReady and why they hold, and what the local control plane may override.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KUEUE_PODS_READY, kueueManagerConfigYaml, kueueManagerConfiguration } from '../src/platform-objects.ts';

/** Seconds of a Go duration as Kueue's metav1.Duration reads it (the forms used here: h, m, s). */
function seconds(duration: string): number {
  const parts = [...duration.matchAll(/(\d+)(h|m|s)/g)];
  assert.equal(parts.map((p) => p[0]).join(''), duration, `${duration} is not an h/m/s Go duration`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[unit as 'h' | 'm' | 's'], 0);
}

test('waitForPodsReady: a cold start fits the timeout, a stuck gang frees its GPUs within a quarter hour, re-queued forever with a capped backoff', () => {
  const wait = kueueManagerConfiguration().waitForPodsReady;
  // A GPU node from zero (up to about 8 min for 8-GPU instances) plus the first pull of the training image (3-5 min).
  assert.ok(seconds(wait.timeout) >= 13 * 60, `timeout ${wait.timeout} shorter than a cold start`);
  assert.ok(seconds(wait.timeout) <= 15 * 60, `timeout ${wait.timeout}: a gang that cannot start holds its GPUs that long`);
  assert.ok(seconds(wait.recoveryTimeout) > 0, 'recoveryTimeout 0s turns recovery checking off');
  assert.ok(seconds(wait.recoveryTimeout) <= seconds(wait.timeout));
  assert.equal(wait.blockAdmission, false, 'one slow gang must not hold back every other workload of the queue');
  const requeue = wait.requeuingStrategy;
  assert.equal(requeue.timestamp, 'Eviction');
  assert.ok(!('backoffLimitCount' in requeue), 'a limit would deactivate the Workload and leave its Job suspended for good');
  assert.ok(requeue.backoffBaseSeconds > 0 && requeue.backoffBaseSeconds <= requeue.backoffMaxSeconds);
  assert.equal(requeue.backoffMaxSeconds, 1800);
});

test('the local control plane may shorten the timeouts; the rest is the same configuration', () => {
  const short = kueueManagerConfiguration({ podsReady: { timeout: '8s', recoveryTimeout: '8s', backoffBaseSeconds: 1, backoffMaxSeconds: 4 } });
  const full = kueueManagerConfiguration();
  assert.deepEqual(short.waitForPodsReady, {
    timeout: '8s',
    recoveryTimeout: '8s',
    blockAdmission: false,
    requeuingStrategy: { timestamp: 'Eviction', backoffBaseSeconds: 1, backoffMaxSeconds: 4 },
  });
  assert.deepEqual({ ...short, waitForPodsReady: undefined }, { ...full, waitForPodsReady: undefined });
  assert.deepEqual(kueueManagerConfiguration({ podsReady: { timeout: '8s' } }).waitForPodsReady.recoveryTimeout, KUEUE_PODS_READY.recoveryTimeout);
});

test('the chart gets the configuration as text it parses back to the same object', () => {
  assert.deepEqual(JSON.parse(kueueManagerConfigYaml()), kueueManagerConfiguration());
  assert.equal(kueueManagerConfiguration().apiVersion, 'config.kueue.x-k8s.io/v1beta2');
});
