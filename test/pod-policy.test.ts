// Every pod tunepipe creates passes the locked-down policy: read-only root filesystem with writable
// scratch where the tools write, no service-account token, nothing privileged, images pinned (by
// digest where pins.json records one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Container, PodSpec } from 'kubernetes-types/core/v1.js';
import { markerCheckJob, PINS, type KubeObject } from '@tunepipe/core';
import { discoverPipelines } from '../packages/workspace/src/repo.ts';
import { synthPipeline } from '../packages/workspace/src/synth.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

function podsOf(objects: readonly KubeObject[]): { name: string; spec: PodSpec }[] {
  return objects.flatMap((o) => {
    const spec = (o as { spec?: { template?: { spec?: PodSpec } } }).spec?.template?.spec;
    return spec ? [{ name: `${o.kind}/${o.metadata?.name}`, spec }] : [];
  });
}

/** Paths a container may write: its emptyDir and claim mounts (config maps are read-only). */
function writable(spec: PodSpec, container: Container): string[] {
  return (container.volumeMounts ?? []).filter((m) => {
    const volume = spec.volumes?.find((v) => v.name === m.name);
    return !m.readOnly && (volume?.emptyDir !== undefined || volume?.persistentVolumeClaim !== undefined);
  }).map((m) => m.mountPath);
}

function violations(spec: PodSpec): string[] {
  const problems: string[] = [];
  if (spec.automountServiceAccountToken !== false) problems.push('mounts a service-account token');
  if (spec.securityContext?.runAsNonRoot !== true) problems.push('pod may run as root');
  if (spec.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push('pod has no RuntimeDefault seccomp');
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('shares a host namespace');
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${c.name}: root filesystem is writable`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${c.name}: may escalate privileges`);
    if (sc.privileged) problems.push(`${c.name}: privileged`);
    if (!sc.capabilities?.drop?.includes('ALL') || (sc.capabilities.add ?? []).length > 0) problems.push(`${c.name}: keeps capabilities`);
    // A tool told to write somewhere (HOME, caches) must find a writable volume there.
    for (const e of c.env ?? []) {
      if (!['HOME', 'HF_HOME', 'XDG_CACHE_HOME'].includes(e.name) || e.value === undefined) continue;
      if (!writable(spec, c).some((m) => e.value === m || e.value!.startsWith(`${m}/`))) problems.push(`${c.name}: ${e.name}=${e.value} is not on a writable volume`);
    }
    if (!/(:[\w.-]+(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$/.test(c.image ?? '') || c.image?.endsWith(':latest')) problems.push(`${c.name}: image ${c.image} is not pinned`);
    for (const [tag, digest] of Object.entries(PINS.imageDigests)) {
      if (c.image === tag) problems.push(`${c.name}: ${tag} has a recorded digest (${digest}) but is pulled by tag`);
    }
  }
  return problems;
}

for (const name of discoverPipelines(root)) {
  test(`${name}: every pod passes the locked-down policy`, async () => {
    const { compiled } = await synthPipeline(root, name);
    const pods = podsOf(compiled.objects);
    assert.ok(pods.length > 0);
    for (const pod of pods) assert.deepEqual(violations(pod.spec), [], pod.name);
  });
}

test("the runner's marker-check pod passes it too", () => {
  const job = markerCheckJob({ pipeline: 'p', namespace: 'tunepipe', artifactsClaim: 'tunepipe-artifacts', runtimeImage: 'ghcr.io/tunepipe/runtime:0.1.0' }, ['/artifacts/p/a/x/.tunepipe-complete'], { timeoutSeconds: 60 });
  assert.deepEqual(violations(job.spec!.template.spec!), []);
});

test('the policy check finds what it looks for', () => {
  const bad: PodSpec = { containers: [{ name: 'c', image: 'x:latest', env: [{ name: 'HOME', value: '/home/x' }] }] };
  const found = violations(bad);
  for (const expected of ['mounts a service-account token', 'c: root filesystem is writable', 'c: HOME=/home/x is not on a writable volume', 'c: image x:latest is not pinned']) {
    assert.ok(found.includes(expected), `${expected} in ${found.join('; ')}`);
  }
});
