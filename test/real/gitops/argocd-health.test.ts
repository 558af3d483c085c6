// Argo CD's Job health check that tunepipe ships (ARGOCD_JOB_HEALTH_LUA, in argocd-cm), run in a real
// Lua 5.1 interpreter with Argo CD's calling convention (./argocd-lua.ts), against the Job states
// the local control plane really produced for tunepipe's own compiled Jobs: queued by Kueue,
// admitted and running, failed, complete. Argo CD itself is too large to build here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { ARGOCD_JOB_HEALTH_LUA } from '@tunepipe/gitops';
import { synthPipeline } from '@tunepipe/workspace';
import type { CompiledPipeline } from '@tunepipe/core';
import { startCluster, type LocalCluster, type TunepipeNamespace } from '../support/cluster.ts';
import { argoHealth } from './argocd-lua.ts';
import { fluxTools, type FluxTools } from './flux-controllers.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');
const NAMESPACE = 'argo-health';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface Job {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { suspend?: boolean };
  status?: { conditions?: Condition[]; active?: number };
}

let tools: FluxTools;
let cluster: LocalCluster;
let ns: TunepipeNamespace;
let compiled: CompiledPipeline;
/** Each state's Job as the API server returned it. */
const captured = new Map<'queued' | 'running' | 'failed' | 'complete', Job>();

const cond = (job: Job | undefined, type: string) => job?.status?.conditions?.find((c) => c.type === type);

before(async () => {
  tools = fluxTools();
  cluster = await startCluster({ gpuNodes: [{ type: 'l4', gpus: 2 }], cpuNodes: 1 });
  // One GPU of quota: while sft runs, eval-base waits in Kueue's queue.
  ns = await cluster.createTunepipeNamespace(NAMESPACE, { gpuQuota: 1 });
  ({ compiled } = await synthPipeline(REPO_ROOT, 'llama3-fintech', { namespace: NAMESPACE, queueName: ns.queue }));
  await cluster.setPodOutcomes({
    [`${NAMESPACE}/sft`]: { outcome: 'hold' },
    [`${NAMESPACE}/merge`]: { outcome: 'fail', exitCode: 1, reason: 'Error', message: 'merge failed' },
  });
  const stage = (name: string) => {
    const s = compiled.stages.find((x) => x.name === name);
    assert.ok(s, `llama3-fintech has a ${name} stage`);
    return s;
  };
  // Applied as the reconcilers apply them: every object of the stage, by server-side apply.
  for (const name of ['fetch-model', 'sft', 'eval-base', 'merge']) {
    for (const object of stage(name).objects) await cluster.api.apply(object, { fieldManager: 'argocd-health-test' });
  }
  const job = (name: string) => cluster.api.get<Job>('batch/v1', 'Job', stage(name).workload.name, NAMESPACE);
  const capture = async (state: 'queued' | 'running' | 'failed' | 'complete', name: string, ready: (j: Job) => boolean) => {
    captured.set(state, await cluster.waitFor(`${name} ${state}`, async () => {
      const j = await job(name);
      return j && ready(j) ? j : undefined;
    }, { timeoutMs: 120_000, intervalMs: 250 }));
  };
  await Promise.all([
    capture('complete', 'fetch-model', (j) => cond(j, 'Complete')?.status === 'True'),
    // Admitted by Kueue, resumed by it, and its pod running (held by kwok).
    capture('running', 'sft', (j) => j.spec.suspend === false && (j.status?.active ?? 0) > 0),
    capture('queued', 'eval-base', (j) => j.spec.suspend === true && cond(j, 'Suspended')?.status === 'True'),
    // backoffLimit 2: three failed pods (with the Job controller's back-off between them).
    capture('failed', 'merge', (j) => cond(j, 'Failed')?.status === 'True'),
  ]);
});

after(async () => {
  await cluster?.stop();
});

test('Lua is 5.1, the language of Argo CD health scripts', () => {
  assert.match(tools.luaVersion, /^Lua 5\.1\./);
});

test('a Job Kueue holds in its queue is Progressing, and the message names the LocalQueue', async () => {
  const job = captured.get('queued')!;
  assert.equal(job.metadata.labels?.['kueue.x-k8s.io/queue-name'], ns.queue, 'the compiled GPU Job carries the queue label');
  assert.equal(job.spec.suspend, true, 'Kueue suspended it on creation (the manifest never sets suspend)');
  assert.deepEqual(await argoHealth(tools.lua, ARGOCD_JOB_HEALTH_LUA, job), {
    status: 'Progressing',
    message: `waiting for Kueue to admit the Job (LocalQueue ${ns.queue})`,
  });
});

test('an admitted, running Job is Progressing although it carries a Suspended condition', async () => {
  const job = captured.get('running')!;
  // What Argo CD's built-in check gets wrong: after admission the condition stays, as False.
  assert.equal(cond(job, 'Suspended')?.status, 'False', 'the Job controller kept Suspended=False after Kueue resumed it');
  assert.deepEqual(await argoHealth(tools.lua, ARGOCD_JOB_HEALTH_LUA, job), { status: 'Progressing', message: `Job running (${job.status!.active} active)` });
});

test('a failed Job is Degraded with the Job controller\'s reason', async () => {
  const job = captured.get('failed')!;
  const failed = cond(job, 'Failed')!;
  assert.deepEqual(await argoHealth(tools.lua, ARGOCD_JOB_HEALTH_LUA, job), { status: 'Degraded', message: failed.message ?? 'Job failed' });
  assert.match(failed.reason ?? '', /BackoffLimitExceeded/);
});

test('a complete Job is Healthy', async () => {
  const job = captured.get('complete')!;
  const health = await argoHealth(tools.lua, ARGOCD_JOB_HEALTH_LUA, job);
  assert.equal(health.status, 'Healthy');
  assert.equal(health.message, cond(job, 'Complete')!.message ?? 'Job completed');
});
