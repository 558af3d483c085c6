// Regression tests for what the real API server (test/real/cluster) found in the runner:
// - everything the runner creates must pass Pod Security `restricted`, which the cluster stack
//   enforces on the workload namespace;
// - the API server answers 500 to a log read when it cannot reach the node's kubelet (a node
//   scaled down after its pod finished; kwok's fake nodes in test:real): that must not fail a run;
// - an evicted or preempted pod is deleted soon after it stops, so the runner rarely lists it
//   with its DisruptionTarget condition: a pod that vanishes unfinished was lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { markerCheckJob as compilerMarkerCheckJob } from '@tunepipe/core';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { checkMarkers, runOnCluster } from '../src/cluster/run.ts';
import { KubeClient } from '../src/cluster/kube.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { startFakeKube } from './doubles/fake-kube-api.ts';
import { recorder, SEED_TRAIN_LOG, waitFor } from './helpers.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A KubeClient stand-in that records what the marker check applies and reports it complete. */
function recordingClient(): { client: KubeClient; applied: Json[] } {
  const applied: Json[] = [];
  let job: Json | undefined;
  const client = {
    async apply(object: KubernetesObject) {
      applied.push(structuredClone(object) as Json);
      job = { ...object, status: { conditions: [{ type: 'Complete', status: 'True' }] } };
      return object;
    },
    readJob: async () => job,
    deleteJob: async () => {
      job = undefined;
      return true;
    },
    listPods: async () => [{ metadata: { name: 'check-pod' }, status: { phase: 'Succeeded' } }],
    podLogTail: async () => [],
  } as unknown as KubeClient;
  return { client, applied };
}

/** The Pod Security `restricted` requirements the marker-check pod used to miss. */
function assertRestricted(podSpec: Json): void {
  const pod = podSpec['securityContext'] ?? {};
  for (const container of [...(podSpec['initContainers'] ?? []), ...podSpec['containers']]) {
    const c = container['securityContext'] ?? {};
    assert.equal(c['allowPrivilegeEscalation'], false, `${container.name}: allowPrivilegeEscalation false`);
    assert.deepEqual(c['capabilities']?.['drop'], ['ALL'], `${container.name}: drops ALL capabilities`);
    assert.equal(c['runAsNonRoot'] ?? pod['runAsNonRoot'], true, `${container.name}: runAsNonRoot`);
    assert.equal((c['seccompProfile'] ?? pod['seccompProfile'])?.['type'], 'RuntimeDefault', `${container.name}: seccomp RuntimeDefault`);
  }
}

async function markerCheckJob(pipeline: CompiledPipeline, namespace = 'tunepipe'): Promise<Json> {
  const { client, applied } = recordingClient();
  const stages = pipeline.stages.filter((s) => s.completionMarker);
  await checkMarkers(client, pipeline, namespace, stages, { timeoutMs: 1000 }, 1, new AbortController().signal, recorder());
  assert.equal(applied.length, 1, 'one check Job');
  return applied[0]!;
}

test('marker-check pod passes Pod Security restricted and uses the pipeline’s pinned runtime image, not busybox', async () => {
  const pipeline = makePipeline({ without: ['serve'] });
  const job = await markerCheckJob(pipeline);
  const podSpec = job['spec']['template']['spec'];
  assertRestricted(podSpec);
  const image: string = podSpec['containers'][0]['image'];
  assert.doesNotMatch(image, /busybox/);
  assert.equal(image, 'ghcr.io/tunepipe/runtime:0.1.0', 'the image the stages wait for their inputs with');
  assert.match(image, /:[^:@/]+$|@sha256:/, 'pinned by tag or digest');
  assert.doesNotMatch(image, /:latest$/);
});

test('the marker-check Job is the compiler’s, on the pipeline’s claim and runtime image, in the run’s namespace', async () => {
  const pipeline: CompiledPipeline = { ...makePipeline({ without: ['serve'] }), artifactsClaim: 'team-artifacts', runtimeImage: 'registry.example/tunepipe/runtime:1.2.3' };
  const job = await markerCheckJob(pipeline, 'ml');
  const markers = pipeline.stages.flatMap((s) => (s.completionMarker ? [s.completionMarker] : []));
  const settings = { pipeline: pipeline.pipeline, namespace: 'ml', artifactsClaim: 'team-artifacts', runtimeImage: 'registry.example/tunepipe/runtime:1.2.3' };
  assert.deepEqual(job, compilerMarkerCheckJob(settings, markers, { timeoutSeconds: 1 }) as Json);
  const podSpec = job['spec']['template']['spec'];
  assert.equal(job['metadata']['namespace'], 'ml');
  assert.equal(podSpec['volumes'][0]['persistentVolumeClaim']['claimName'], 'team-artifacts');
  assert.equal(podSpec['containers'][0]['image'], 'registry.example/tunepipe/runtime:1.2.3');
  assertRestricted(podSpec);
});

