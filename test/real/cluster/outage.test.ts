// The runner's fault matrix against a real control plane, where a real one can play it: the API
// server is stopped mid-run (its process killed) and started again with the same flags. A stop
// shorter than the runner's outage budget is ridden out (0 failed stages, each Job created once);
// a longer one ends the run with the message that says what was in flight and that nothing was
// deleted, and the Jobs stay in the cluster. kwok plays the pods; the sft pod is held running.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { loadKubeConfig } from '../../../packages/runner/src/cluster/kube.ts';
import { runOnCluster } from '../../../packages/runner/src/cluster/run.ts';
import { createConsoleReporter } from '../../../packages/runner/src/progress/reporter.ts';
import { startCluster, type AuditEvent, type LocalCluster, type PodOutcome } from '../support/cluster.ts';
import { repoRoot, startCli } from './cli.ts';

let cluster: LocalCluster;
const outcomes: Record<string, PodOutcome> = {};

before(async () => {
  cluster = await startCluster({ gpuNodes: [{ type: 'l4', count: 1, gpus: 4 }], cpuNodes: 1, podRunMs: 300 });
});

after(async () => {
  await cluster?.stop();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PIPELINE = 'llama3-fintech';
/** The stages up to sft: enough to have Jobs done, one running, and a GPU one held through the outage. */
const STAGES = ['fetch-model', 'convert', 'sft'];

async function setOutcome(namespace: string, stage: string, outcome: PodOutcome | undefined): Promise<void> {
  const key = `${namespace}/${stage}`;
  if (outcome) outcomes[key] = outcome;
  else delete outcomes[key];
  await cluster.setPodOutcomes(outcomes);
}

function runningPod(namespace: string, stage: string): Promise<string> {
  return cluster.waitFor(
    `a running ${stage} pod in ${namespace}`,
    async () =>
      (await cluster.api.list('v1', 'Pod', namespace, `tunepipe.dev/stage=${stage}`)).find((p: Json) => p['status']?.phase === 'Running' && !p['metadata'].deletionTimestamp)?.metadata
        .name as string | undefined,
    { timeoutMs: 90_000, intervalMs: 250 },
  );
}

/** Stage Jobs created (server-side apply answered 201) in `namespace`, by name: the marker check's aside. */
function jobCreates(events: readonly AuditEvent[], namespace: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) {
    const name = e.objectRef?.name ?? '';
    if (e.objectRef?.resource !== 'jobs' || e.objectRef.subresource || e.objectRef.namespace !== namespace || name.includes('marker-check')) continue;
    if (e.stage !== 'ResponseComplete' || (e.verb !== 'create' && e.verb !== 'patch') || e.responseStatus?.code !== 201) continue;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

const jobDeletes = (events: readonly AuditEvent[], namespace: string) =>
  events.filter((e) => e.objectRef?.resource === 'jobs' && e.objectRef.namespace === namespace && e.verb === 'delete' && !(e.objectRef.name ?? '').includes('marker-check'));

test('kube-apiserver stopped for 10 s mid-run and started again: the run finishes, 0 failed stages, each Job created once', async () => {
  const ns = await cluster.createTunepipeNamespace('outage-short');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  const run = startCli(['run', PIPELINE, '--target', 'cluster', '--namespace', ns.namespace, '--queue', ns.queue, '--only', STAGES.join(',')], ns.kubeconfig);
  try {
    await runningPod(ns.namespace, 'sft');
    const stopped = Date.now();
    await cluster.restartApiServer({ downMs: 10_000 });
    const downFor = Date.now() - stopped;
    await run.waitForOutput(/the Kubernetes API answers again after \d+/, 60_000);
    await setOutcome(ns.namespace, 'sft', undefined);
    const result = await run.done;
    assert.equal(result.status, 0, result.output);
    for (const stage of STAGES) assert.match(result.output, new RegExp(`${stage} +✓ (done|cached)`), result.output);
    assert.doesNotMatch(result.output, /✗/, result.output);
    assert.match(result.output, new RegExp(`✓ ${PIPELINE} finished in .*: ${STAGES.length} run, 0 cached`), result.output);
    const creates = jobCreates(cluster.auditEvents(), ns.namespace);
    assert.deepEqual([...creates.keys()].map((name) => STAGES.find((s) => name.includes(`-${s}-`))).sort(), [...STAGES].sort(), `one Job per stage: ${[...creates.keys()].join(', ')}`);
    for (const [name, n] of creates) assert.equal(n, 1, `Job ${name} created once`);
    assert.deepEqual(jobDeletes(cluster.auditEvents(), ns.namespace), [], 'no Job deleted');
    console.log(`# API server down ${(downFor / 1000).toFixed(1)} s (stop, 10 s, start, ready, kwok back) mid-sft: the run finished, 0 failed, ${creates.size} Jobs created once each`);
  } finally {
    await setOutcome(ns.namespace, 'sft', undefined);
    run.child.kill('SIGKILL');
  }
});

test('kube-apiserver stopped for longer than the outage budget: the run stops with what was in flight, and leaves the Jobs', async () => {
  const ns = await cluster.createTunepipeNamespace('outage-long');
  await setOutcome(ns.namespace, 'sft', { outcome: 'hold' });
  const { compiled } = await synthPipeline(repoRoot, PIPELINE, { namespace: ns.namespace, queueName: ns.queue });
  let printed = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      printed += chunk.toString();
      cb();
    },
  });
  const budgetMs = 6000;
  const done = runOnCluster(compiled, {
    kubeConfig: await loadKubeConfig({ kubeconfig: ns.kubeconfig }),
    reporter: createConsoleReporter({ stream, tty: false }),
    only: STAGES,
    apiOutageMs: budgetMs,
    requestTimeoutMs: 3000,
  });
  let restart: Promise<void> | undefined;
  try {
    await runningPod(ns.namespace, 'sft');
    await cluster.waitFor('sft shown running', () => /sft +▶ running/.test(printed), { timeoutMs: 60_000 });
    const stopped = Date.now();
    // Down for longer than the budget (and the request timeout after it): the run must end meanwhile.
    restart = cluster.restartApiServer({ downMs: budgetMs + 12_000 });
    let back = false;
    void restart.then(() => (back = true));
    const result = await done;
    const took = Date.now() - stopped;
    assert.ok(!back, `the run ended while the API server was down (${took} ms after it was stopped), not after it came back`);
    assert.ok(took < budgetMs + 15_000, `the run ended ${took} ms after the API server was stopped (budget ${budgetMs} ms)`);
    assert.equal(result.outcome, 'failed', printed);
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.failure?.reason, 'ApiUnreachable', printed);
    const message = sft.failure?.message ?? '';
    const job = compiled.stages.find((s) => s.name === 'sft')!.workload.name;
    assert.match(message, /^lost contact with the Kubernetes API for \d+(\.\d)?s; last error: /);
    assert.match(message, new RegExp(`in flight: watching Job ${job} and its pods; Job ${job} was running \\(pod ${job}-\\w+\\) and is still in the cluster: nothing was deleted`));
    assert.match(message, new RegExp(`fix: once the API answers, \`tunepipe run ${PIPELINE} --target cluster --namespace ${ns.namespace}\` reattaches to it`));
    assert.doesNotMatch(message, /\n\s+at /, 'no stack trace');
    for (const s of result.stages) if (s.status === 'failed') assert.equal(s.failure?.reason, 'ApiUnreachable', `${s.stage}: ${s.failure?.message}`);
    assert.match(printed, /✗ sft failed: ApiUnreachable — lost contact with the Kubernetes API/);

    // Once the API server is back: the Jobs are as the run left them, the sft one still running.
    await restart;
    const live = (await cluster.api.get('batch/v1', 'Job', job, ns.namespace)) as Json | undefined;
    assert.ok(live, `Job ${job} is still in the cluster`);
    assert.ok(!live['status']?.conditions?.some((c: Json) => c['status'] === 'True' && (c['type'] === 'Complete' || c['type'] === 'Failed')), 'and still running');
    assert.equal((await cluster.api.list('batch/v1', 'Job', ns.namespace)).filter((j: Json) => !j['metadata'].name.includes('marker-check')).length, STAGES.length);
    assert.deepEqual(jobDeletes(cluster.auditEvents(), ns.namespace), [], 'no Job deleted');
    console.log(`# API server down past the ${budgetMs / 1000} s budget: the run ended ${(took / 1000).toFixed(1)} s after it stopped, sft ApiUnreachable, its Job left running`);
  } finally {
    await restart?.catch(() => undefined);
    await setOutcome(ns.namespace, 'sft', undefined);
    await done.catch(() => undefined);
  }
});
