// The runner against a flaky API server (the fake API double with injected faults), one test per
// finding of issue 16, with the numbers the issue asks for:
// - a single HTTP 500, 409, 410 or connection reset while a stage runs used to fail the stage and
//   leave its Job running; five 500s in a row threw a RunnerError out of the run;
// - a black-holed API server (accepts, never answers) hung the run, and Ctrl-C did not end it;
// - a concurrent `--force` run made the other run fail on a 422;
// - pods were polled every 2 s instead of watched.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hostname } from 'node:os';
import { runOnCluster, type ClusterRunOptions } from '../src/cluster/run.ts';
import { runLockName } from '../src/cluster/lease.ts';
import type { RunResult } from '../src/types.ts';
import { RUNNER_RULES } from '../../../infra/cluster/src/platform-objects.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { startFakeKube, type FakeKubeApi, type FakeKubeOptions, type Fault, type FaultVerb } from './doubles/fake-kube-api.ts';
import { recorder, SEED_TRAIN_LOG, waitFor, type Recorder } from './helpers.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const FIXTURE = { without: ['serve'] } as const;
const PIPELINE = makePipeline(FIXTURE);
const resourceOf = (stage: string) => PIPELINE.stages.find((s) => s.name === stage)!.resourceName;
const SFT = resourceOf('sft');

/** Fast retries and short timeouts, so a black-holed request costs 250 ms here, not 30 s. */
const FLAKY: Partial<ClusterRunOptions> = {
  pollIntervalMs: 10,
  retryBackoff: { initialMs: 5, maxMs: 40 },
  requestTimeoutMs: 250,
  apiOutageMs: 10_000,
  // Renewed often, so the lock's renewals meet the faults too.
  lock: { renewMs: 40 },
};

/** Numbers for the closing note, printed once at the end. */
const figures: string[] = [];
after(() => {
  if (figures.length > 0) console.log(`\nrunner fault figures:\n${figures.map((f) => `  ${f}`).join('\n')}`);
});

async function withKube(options: FakeKubeOptions, fn: (kube: FakeKubeApi) => Promise<void>): Promise<void> {
  const kube = await startFakeKube({ linesPerTick: 2, ...options });
  try {
    await fn(kube);
  } finally {
    kube.heal();
    await kube.stop();
  }
}

function start(kube: FakeKubeApi, options: Partial<ClusterRunOptions> = {}): { rec: Recorder; done: Promise<RunResult> } {
  const rec = recorder();
  const done = runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: rec, ...FLAKY, ...options });
  return { rec, done };
}

const sftRunning = (kube: FakeKubeApi) =>
  waitFor(() => kube.pods().some((p) => p['metadata'].labels?.['job-name'] === SFT && p['status'].phase === 'Running'), 10_000, 'sft running');

const stageJobsCreated = (kube: FakeKubeApi, name: string) => kube.created.filter((c) => c === `Job/${name}`).length;

/** The run went through: every stage done, the sft Job created once and never deleted. */
function assertSurvived(kube: FakeKubeApi, rec: Recorder, result: RunResult, label: string): void {
  assert.equal(result.outcome, 'succeeded', `${label}\n${rec.output()}`);
  for (const s of result.stages) assert.equal(s.status, 'done', `${label}: ${s.stage} ${s.failure?.message ?? ''}`);
  assert.equal(stageJobsCreated(kube, SFT), 1, `${label}: the sft Job was created once`);
  assert.ok(!kube.deletedJobs.includes(SFT), `${label}: the sft Job was never deleted`);
  assert.ok(!kube.responses.some((r) => r.status === 422), `${label}: no 422`);
}

/** Which faults make sense for which verb: 409 on writes, 410 on lists and watches. */
function faultsFor(verb: FaultVerb): Fault[] {
  const common: Fault[] = [500, 503, 429, 'reset', 'blackhole'];
  switch (verb) {
    case 'PATCH':
    case 'PUT':
    case 'POST':
      return [...common, 409];
    case 'LIST':
      return [...common, 410];
    case 'WATCH':
      return [...common, 410, 'drop'];
    default:
      return common;
  }
}

