// The runner against a flaky API server (the fake API double with injected faults), one
// deterministic test per finding of issue 16, with the numbers the issue asks for (the fault
// matrix itself, every fault kind on every call a stage makes, is test/fuzz/faults.test.ts):
// - a single HTTP 500, 409, 410 or connection reset while a stage runs used to fail the stage and
//   leave its Job running; five 500s in a row threw a RunnerError out of the run;
// - a black-holed API server (accepts, never answers) hung the run, and Ctrl-C did not end it;
// - a concurrent `--force` run made the other run fail on a 422 (a second run now follows the
//   first one read-only and takes over what is left when it ends);
// - pods were polled every 2 s instead of watched.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hostname } from 'node:os';
import { runOnCluster, type ClusterRunOptions } from '../src/cluster/run.ts';
import { runLockName } from '../src/cluster/lease.ts';
import type { RunResult } from '../src/types.ts';
import { RUNNER_RULES } from '../../../infra/cluster/src/platform-objects.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { startFakeKube, type FakeKubeApi } from './doubles/fake-kube-api.ts';
import { recorder, SEED_TRAIN_LOG, waitFor, type Recorder } from './helpers.ts';
import { assertSurvived as survived, faultsFor, FLAKY, jobsCreated, stageRunning, startRun, withKube } from './faults-support.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const FIXTURE = { without: ['serve'] } as const;
const PIPELINE = makePipeline(FIXTURE);
const resourceOf = (stage: string) => PIPELINE.stages.find((s) => s.name === stage)!.resourceName;
const SFT = resourceOf('sft');

/** Numbers for the closing note, printed once at the end. */
const figures: string[] = [];
after(() => {
  if (figures.length > 0) console.log(`\nrunner fault figures:\n${figures.map((f) => `  ${f}`).join('\n')}`);
});

const start = (kube: FakeKubeApi, options: Partial<ClusterRunOptions> = {}) => startRun(PIPELINE, kube, options);
const sftRunning = (kube: FakeKubeApi) => stageRunning(kube, SFT);
const stageJobsCreated = jobsCreated;
const assertSurvived = (kube: FakeKubeApi, rec: Recorder, result: RunResult, label: string, finished: readonly string[] = ['done']) => survived(kube, rec, result, SFT, label, finished);

/**
 * The `tunepipe run` process of the SIGINT test, started when the file loads: its start-up (tsx
 * compiling the runner) overlaps the other tests instead of adding seconds to the file.
 */
const cliRun = (async () => {
  const kube = await startFakeKube({ linesPerTick: 2 });
  kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/cluster-run-process.ts', import.meta.url)), kube.url, '100'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run = { kube, child, output: '', exited: new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout.on('data', (c: Buffer) => (run.output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (run.output += c.toString()));
  return run;
})();
after(async () => {
  const { kube, child } = await cliRun;
  child.kill('SIGKILL');
  kube.heal();
  await kube.stop();
});

