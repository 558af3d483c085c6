import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { brokenCheckpointsDir, CHECKPOINT_SETTLE_SECONDS, GATE_FAILED_EXIT_CODE, type GateReport } from '@tunepipe/core';
import type { CompiledPipeline, CompiledStage } from '@tunepipe/core/compiled';
import { repairOutputDir, sealCheckpoints } from '../checkpoint.ts';
import { selectStages, type SelectionOptions } from '../graph.ts';
import { LogProgressParser } from '../progress/parse.ts';
import { gateHeadline } from '../progress/format.ts';
import { RUN_RECORD_FILE, recordingReporter } from '../progress/record.ts';
import { createConsoleReporter } from '../progress/reporter.ts';
import { runGraph, type StageContext, type StageOutcome } from '../scheduler.ts';
import { RunnerError, type RunReporter, type RunResult } from '../types.ts';
import { planLocalStage, type LocalStagePlan, type LocalStep } from './plan.ts';
import { localPreflight } from './preflight.ts';
import { completedMarker } from './publish.ts';
import { nodeFs, resourceFailure, type LocalFs } from './fs.ts';
import { acquireRunLock, type RunLock } from './lock.ts';
import { writeResumeNote } from './resume-note.ts';
import { verifyArtifactFolder, VERIFIED_FILE } from './verify.ts';

/** Local folders of a stage, handed to the in-process converter. */
export interface LocalStagePaths {
  /** Write the stage's output here (renamed to `outDir` when the converter returns). */
  readonly workDir: string;
  readonly outDir: string;
  readonly artifactsDir: string;
  /** Local artifact folders of the stages this one reads, by stage name. */
  readonly inputs: Readonly<Record<string, string>>;
  /** Maps a pod path (`/artifacts/...`, `/config/<stage>.json`) to its local place; the pod's files are already written. */
  readonly mapPath: (podPath: string) => string;
  /** The tool's command with local paths (`tunepipe convert --config … --out …`). */
  readonly argv: readonly string[];
  /** Lines written here show in the stage's log and feed its progress line. */
  readonly log: (line: string) => void;
}

/** Runs the convert stage in-process (the CLI passes the converter of @tunepipe/convert). */
export type RunConvertStage = (stage: CompiledStage, paths: LocalStagePaths) => Promise<void>;

export interface LocalServer {
  readonly stage: string;
  readonly url: string;
  readonly pid: number | undefined;
  /** Resolves with the exit code when the server process ends. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

export interface LocalRunResult extends RunResult {
  /** Serve stages left running after a successful run (the caller stops them). */
  readonly servers: readonly LocalServer[];
}

export interface LocalRunOptions extends SelectionOptions {
  /** Folder standing in for the artifacts volume. @default '.tunepipe/artifacts' (from cwd) */
  readonly artifactsDir?: string;
  /** Runs convert in-process; without it convert runs its container command (see `selfCommand`). */
  readonly runConvertStage?: RunConvertStage;
  /** Replaces a leading `tunepipe` in container commands (convert, evaluation gates), e.g. `[process.execPath, cliEntry]`. */
  readonly selfCommand?: readonly string[];
  /** @default createConsoleReporter() */
  readonly reporter?: RunReporter;
  /** Abort to stop: running processes get SIGTERM; a re-run resumes. */
  readonly signal?: AbortSignal;
  /** Environment of the stage processes (PATH decides which tools are found). @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** GPU stages run one at a time on one box. @default 1 */
  readonly gpuSlots?: number;
  /** Log lines shown for a failed stage. @default 20 */
  readonly logTailLines?: number;
  /** serve: how long vLLM may take to answer /health. @default 900000 */
  readonly serveReadyTimeoutMs?: number;
  /** serve: /health poll interval. @default 1000 */
  readonly healthPollMs?: number;
  /**
   * sft: how long a checkpoint must stay unchanged to be sealed when nothing shows the trainer
   * moved past it (see core's resume.ts). @default 30000
   */
  readonly checkpointSettleMs?: number;
  /** The file operations of the runner itself; tests make them fail. @default node:fs */
  readonly fs?: Partial<LocalFs>;
  readonly now?: () => number;
}

/**
 * Process groups still running. Children run in their own group (so Ctrl-C reaches the runner,
 * which stops them gracefully); if the runner exits anyway (a second Ctrl-C, an uncaught error),
 * they are killed here instead of being left holding the GPU. SIGTERM, SIGHUP and SIGINT stop
 * them gracefully too when nobody else handles those (runLocally). Only a SIGKILL of the runner
 * leaves them running.
 */