/** Calls a run makes while its sft stage runs, by verb and a piece of their path or query. */
const TARGETS: readonly { verb: FaultVerb; path: string; what: string }[] = [
  { verb: 'GET', path: `/jobs/${SFT}`, what: 'reading the sft Job' },
  { verb: 'PATCH', path: `/jobs/${SFT}?`, what: 'applying the sft Job' },
  { verb: 'LIST', path: `metadata.name=${SFT}`, what: 'listing the sft Job' },
  { verb: 'WATCH', path: `metadata.name=${SFT}`, what: 'watching the sft Job' },
  { verb: 'LIST', path: `job-name=${SFT}`, what: 'listing the sft pods' },
  { verb: 'WATCH', path: `job-name=${SFT}`, what: 'watching the sft pods' },
  { verb: 'LOG', path: `/pods/${SFT}`, what: 'reading the sft log' },
  { verb: 'GET', path: '/leases/', what: 'reading the run lock' },
  { verb: 'POST', path: '/leases', what: 'creating the run lock' },
  { verb: 'PUT', path: '/leases/', what: 'renewing the run lock' },
];

for (const target of TARGETS) {
  const faults = faultsFor(target.verb);
  test(`${faults.length} faults in a row on ${target.what} (${faults.join(', ')}): the run rides them out`, async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      kube.inject(target.verb, target.path, ...faults);
      const { rec, done } = start(kube);
      // Held until every fault was served: they all hit the run while sft runs (or before).
      await waitFor(() => kube.pendingFaults() === 0, 20_000, `the faults on ${target.what} to be served`);
      kube.release('sft');
      const result = await done;
      assertSurvived(kube, rec, result, target.what);
      assert.equal(kube.injected.length, faults.length);
    });
  });
}

test('faults on deleting the Job of a forced stage (--force): retried, the stage re-runs once', async () => {
  await withKube({}, async (kube) => {
    const first = start(kube);
    assert.equal((await first.done).outcome, 'succeeded');
    const faults = faultsFor('DELETE');
    kube.inject('DELETE', `/jobs/${SFT}`, ...faults);
    const { rec, done } = start(kube, { force: ['sft'] });
    const result = await done;
    assert.equal(result.outcome, 'succeeded', rec.output());
    assert.equal(kube.pendingFaults(), 0);
    assert.equal(kube.deletedJobs.filter((j) => j === SFT).length, 1, 'deleted once');
    assert.equal(stageJobsCreated(kube, SFT), 2, 're-created once');
  });
});

test('five 500s in a row, on every call the sft stage makes, do not throw out of the run', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    for (const target of TARGETS) kube.inject(target.verb, target.path, 500, 500, 500, 500, 500);
    const { rec, done } = start(kube);
    await waitFor(() => kube.pendingFaults() === 0, 20_000, 'every 500 served');
    kube.release('sft');
    const result = await done;
    assertSurvived(kube, rec, result, 'five 500s');
    assert.equal(kube.injected.length, 5 * TARGETS.length);
  });
});

test('fault matrix: every fault on every call in one run; the run survives all of them', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    let total = 0;
    for (const target of TARGETS) {
      const faults = faultsFor(target.verb);
      kube.inject(target.verb, target.path, ...faults);
      total += faults.length;
    }
    const { rec, done } = start(kube);
    const started = Date.now();
    await waitFor(() => kube.pendingFaults() === 0, 30_000, 'every fault served');
    kube.release('sft');
    const result = await done;
    assertSurvived(kube, rec, result, 'matrix');
    assert.equal(kube.injected.length, total);
    const byFault = new Map<string, number>();
    for (const f of kube.injected) byFault.set(String(f.fault), (byFault.get(String(f.fault)) ?? 0) + 1);
    figures.push(
      `one run survived ${total} injected faults on ${TARGETS.length} calls (${[...byFault].map(([f, n]) => `${n}× ${f}`).join(', ')}) in ${Date.now() - started} ms: 0 stages failed, sft Job created 1×, deleted 0×`,
    );
  });
});

test('410 Gone on a watch (compacted history): the runner lists again and misses nothing', async () => {
  await withKube({ eventLogSize: 5 }, async (kube) => {
    // A tiny event log: a watch that resumes after a cut almost always finds its version gone.
    kube.script('sft', { log: SEED_TRAIN_LOG, preemptAfterLine: 30 });
    kube.inject('WATCH', `job-name=${SFT}`, 'drop', 'drop', 'drop');
    const { rec, done } = start(kube);
    const result = await done;
    assert.equal(result.outcome, 'succeeded', rec.output());
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.preemptions, 1, 'the preemption seen across cut watches');
    const relists = kube.requests.filter((r) => r.method === 'GET' && r.query.includes(`job-name%3D${SFT}`) && !r.query.includes('watch=true')).length;
    assert.ok(relists >= 2, `listed again after the cut watches (${relists} lists)`);
  });
});