// Independent tests (each its own API double) run four at a time: most of their time is waiting
// on timers, and the timing bounds they assert have room for it.
describe('the runner against a flaky API server', { concurrency: 4 }, () => {
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
      // A stage queued in Kueue also watches its Workload (why it waits, when it was evicted).
      const queued = PIPELINE.stages.filter((s) => s.objects.some((o) => o.kind === 'Job' && o.metadata?.labels?.['kueue.x-k8s.io/queue-name'])).length;
      const workloadWatches = ofStages.filter((r) => r.query.includes('watch=true') && r.path.endsWith('/workloads')).length;
      // One list and one watch of the Job and of its pods per stage; the cache check reads each Job once.
      assert.equal(podLists, jobStages, 'one pod list per stage');
      assert.ok(queued > 0);
      assert.equal(workloadWatches, queued, 'a Workload watch per queued stage');
      assert.equal(watches, 2 * jobStages + queued, 'a Job watch and a pod watch per stage, and a Workload watch per queued one');
      assert.ok(took < 5000, `the run took ${took} ms: it follows events, not a 15 s (or 2 s) poll`);
      figures.push(
        `a ${jobStages}-stage run with the default settings took ${took} ms: ${podLists} pod lists and ${watches} watches, ${reads.length} reads in all, however long the stages run (the 2 s poll read each running stage's Job and pods every 2 s)`,
      );
    });
  });

  test('a second run follows the first read-only, saying who holds the lock and for how long; both finish, each Job created once', async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const first = start(kube);
      await sftRunning(kube);
      const second = start(kube, { lock: { waitPollMs: 20, waitNoteMs: 100, renewMs: 40 } });
      const holder = new RegExp(`the run started by \\S+@${hostname()} \\(pid ${process.pid}\\) at \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z, which has held the lock of pipeline llama3-fintech in namespace tunepipe \\(Lease tunepipe-run-llama3-fintech\\) for \\d+\\.\\ds`);
      await waitFor(() => second.rec.notes.some((n) => n.includes(`following Job ${SFT} of the run started by`)), 5000, 'the second run follows the sft Job');
      await waitFor(() => second.rec.notes.some((n) => /still following/.test(n)), 5000, 'a progress note while it follows');
      assert.ok(second.rec.notes.some((n) => new RegExp(`^-: following ${holder.source}: watching its stages read-only; this run takes over what is left when it ends \\(--no-wait stops instead\\)$`).test(n)), second.rec.notes.join('\n'));
      assert.ok(second.rec.notes.some((n) => new RegExp(`^-: still following ${holder.source}$`).test(n)), second.rec.notes.join('\n'));
      kube.release('sft');
      const [a, b] = await Promise.all([first.done, second.done]);
      assertSurvived(kube, first.rec, a, 'the first run');
      assertSurvived(kube, second.rec, b, 'the second run', ['done', 'cached']);
      for (const stage of PIPELINE.stages) assert.equal(stageJobsCreated(kube, stage.resourceName), 1, `Job ${stage.resourceName} created once`);
      assert.deepEqual(kube.deletedJobs.filter((j) => !j.includes('marker-check')), [], 'nothing deleted');
      // The lock is given back at the end.
      assert.equal(kube.get('Lease', 'tunepipe', runLockName('llama3-fintech'))?.['spec'].holderIdentity, undefined);
    });
  });

  test('a second run takes over what is left when the first ends early (Ctrl-C): it finishes the pipeline, each Job created once', async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const controller = new AbortController();
      const first = start(kube, { signal: controller.signal });
      await sftRunning(kube);
      const second = start(kube, { lock: { waitPollMs: 20, renewMs: 40 } });
      await waitFor(() => second.rec.notes.some((n) => n.includes(`following Job ${SFT} of the run started by`)), 5000, 'the second run follows the sft Job');
      controller.abort();
      assert.equal((await first.done).outcome, 'detached');
      // Given back by the first run as it ended (or, when that did not get through in its 500 ms,
      // taken over: its holder is a run of this process that has ended).
      const took = /ended: this run holds the lock of pipeline llama3-fintech .* now and goes on with what is left|took over the run lock .*: an earlier run of this process that has ended/;
      await waitFor(() => second.rec.notes.some((n) => took.test(n)), 5000, 'the second run takes the lock');
      kube.release('sft');
      const result = await second.done;
      assertSurvived(kube, second.rec, result, 'the second run', ['done', 'cached']);
      for (const stage of PIPELINE.stages) assert.equal(stageJobsCreated(kube, stage.resourceName), 1, `Job ${stage.resourceName} created once`);
    });
  });

  test('a stage the other run left without a Job is looked up on the volume (marker check) once this run holds the lock, not before', async () => {
    await withKube({}, async (kube) => {
      const merge = PIPELINE.stages.find((s) => s.name === 'merge')!;
      // Its Job was cleaned up after it finished: only its completion marker is left.
      kube.markers.add(merge.completionMarker!);
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const checks = () => kube.created.filter((c) => c.includes('marker-check')).length;
      const first = start(kube);
      await sftRunning(kube);
      const second = start(kube, { lock: { waitPollMs: 20, renewMs: 40 } });
      await waitFor(() => second.rec.notes.some((n) => n.includes(`following Job ${SFT}`)), 5000, 'the second run follows');
      assert.equal(checks(), 1, 'only the first run checked the volume so far');
      kube.release('sft');
      const [a, b] = await Promise.all([first.done, second.done]);
      assert.equal(a.outcome, 'succeeded', first.rec.output());
      assert.equal(a.stages.find((s) => s.stage === 'merge')?.status, 'cached');
      assertSurvived(kube, second.rec, b, 'the second run', ['done', 'cached']);
      assert.ok(second.rec.notes.some((n) => n === 'merge: artifact complete on the volume (its Job was cleaned up): not run again'), second.rec.notes.join('\n'));
      assert.equal(checks(), 2, 'the second run checked once, after it took the lock');
      assert.equal(stageJobsCreated(kube, merge.resourceName), 0, 'merge never re-run');
    });
  });

  test('Ctrl-C ends a run that follows another one at once; the other goes on', async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const first = start(kube);
      await sftRunning(kube);
      const controller = new AbortController();
      const second = start(kube, { signal: controller.signal, lock: { waitPollMs: 5000 } });
      await waitFor(() => second.rec.notes.some((n) => n.includes(`following Job ${SFT}`)), 5000, 'the second run follows');
      const aborted = Date.now();
      controller.abort();
      const result = await second.done;
      const took = Date.now() - aborted;
      assert.equal(result.outcome, 'detached', second.rec.output());
      assert.ok(took < 1000, `Ctrl-C took ${took} ms`);
      kube.release('sft');
      assertSurvived(kube, first.rec, await first.done, 'the first run');
      figures.push(`Ctrl-C on a run following another run's stages: ended in ${took} ms; the other run finished, each Job created once`);
    });
  });

  test('--no-wait: a second run fails at once naming the run that holds the lock; the first goes on', async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const first = start(kube);
      await sftRunning(kube);
      const tried = Date.now();
      // Even with --force: it stops before it touches anything.
      await assert.rejects(runOnCluster(PIPELINE, { kubeConfig: kube.kubeConfig(), reporter: recorder(), ...FLAKY, force: ['sft'], lock: { whenHeld: 'fail' } }), (error: Error) => {
        assert.equal(error.name, 'RunnerError');
        assert.match(error.message, new RegExp(`^run started by \\S+@${hostname()} \\(pid ${process.pid}\\) at \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z is running pipeline llama3-fintech in namespace tunepipe \\(Lease tunepipe-run-llama3-fintech\\) \\(for \\d+\\.\\ds\\)`));
        assert.match(error.message, /drop --no-wait to follow that run and take over what is left when it ends/);
        assert.match(error.message, /or stop it: Ctrl-C in its terminal/);
        return true;
      });
      assert.ok(Date.now() - tried < 1000, 'failed fast');
      assert.ok(!kube.deletedJobs.includes(SFT), 'the forced run deleted nothing');
      kube.release('sft');
      const result = await first.done;
      assertSurvived(kube, first.rec, result, 'the first run');
    });
  });

  test('--force while another run holds the lock: it follows, re-runs once the other run ended; neither fails, no 422', async () => {
    await withKube({}, async (kube) => {
      kube.script('sft', { log: SEED_TRAIN_LOG, holdAtLine: 20 });
      const first = start(kube);
      await sftRunning(kube);
      const second = start(kube, { force: ['sft'], lock: { waitPollMs: 20, renewMs: 40 } });
      await waitFor(() => second.rec.last('sft')?.detail?.startsWith('waiting for the run lock: the run started by') === true, 5000, 'the forced sft waits for the lock');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(stageJobsCreated(kube, SFT), 1, 'the waiting run touched nothing');
      let deletedWhileFirstRan = -1;
      void first.done.then(() => (deletedWhileFirstRan = kube.deletedJobs.filter((j) => j === SFT).length));
      kube.release('sft');
      const [a, b] = await Promise.all([first.done, second.done]);
      assert.equal(a.outcome, 'succeeded', first.rec.output());
      assert.equal(b.outcome, 'succeeded', second.rec.output());
      assert.equal(deletedWhileFirstRan, 0, 'the forced sft was deleted only after the first run ended');
      assert.equal(kube.deletedJobs.filter((j) => j === SFT).length, 1);
      assert.equal(stageJobsCreated(kube, SFT), 2, 're-created once');
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
      // Written as another run would: read, then replace with the version read (a renewal in
      // between makes it 409, and it reads again).
      let status = 0;
      for (let attempt = 0; attempt < 20 && status !== 200; attempt++) {
        const lease = kube.get('Lease', 'tunepipe', name) as Json;
        const res = await fetch(`${kube.url}/apis/coordination.k8s.io/v1/namespaces/tunepipe/leases/${name}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...lease, metadata: { ...lease['metadata'], annotations: { 'tunepipe.dev/run-user': 'eve', 'tunepipe.dev/run-host': 'elsewhere' } }, spec: { ...lease['spec'], holderIdentity: 'eve' } }),
        });
        status = res.status;
      }
      assert.equal(status, 200);
      const result = await done;
      assert.equal(result.outcome, 'detached', rec.output());
      assert.ok(rec.notes.some((n) => /the run started by eve@elsewhere took the run lock over: this run stops watching; the Jobs keep running/.test(n)), rec.notes.join('\n'));
      assert.ok(kube.get('Job', 'tunepipe', SFT), 'the Job is left to the new holder');
      assert.equal(kube.get('Lease', 'tunepipe', name)?.['spec'].holderIdentity, 'eve', 'the new holder keeps the lock');
    });
  });

  test('Ctrl-C (SIGINT) ends the CLI process of a black-holed run in under 2 s', async () => {
    const run = await cliRun;
    const { kube, child } = run;
    await stageRunning(kube, SFT);
    kube.blackhole(Number.POSITIVE_INFINITY);
    await waitFor(() => kube.heldRequests > 0, 5000, 'a request in flight into the black hole');
    const interrupted = Date.now();
    child.kill('SIGINT');
    const code = await run.exited;
    const took = Date.now() - interrupted;
    assert.equal(code, 0, run.output);
    assert.match(run.output, /outcome detached/);
    assert.ok(took < 2000, `the process exited ${took} ms after SIGINT`);
    figures.push(`SIGINT to a \`tunepipe run\` process whose API server is black-holed: the process exited after ${took} ms (target < 2000 ms)`);
  });
});