test('a pod log the API server cannot fetch from the node (500) reads as empty instead of failing the run', async () => {
  // What kube-apiserver answers when the node's kubelet is unreachable.
  const server = createServer((req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, message: `Get "https://10.0.0.7:10250/containerLogs${req.url}": dial tcp 10.0.0.7:10250: connect: connection refused` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
      currentContext: 'c',
    });
    assert.deepEqual(await new KubeClient(kc).podLogTail('tunepipe', 'gone-pod', 20, 'main'), []);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a preempted pod that is deleted before the runner sees it stop still counts as lost, not as nothing', async () => {
  // On the real API server an evicted pod is gone within one poll: its DisruptionTarget condition
  // is never listed. The runner used to report no preemption at all (and no note).
  // Slow enough that the runner's polls see the first pod run before it is taken away.
  const kube = await startFakeKube({ deleteLostPods: true, linesPerTick: 1, tickMs: 20 });
  try {
    kube.script('sft', { log: SEED_TRAIN_LOG, preemptAfterLine: 5 });
    const rec = recorder();
    const result = await runOnCluster(makePipeline({ without: ['serve'] }), { kubeConfig: kube.kubeConfig(), reporter: rec, pollIntervalMs: 5 });
    assert.equal(result.outcome, 'succeeded', rec.output());
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.preemptions, 1, rec.output());
    assert.ok(sft.attempts >= 2);
    assert.ok(rec.notes.some((n) => /pod \S+ was lost \(deleted before it finished/.test(n)), rec.notes.join('\n'));
  } finally {
    await kube.stop();
  }
});

test('an API server restart while a stage runs is waited out; the run goes on', async () => {
  // test:real restarts kube-apiserver mid-run: every call fails with ECONNREFUSED/ECONNRESET for
  // a few seconds, then 403 while its RBAC caches fill. The runner used to fail every running
  // stage on the first refused call.
  const kube = await startFakeKube({ linesPerTick: 1, tickMs: 10 });
  try {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 3 });
    const rec = recorder();
    const running = runOnCluster(makePipeline({ without: ['serve'] }), { kubeConfig: kube.kubeConfig(), reporter: rec, pollIntervalMs: 10 });
    await waitFor(() => kube.pods().some((p) => p['metadata'].labels?.['tunepipe.dev/stage'] === 'sft' && p['status'].phase === 'Running'), 5000, 'sft running');
    kube.interrupt(300, 200);
    await new Promise((r) => setTimeout(r, 600));
    kube.release('sft');
    const result = await running;
    assert.equal(result.outcome, 'succeeded', rec.output());
    assert.ok(rec.notes.some((n) => /cannot reach the Kubernetes API .*retrying for up to 300s/.test(n)), rec.notes.join('\n'));
    assert.ok(rec.notes.some((n) => /answers again/.test(n)), rec.notes.join('\n'));
  } finally {
    await kube.stop();
  }
});

test('an API server that stays away fails the stage after apiOutageMs, with the reason', async () => {
  const kube = await startFakeKube({ linesPerTick: 1, tickMs: 10 });
  try {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 3 });
    const rec = recorder();
    const running = runOnCluster(makePipeline({ without: ['serve'] }), { kubeConfig: kube.kubeConfig(), reporter: rec, pollIntervalMs: 10, apiOutageMs: 200 });
    await waitFor(() => kube.pods().some((p) => p['metadata'].labels?.['tunepipe.dev/stage'] === 'sft' && p['status'].phase === 'Running'), 5000, 'sft running');
    kube.interrupt(60_000);
    const result = await running;
    assert.equal(result.outcome, 'failed');
    assert.match(result.stages.find((s) => s.stage === 'sft')!.failure?.message ?? '', /cannot reach the Kubernetes API/);
  } finally {
    kube.interrupt(0);
    await kube.stop();
  }
});

test('a 403 outside an API server outage is still an error at once (missing rights are not waited out)', async () => {
  const kube = await startFakeKube({ linesPerTick: 1, tickMs: 10 });
  try {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 3 });
    const running = runOnCluster(makePipeline({ without: ['serve'] }), { kubeConfig: kube.kubeConfig(), reporter: recorder(), pollIntervalMs: 10 });
    await waitFor(() => kube.pods().some((p) => p['metadata'].labels?.['tunepipe.dev/stage'] === 'sft' && p['status'].phase === 'Running'), 5000, 'sft running');
    const started = Date.now();
    kube.interrupt(0, 60_000);
    const result = await running;
    assert.equal(result.outcome, 'failed');
    assert.match(result.stages.find((s) => s.stage === 'sft')!.failure?.message ?? '', /forbidden \(403\)/);
    assert.ok(Date.now() - started < 5000, 'not retried');
  } finally {
    kube.interrupt(0, 0);
    await kube.stop();
  }
});