test('an API outage longer than the budget ends the run with what was in flight and what is still running', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const budget = 1000;
    const { rec, done } = start(kube, { apiOutageMs: budget });
    await sftRunning(kube);
    await waitFor(() => rec.last('sft')?.status === 'running', 5000, 'sft shown running');
    const lost = Date.now();
    kube.blackhole(Number.POSITIVE_INFINITY);
    const result = await done;
    const took = Date.now() - lost;
    assert.equal(result.outcome, 'failed');
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.status, 'failed');
    assert.equal(sft.failure?.reason, 'ApiUnreachable');
    const message = sft.failure?.message ?? '';
    assert.match(message, new RegExp(`^lost contact with the Kubernetes API for \\d+\\.\\ds; last error: .*: no answer from the Kubernetes API at ${kube.url.replaceAll('.', '\\.')} within 0\\.3s \\(ETIMEDOUT\\)\n`));
    assert.match(message, new RegExp(`in flight: watching Job ${SFT} and its pods; Job ${SFT} was running \\(pod ${SFT}-\\w+\\) and is still in the cluster: nothing was deleted`));
    assert.match(message, /fix: once the API answers, `tunepipe run llama3-fintech --target cluster --namespace tunepipe` reattaches to it .*`tunepipe cancel llama3-fintech --namespace tunepipe` stops it/);
    assert.doesNotMatch(message, /\n\s+at /, 'no stack trace');
    assert.match(rec.output(), /✗ sft failed: ApiUnreachable — lost contact with the Kubernetes API/);
    // Nothing was deleted: the Job is still there, and still running.
    kube.heal();
    assert.ok(kube.get('Job', 'tunepipe', SFT), 'the sft Job is still in the cluster');
    assert.deepEqual(kube.deletedJobs.filter((j) => !j.includes('marker-check')), []);
    assert.ok(took < budget + 2000, `ended ${took} ms after contact was lost (budget ${budget} ms)`);
    figures.push(`API black-holed for good: the run ended ${took} ms after contact was lost (budget ${budget} ms, request timeout 250 ms), sft reported ApiUnreachable with its Job left running`);

    // Once the API answers again, a new run reattaches to the Job and finishes.
    const again = start(kube);
    await waitFor(() => again.rec.notes.some((n) => n.includes(`attached to Job ${SFT}`)), 5000, 'reattached');
    kube.release('sft');
    assert.equal((await again.done).outcome, 'succeeded', again.rec.output());
    assert.equal(stageJobsCreated(kube, SFT), 1);
  });
});

test('Ctrl-C ends a run whose API server is black-holed, mid-request, in under 2 s', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const controller = new AbortController();
    // The CLI's timeouts and budget: only the abort can end these requests.
    const { rec, done } = start(kube, { signal: controller.signal, requestTimeoutMs: 30_000, apiOutageMs: 300_000, lock: { renewMs: 50 } });
    await sftRunning(kube);
    kube.blackhole(Number.POSITIVE_INFINITY);
    await waitFor(() => kube.heldRequests > 0, 5000, 'a request in flight into the black hole');
    await new Promise((r) => setTimeout(r, 200));
    const aborted = Date.now();
    controller.abort();
    const result = await done;
    const took = Date.now() - aborted;
    assert.equal(result.outcome, 'detached', rec.output());
    assert.equal(result.stages.find((s) => s.stage === 'sft')!.status, 'running');
    assert.ok(took < 2000, `Ctrl-C took ${took} ms`);
    figures.push(`Ctrl-C on a run whose API server is black-holed (requests in flight: ${kube.heldRequests}): ended in ${took} ms (target < 2000 ms)`);
  });
});