const liveGroups = new Set<number>();
process.on('exit', () => {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function track(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const pid = child.pid;
  liveGroups.add(pid);
  child.once('close', () => liveGroups.delete(pid));
}

/** Kills a process group: the tool and anything it spawned (torchrun workers). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

function exitPromise(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error; logError?: unknown }> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>, graceMs = 5000): Promise<void> {
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A failed gate's headline from the `gate.json` its step wrote into the work folder. */
async function gateVerdict(workDir: string): Promise<string> {
  try {
    const report = JSON.parse(await readFile(join(workDir, 'gate.json'), 'utf8')) as GateReport;
    if (Array.isArray(report.verdicts) && report.passed === false) return gateHeadline(report);
  } catch {
    // No verdict file: the gate could not judge (its log says why).
  }
  return `gate failed (exit code ${GATE_FAILED_EXIT_CODE}); no verdict in ${join(workDir, 'gate.json')}`;
}

/**
 * Runs a compiled pipeline on this machine: the same stages, configs, caching (completion
 * markers) and resume as on a cluster, with `artifactsDir` standing in for the artifacts volume.
 * LLaMA-Factory and vLLM stages run the commands their containers would; convert runs
 * in-process. Missing tools are reported all at once before anything starts.
 *
 * Integrity, as the pod wrapper keeps it: a stage counts as cached only when its folder matches
 * its SHA256SUMS, each input is checked again before a stage reads it (both trust a folder that
 * is unchanged since its last full check, see verify.ts), and sft checkpoints are sealed while
 * training runs and resumed from only when their seal verifies. One run per pipeline holds the
 * lock in `<artifacts>/.tunepipe-runs/<pipeline>.lock`.
 */
export async function runLocally(pipeline: CompiledPipeline, options: LocalRunOptions = {}): Promise<LocalRunResult> {
  const selection = selectStages(pipeline, options);
  const artifactsDir = resolve(options.artifactsDir ?? '.tunepipe/artifacts');
  const env = options.env ?? process.env;
  const tailLines = options.logTailLines ?? 20;
  const fs: LocalFs = { ...nodeFs, ...options.fs };
  const settleMs = options.checkpointSettleMs ?? CHECKPOINT_SETTLE_SECONDS * 1000;
  const now = options.now ?? Date.now;
  const plans = new Map(
    pipeline.stages.map((s) => [
      s.name,
      planLocalStage(s, { artifactsDir, env, ...(options.selfCommand ? { selfCommand: options.selfCommand } : {}) }),
    ]),
  );
  const stageOf = new Map(pipeline.stages.map((s) => [s.name, s]));
  const servers: LocalServer[] = [];
  const reporter = recordingReporter(options.reporter ?? createConsoleReporter(), (name) => {
    const plan = plans.get(name);
    return plan ? join(plan.runDir, RUN_RECORD_FILE) : undefined;
  });

  // The caller's signal, and the process's own stop signals when nobody else handles them (the
  // CLI does): either stops the children gracefully instead of leaving them to the OS.
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  if (options.signal?.aborted) stop.abort();
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let caught: NodeJS.Signals | undefined;
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(name) > 0) continue;
    const handler = () => {
      caught ??= name;
      stop.abort();
    };
    process.on(name, handler);
    handlers.set(name, handler);
  }
  const signal = stop.signal;

  let lock: RunLock | undefined;
  /** Why a folder with a marker is not trusted, by stage (said before the run starts). */
  const untrusted = new Map<string, string>();
  const verify = (name: string) => {
    const plan = plans.get(name)!;
    return verifyArtifactFolder(plan.outDir, stageOf.get(name)!.hash, join(plan.runDir, VERIFIED_FILE));
  };

  const findCached = async (stages: readonly CompiledStage[]) => {
    const cached = new Map<string, string>();
    for (const stage of stages) {
      if (stage.workload.kind !== 'Job') continue;
      const plan = plans.get(stage.name)!;
      const marker = await completedMarker(plan);
      if (!marker) continue;
      try {
        const problem = await verify(stage.name);
        if (!problem) cached.set(stage.name, `complete in ${plan.outDir} (${marker.files} files)`);
        else untrusted.set(stage.name, `${plan.outDir} is marked complete but ${problem.file ? `${problem.file} ${problem.problem}` : problem.problem}; running it again`);
      } catch (error) {
        const failure = resourceFailure(error, plan.outDir);
        if (!failure) throw error;
        throw new RunnerError(`cannot check ${stage.name}'s artifacts: ${failure.reason} (${failure.message})`);
      }
    }
    for (const [name, why] of untrusted) reporter.note(name, why);
    return cached;
  };

  const preflight = async (toRun: readonly CompiledStage[]) => {
    const problems = await localPreflight(
      toRun.map((s) => plans.get(s.name)!),
      { pathVar: env['PATH'], hasConverter: options.runConvertStage !== undefined },
    );
    if (problems.length > 0) throw new RunnerError(`cannot run ${pipeline.pipeline} locally; nothing was started:`, problems);
    try {
      lock = await acquireRunLock(artifactsDir, pipeline.pipeline, now);
    } catch (error) {
      const failure = resourceFailure(error, artifactsDir);
      if (!failure) throw error;
      throw new RunnerError(`cannot take the run lock of ${pipeline.pipeline}: ${failure.reason} (${failure.message})`);
    }
    if (lock.note) reporter.note(undefined, lock.note);
  };

  /** A log file that never takes the runner down: a write error (a full disk) is kept for the failure line. */
  const openLog = (plan: LocalStagePlan, ctx: StageContext) => {
    const stream = fs.openLog(plan.logFile);
    const state: { stream: Writable; error?: unknown } = { stream };
    stream.on('error', (error) => {
      if (state.error) return;
      state.error = error;
      const failure = resourceFailure(error, plan.logFile);
      ctx.note(`its log is incomplete: ${failure ? failure.reason : String(error)}`);
    });
    return state;
  };
  const closeLog = async (log: { stream: Writable }) => {
    log.stream.end();
    await finished(log.stream).catch(() => undefined);
  };

  const spawnTool = (plan: LocalStagePlan, step: LocalStep, ctx: StageContext, parser: LogProgressParser, tail: string[]) => {
    const [file, ...args] = step.command;
    const child = spawn(file!, args, {
      cwd: plan.runDir,
      env: { ...env, ...step.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    track(child);
    const log = openLog(plan, ctx);
    const onText = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (!log.error) log.stream.write(text);
      for (const line of text.split(/\r\n|\n/)) {
        const last = line.split('\r').filter((p) => p.trim()).at(-1);
        if (last !== undefined) {
          tail.push(last);
          if (tail.length > tailLines) tail.shift();
        }
      }
      if (parser.push(text)) ctx.update({ progress: parser.progress });
    };
    child.stdout?.on('data', onText);
    child.stderr?.on('data', onText);
    const exited = exitPromise(child).then(async (r) => {
      await closeLog(log);
      return { ...r, ...(log.error ? { logError: log.error } : {}) };
    });
    return { child, exited };
  };

  /** The pod's files and scratch folders, under the stage's run folder. */
  const writePodFiles = async (plan: LocalStagePlan) => {
    await fs.mkdir(plan.runDir);
    for (const dir of plan.scratch) await fs.mkdir(dir);
    for (const f of plan.files) {
      await fs.mkdir(dirname(f.path));
      await fs.writeFile(f.path, f.content);
    }
  };

  /** Why an input of `stage` cannot be read as it was published, or undefined when all verify. */
  const corruptInput = async (stage: CompiledStage): Promise<{ reason: string; message: string } | undefined> => {
    for (const dep of stage.dependsOn) {
      const upstream = stageOf.get(dep);
      if (!upstream || upstream.workload.kind !== 'Job') continue;
      const problem = await verify(dep);
      if (problem) {
        const dir = plans.get(dep)!.outDir;
        return {
          reason: `input ${dep} is corrupt: ${problem.file ? `${problem.file} ${problem.problem}` : problem.problem}`,
          message: `in ${dir}; run again with --force ${dep} to rebuild it`,
        };
      }
    }
    return undefined;
  };

  const prepare = async (plan: LocalStagePlan, ctx: StageContext) => {
    await writePodFiles(plan);
    const hadMarker = (await completedMarker(plan)) !== undefined;
    await fs.rm(plan.markerPath);
    if (ctx.forced && (plan.mode === 'rename' || hadMarker)) {
      ctx.note(`--force: clearing ${plan.outDir}`);
      await fs.rm(plan.outDir);
    }
    if (plan.mode === 'rename') await fs.rm(plan.workDir);
    await fs.mkdir(plan.workDir);
    if (plan.stage.kind === 'sft') {
      const decision = await repairOutputDir(plan.workDir, now);
      const aside = brokenCheckpointsDir(plan.workDir);
      for (const moved of decision.moveAside) ctx.note(`${moved.name} ${moved.reason}; moved to ${aside}/`);
      if (decision.resumeFrom) ctx.note(`resuming from ${decision.resumeFrom}`);
      await writeResumeNote(plan.runDir, decision, aside, now()).catch(() => undefined);
    }
  };

  /** sft: seals checkpoints while the trainer runs (see core's resume.ts); stop() runs a last pass. */
  const sealWhileTraining = (plan: LocalStagePlan, ctx: StageContext) => {
    let pass: Promise<void> = Promise.resolve();
    const run = (trainingFinished = false) => {
      pass = pass.then(async () => {
        for (const { name, why } of await sealCheckpoints(plan.workDir, now() - settleMs, { trainingFinished }).catch(() => [])) ctx.note(`sealed ${name} (${why})`);
      });
      return pass;
    };
    // Cheap (a listing and a few stats) until a checkpoint is due; then one read of it.
    const timer = setInterval(run, Math.min(500, Math.max(100, settleMs)));
    return {
      /** After a clean exit of the trainer every checkpoint it wrote is finished. */
      stop: async (trainingFinished: boolean) => {
        clearInterval(timer);
        await run(trainingFinished);
      },
    };
  };

  /**
   * Runs a stage; a resource failure on the way (disk full, no permission, a path gone) is the
   * stage's failure, naming the path, not an exception out of the runner.
   */
  const failingOnResources =
    (run: (stage: CompiledStage, plan: LocalStagePlan, ctx: StageContext) => Promise<StageOutcome>, pathOf: (plan: LocalStagePlan) => string) =>
    async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
      const plan = plans.get(stage.name)!;
      try {
        return await run(stage, plan, ctx);
      } catch (error) {
        const failure = resourceFailure(error, pathOf(plan));
        if (!failure) throw error;
        ctx.update({ failure: { ...failure, source: plan.logFile, logTail: [] } });
        return 'failed';
      }
    };

  const runBatch = async (stage: CompiledStage, plan: LocalStagePlan, ctx: StageContext): Promise<StageOutcome> => {
    const corrupt = await corruptInput(stage);
    if (corrupt) {
      ctx.update({ failure: { ...corrupt, logTail: [] } });
      return 'failed';
    }
    await prepare(plan, ctx);
    const parser = new LogProgressParser();
    const tail: string[] = [];
    ctx.update({ status: 'running', attempts: ctx.state().attempts + 1, detail: undefined });

    if (stage.kind === 'convert' && options.runConvertStage) {
      const log = openLog(plan, ctx);
      try {
        await options.runConvertStage(stage, {
          workDir: plan.workDir,
          outDir: plan.outDir,
          artifactsDir,
          inputs: Object.fromEntries(stage.dependsOn.map((d) => [d, plans.get(d)!.outDir])),
          mapPath: plan.mapPath,
          argv: plan.steps.find((s) => s.wrapper)?.command ?? [],
          log: (line) => {
            if (!log.error) log.stream.write(`${line}\n`);
            tail.push(line);
            if (tail.length > tailLines) tail.shift();
            if (parser.push(`${line}\n`)) ctx.update({ progress: parser.progress });
          },
        });
      } catch (error) {
        const resource = resourceFailure(error, plan.workDir);
        const message = error instanceof Error ? error.message : String(error);
        ctx.update({ failure: { reason: resource?.reason ?? 'convert failed', message: resource?.message ?? message, source: plan.logFile, logTail: [...tail] } });
        return 'failed';
      } finally {
        await closeLog(log);
      }
      await fs.publish(plan);
      return 'done';
    }

    for (const step of plan.steps) {
      const { child, exited } = spawnTool(plan, step, ctx, parser, tail);
      const sealer = stage.kind === 'sft' && step.wrapper ? sealWhileTraining(plan, ctx) : undefined;
      const onAbort = () => void stopChild(child, exited);
      signal.addEventListener('abort', onAbort, { once: true });
      const result = await exited;
      signal.removeEventListener('abort', onAbort);
      await sealer?.stop(!result.error && result.code === 0 && !signal.aborted);
      if (parser.end()) ctx.update({ progress: parser.progress });
      if (signal.aborted) return 'stopped';
      if (result.error || result.code !== 0) {
        const logFull = result.logError ? resourceFailure(result.logError, plan.logFile) : undefined;
        const reason = result.error
          ? `could not start ${step.command[0]}: ${result.error.message}`
          : result.signal
            ? `${step.command[0]} killed by ${result.signal}`
            : result.code === GATE_FAILED_EXIT_CODE && step.container === 'gate'
              ? await gateVerdict(plan.workDir)
              : `${step.command[0]} exited with code ${result.code}`;
        const message = logFull ? `${logFull.reason} (${logFull.message})` : parser.progress.lastError;
        ctx.update({ failure: { reason, ...(message ? { message } : {}), source: plan.logFile, logTail: [...tail] } });
        return 'failed';
      }
    }
    await fs.publish(plan);
    return 'done';
  };

  const runServe = async (stage: CompiledStage, plan: LocalStagePlan, ctx: StageContext): Promise<StageOutcome> => {
    const corrupt = await corruptInput(stage);
    if (corrupt) {
      ctx.update({ failure: { ...corrupt, logTail: [] } });
      return 'failed';
    }
    await writePodFiles(plan);
    const parser = new LogProgressParser();
    const tail: string[] = [];
    const step = plan.steps.at(-1)!;
    ctx.update({ status: 'starting', attempts: ctx.state().attempts + 1, detail: `starting ${step.command[0]} on port ${plan.port}` });
    const { child, exited } = spawnTool(plan, step, ctx, parser, tail);
    const url = `http://127.0.0.1:${plan.port}`;
    const deadline = Date.now() + (options.serveReadyTimeoutMs ?? 900_000);
    const pollMs = options.healthPollMs ?? 1000;
    let ended: Awaited<typeof exited> | undefined;
    void exited.then((r) => (ended = r));
    while (!signal.aborted && ended === undefined && Date.now() < deadline) {
      try {
        const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(Math.max(pollMs, 500)) });
        if (response.ok) {
          ctx.update({ endpoint: `${url}/v1`, detail: undefined });
          servers.push({
            stage: stage.name,
            url: `${url}/v1`,
            pid: child.pid,
            exited: exited.then((r) => r.code),
            stop: () => stopChild(child, exited),
          });
          return 'done';
        }
      } catch {
        // not listening yet
      }
      ctx.update({ status: 'running', detail: `waiting for ${url}/health` });
      await new Promise((r) => setTimeout(r, pollMs));
    }
    if (signal.aborted) {
      await stopChild(child, exited);
      return 'stopped';
    }
    if (ended === undefined) await stopChild(child, exited);
    const reason = ended ? `exited with code ${ended.code ?? ended.signal} before answering /health` : `no answer on ${url}/health in time`;
    ctx.update({ failure: { reason, ...(parser.progress.lastError ? { message: parser.progress.lastError } : {}), source: plan.logFile, logTail: [...tail] } });
    return 'failed';
  };

  const executeBatch = failingOnResources(runBatch, (plan) => plan.outDir);
  const executeServe = failingOnResources(runServe, (plan) => plan.runDir);
  let result: RunResult;
  try {
    result = await runGraph({
      pipeline,
      selection,
      target: 'local',
      where: artifactsDir,
      reporter,
      signal,
      gpuSlots: options.gpuSlots ?? 1,
      ...(options.now ? { now: options.now } : {}),
      findCached,
      preflight,
      execute: (stage, ctx) => (stage.workload.kind === 'Deployment' ? executeServe(stage, ctx) : executeBatch(stage, ctx)),
    });
  } catch (error) {
    lock?.release();
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    for (const [name, handler] of handlers) process.off(name, handler);
  }
  if (result.outcome !== 'succeeded' || caught) {
    for (const s of servers) await s.stop();
    lock?.release();
    // Stopped by a signal nobody else handles: end as that signal would have ended the process.
    if (caught) process.kill(process.pid, caught);
    return { ...result, servers: [] };
  }
  // Servers keep the run going: the lock is held until the last one stops.
  const held = lock;
  if (held) void Promise.all(servers.map((s) => s.exited)).then(() => held.release());
  return { ...result, servers };
}

/** Keeps local servers in the foreground until they exit or `signal` aborts, then stops them. */
export async function waitForServers(servers: readonly LocalServer[], signal: AbortSignal): Promise<void> {
  if (servers.length === 0) return;
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    void Promise.race(servers.map((s) => s.exited)).then(() => resolve());
  });
  for (const s of servers) await s.stop();
}