test('Ctrl-C (SIGINT) ends the CLI process of a black-holed run in under 2 s', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/cluster-run-process.ts', import.meta.url)), kube.url, '100'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await sftRunning(kube);
      kube.blackhole(Number.POSITIVE_INFINITY);
      await waitFor(() => kube.heldRequests > 0, 5000, 'a request in flight into the black hole');
      const interrupted = Date.now();
      child.kill('SIGINT');
      const code = await exited;
      const took = Date.now() - interrupted;
      assert.equal(code, 0, output);
      assert.match(output, /outcome detached/);
      assert.ok(took < 2000, `the process exited ${took} ms after SIGINT`);
      figures.push(`SIGINT to a \`tunepipe run\` process whose API server is black-holed: the process exited after ${took} ms (target < 2000 ms)`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

test('pods and Jobs are watched, not polled: a run with the default poll interval takes no polls', async () => {
  await withKube({}, async (kube) => {
    const rec = recorder();
    const started = Date.now();
    // The CLI's defaults: no pollIntervalMs.
    const result = await runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: rec });
    const took = Date.now() - started;
    assert.equal(result.outcome, 'succeeded', rec.output());
    const jobStages = PIPELINE.stages.length;
    // The marker check (one short-lived CPU Job before the stages) reads its Job until it is done.
    const ofStages = kube.requests.filter((r) => !decodeURIComponent(r.path + r.query).includes('marker-check'));
    const reads = ofStages.filter((r) => r.method === 'GET' && !r.query.includes('watch=true') && !r.path.endsWith('/log'));
    const podLists = reads.filter((r) => r.path.endsWith('/pods')).length;
    const watches = ofStages.filter((r) => r.query.includes('watch=true')).length;
    // One list and one watch of the Job and of its pods per stage; the cache check reads each Job once.
    assert.equal(podLists, jobStages, 'one pod list per stage');
    assert.equal(watches, 2 * jobStages, 'a Job watch and a pod watch per stage');
    assert.ok(took < 5000, `the run took ${took} ms: it follows events, not a 15 s (or 2 s) poll`);
    figures.push(
      `a ${jobStages}-stage run with the default settings took ${took} ms: ${podLists} pod lists and ${watches} watches, ${reads.length} reads in all, however long the stages run (the 2 s poll read each running stage's Job and pods every 2 s)`,
    );
  });
});

test('a second run of the pipeline fails at once naming the run that holds the lock; the first goes on', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const first = start(kube);
    await sftRunning(kube);
    const tried = Date.now();
    // Even with --force: it stops before it touches anything.
    await assert.rejects(runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: recorder(), ...FLAKY, force: ['sft'] }), (error: Error) => {
      assert.equal(error.name, 'RunnerError');
      assert.match(error.message, new RegExp(`^run started by \\S+@${hostname()} \\(pid ${process.pid}\\) at \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z is running pipeline llama3-fintech in namespace tunepipe \\(Lease tunepipe-run-llama3-fintech\\)`));
      assert.match(error.message, /pass --wait-lock to start when it ends/);
      assert.match(error.message, /or stop it: Ctrl-C in its terminal/);
      return true;
    });
    assert.ok(Date.now() - tried < 1000, 'failed fast');
    assert.ok(!kube.deletedJobs.includes(SFT), 'the forced run deleted nothing');
    kube.release('sft');
    const result = await first.done;
    assertSurvived(kube, first.rec, result, 'the first run');
    // The lock is given back at the end.
    assert.equal(kube.get('Lease', 'tunepipe', runLockName('llama3-fintech'))?.['spec'].holderIdentity, undefined);
  });
});

test('--force with --wait-lock waits for the other run, then re-runs; neither fails, no 422', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const first = start(kube);
    await sftRunning(kube);
    const second = start(kube, { force: ['sft'], lock: { wait: true, waitPollMs: 20, renewMs: 40 } });
    await waitFor(() => second.rec.notes.some((n) => /waiting for the run started by .* to end \(--wait-lock\)/.test(n)), 5000, 'the second run waits');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(stageJobsCreated(kube, SFT), 1, 'the waiting run touched nothing');
    kube.release('sft');
    const [a, b] = await Promise.all([first.done, second.done]);
    assert.equal(a.outcome, 'succeeded', first.rec.output());
    assert.equal(b.outcome, 'succeeded', second.rec.output());
    assert.ok(a.finishedAt <= b.stages.find((s) => s.stage === 'sft')!.startedAt!, 'the forced sft ran after the first run ended');
    assert.equal(kube.deletedJobs.filter((j) => j === SFT).length, 1);
    assert.ok(!kube.responses.some((r) => r.status === 422), 'no 422');
  });
});

test('a lock left by a run that is gone is taken over: a dead pid on this machine, or an expired Lease', async () => {
  await withKube({}, async (kube) => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const name = runLockName('llama3-fintech');
    const put = async (annotations: Record<string, string>, renewTime: string) => {
      const res = await fetch(`${kube.url}/apis/coordination.k8s.io/v1/namespaces/tunepipe/leases`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, annotations }, spec: { holderIdentity: 'ghost', leaseDurationSeconds: 30, renewTime } }),
      });
      assert.equal(res.status, 201);
    };
    const remove = () => fetch(`${kube.url}/apis/coordination.k8s.io/v1/namespaces/tunepipe/leases/${name}`, { method: 'DELETE' });
    const machine = kube.get('Lease', 'tunepipe', name);
    assert.equal(machine, undefined);

    // Killed on this machine (renewed a moment ago, but its process is gone).
    const here = spawnSync(process.execPath, ['--input-type=module', '-e', `import { readFileSync } from 'node:fs'; let b=''; try { b = '/' + readFileSync('/proc/sys/kernel/random/boot_id','utf8').trim() } catch {} ; process.stdout.write(b)`], { encoding: 'utf8' }).stdout;
    await put({ 'tunepipe.dev/run-user': 'ci', 'tunepipe.dev/run-host': hostname(), 'tunepipe.dev/run-pid': String(dead), 'tunepipe.dev/run-machine': `${hostname()}${here}` }, new Date().toISOString());
    const rec = recorder();
    assert.equal((await runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: rec, ...FLAKY })).outcome, 'succeeded', rec.output());
    assert.ok(rec.notes.some((n) => new RegExp(`took over the run lock .* from the run started by ci@${hostname()} \\(pid ${dead}\\): its process ${dead} on this machine is gone`).test(n)), rec.notes.join('\n'));

    // Another machine that stopped renewing a minute ago.
    await remove();
    await put({ 'tunepipe.dev/run-user': 'bob', 'tunepipe.dev/run-host': 'far-away', 'tunepipe.dev/run-pid': '1' }, new Date(Date.now() - 60_000).toISOString());
    const rec2 = recorder();
    assert.equal((await runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: rec2, ...FLAKY })).outcome, 'succeeded');
    assert.ok(rec2.notes.some((n) => /took over the run lock .* from the run started by bob@far-away \(pid 1\): not renewed for \d+s/.test(n)), rec2.notes.join('\n'));
  });
});

test('the runner Role from infra/cluster allows every call a run makes, the lock and the watches included', async () => {
  await withKube({ rbac: RUNNER_RULES }, async (kube) => {
    const { rec, done } = start(kube);
    const result = await done;
    assert.equal(result.outcome, 'succeeded', rec.output());
    assert.deepEqual(kube.responses.filter((r) => r.status === 403), [], 'nothing refused');
    assert.ok(kube.requests.some((r) => r.path.includes('/leases')), 'the lock was taken');
    assert.ok(rec.notes.every((n) => !/cannot take the run lock/.test(n)));
  });
  // A Role from before the lock: the run goes on, uncoordinated, and says how to fix the Role.
  const withoutLeases = RUNNER_RULES.filter((r) => !r.resources.includes('leases'));
  await withKube({ rbac: withoutLeases }, async (kube) => {
    const { rec, done } = start(kube);
    assert.equal((await done).outcome, 'succeeded', rec.output());
    assert.ok(rec.notes.some((n) => /cannot take the run lock .*forbidden \(403\).*grant the runner's Role get\/create\/update on leases/.test(n)), rec.notes.join('\n'));
  });
});

test('a lock taken over mid-run (renewal stopped too long) makes this run stop watching, not fight', async () => {
  await withKube({}, async (kube) => {
    kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
    const { rec, done } = start(kube);
    await sftRunning(kube);
    const name = runLockName('llama3-fintech');
    const lease = kube.get('Lease', 'tunepipe', name) as Json;
    const res = await fetch(`${kube.url}/apis/coordination.k8s.io/v1/namespaces/tunepipe/leases/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...lease, metadata: { ...lease['metadata'], annotations: { 'tunepipe.dev/run-user': 'eve', 'tunepipe.dev/run-host': 'elsewhere' } }, spec: { ...lease['spec'], holderIdentity: 'eve' } }),
    });
    assert.equal(res.status, 200);
    const result = await done;
    assert.equal(result.outcome, 'detached', rec.output());
    assert.ok(rec.notes.some((n) => /the run started by eve@elsewhere took the run lock over: this run stops watching; the Jobs keep running/.test(n)), rec.notes.join('\n'));
    assert.ok(kube.get('Job', 'tunepipe', SFT), 'the Job is left to the new holder');
    assert.equal(kube.get('Lease', 'tunepipe', name)?.['spec'].holderIdentity, 'eve', 'the new holder keeps the lock');
  });
});
