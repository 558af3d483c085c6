import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GATE_FAILED_EXIT_CODE, type GateReport } from '@tunepipe/core';
import type { CompiledPipeline, CompiledStage } from '@tunepipe/core/compiled';
import { repairOutputDir } from '../checkpoint.ts';
import { selectStages, type SelectionOptions } from '../graph.ts';
import { LogProgressParser } from '../progress/parse.ts';
import { gateHeadline } from '../progress/format.ts';
import { RUN_RECORD_FILE, recordingReporter } from '../progress/record.ts';
import { createConsoleReporter } from '../progress/reporter.ts';
import { runGraph, type StageContext, type StageOutcome } from '../scheduler.ts';
import { RunnerError, type RunReporter, type RunResult } from '../types.ts';
import { planLocalStage, type LocalStagePlan, type LocalStep } from './plan.ts';
import { localPreflight } from './preflight.ts';
import { completedMarker, publishLocalStage } from './publish.ts';

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
  readonly now?: () => number;
}

/**
 * Process groups still running. Children run in their own group (so Ctrl-C reaches the runner,
 * which stops them gracefully); if the runner exits anyway (a second Ctrl-C), they are killed
 * here instead of being left holding the GPU.
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

function exitPromise(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }> {
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
 */
export async function runLocally(pipeline: CompiledPipeline, options: LocalRunOptions = {}): Promise<LocalRunResult> {
  const selection = selectStages(pipeline, options);
  const artifactsDir = resolve(options.artifactsDir ?? '.tunepipe/artifacts');
  const env = options.env ?? process.env;
  const signal = options.signal ?? new AbortController().signal;
  const tailLines = options.logTailLines ?? 20;
  const plans = new Map(
    pipeline.stages.map((s) => [
      s.name,
      planLocalStage(s, { artifactsDir, env, ...(options.selfCommand ? { selfCommand: options.selfCommand } : {}) }),
    ]),
  );
  const servers: LocalServer[] = [];
  const reporter = recordingReporter(options.reporter ?? createConsoleReporter(), (name) => {
    const plan = plans.get(name);
    return plan ? join(plan.runDir, RUN_RECORD_FILE) : undefined;
  });

  const findCached = async (stages: readonly CompiledStage[]) => {
    const cached = new Map<string, string>();
    for (const stage of stages) {
      if (stage.workload.kind !== 'Job') continue;
      const plan = plans.get(stage.name)!;
      const marker = await completedMarker(plan);
      if (marker) cached.set(stage.name, `complete in ${plan.outDir} (${marker.files} files)`);
    }
    return cached;
  };

  const preflight = async (toRun: readonly CompiledStage[]) => {
    const problems = await localPreflight(
      toRun.map((s) => plans.get(s.name)!),
      { pathVar: env['PATH'], hasConverter: options.runConvertStage !== undefined },
    );
    if (problems.length > 0) throw new RunnerError(`cannot run ${pipeline.pipeline} locally; nothing was started:`, problems);
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
    const log = createWriteStream(plan.logFile, { flags: 'a' });
    const onText = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      log.write(text);
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
      await new Promise<void>((done) => log.end(done));
      return r;
    });
    return { child, exited };
  };

  /** The pod's files and scratch folders, under the stage's run folder. */
  const writePodFiles = async (plan: LocalStagePlan) => {
    await mkdir(plan.runDir, { recursive: true });
    for (const dir of plan.scratch) await mkdir(dir, { recursive: true });
    for (const f of plan.files) {
      await mkdir(dirname(f.path), { recursive: true });
      await writeFile(f.path, f.content);
    }
  };

  const prepare = async (plan: LocalStagePlan, ctx: StageContext) => {
    await writePodFiles(plan);
    const hadMarker = (await completedMarker(plan)) !== undefined;
    await rm(plan.markerPath, { force: true });
    if (ctx.forced && (plan.mode === 'rename' || hadMarker)) {
      ctx.note(`--force: clearing ${plan.outDir}`);
      await rm(plan.outDir, { recursive: true, force: true });
    }
    if (plan.mode === 'rename') await rm(plan.workDir, { recursive: true, force: true });
    await mkdir(plan.workDir, { recursive: true });
    if (plan.stage.kind === 'sft') {
      const decision = await repairOutputDir(plan.workDir, options.now);
      for (const moved of decision.moveAside) ctx.note(`${moved.name} ${moved.reason}; moved to ${plan.workDir}.broken/`);
      if (decision.resumeFrom) ctx.note(`resuming from ${decision.resumeFrom}`);
    }
  };

  const executeBatch = async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
    const plan = plans.get(stage.name)!;
    await prepare(plan, ctx);
    const parser = new LogProgressParser();
    const tail: string[] = [];
    ctx.update({ status: 'running', attempts: ctx.state().attempts + 1, detail: undefined });

    if (stage.kind === 'convert' && options.runConvertStage) {
      const log = createWriteStream(plan.logFile, { flags: 'a' });
      try {
        await options.runConvertStage(stage, {
          workDir: plan.workDir,
          outDir: plan.outDir,
          artifactsDir,
          inputs: Object.fromEntries(stage.dependsOn.map((d) => [d, plans.get(d)!.outDir])),
          mapPath: plan.mapPath,
          argv: plan.steps.find((s) => s.wrapper)?.command ?? [],
          log: (line) => {
            log.write(`${line}\n`);
            tail.push(line);
            if (tail.length > tailLines) tail.shift();
            if (parser.push(`${line}\n`)) ctx.update({ progress: parser.progress });
          },
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        ctx.update({ failure: { reason: 'convert failed', message, source: plan.logFile, logTail: [...tail] } });
        return 'failed';
      } finally {
        await new Promise<void>((done) => log.end(done));
      }
      await publishLocalStage(plan);
      return 'done';
    }

    for (const step of plan.steps) {
      const { child, exited } = spawnTool(plan, step, ctx, parser, tail);
      const onAbort = () => void stopChild(child, exited);
      signal.addEventListener('abort', onAbort, { once: true });
      const result = await exited;
      signal.removeEventListener('abort', onAbort);
      if (parser.end()) ctx.update({ progress: parser.progress });
      if (signal.aborted) return 'stopped';
      if (result.error || result.code !== 0) {
        const reason = result.error
          ? `could not start ${step.command[0]}: ${result.error.message}`
          : result.signal
            ? `${step.command[0]} killed by ${result.signal}`
            : result.code === GATE_FAILED_EXIT_CODE && step.container === 'gate'
              ? await gateVerdict(plan.workDir)
              : `${step.command[0]} exited with code ${result.code}`;
        const message = parser.progress.lastError;
        ctx.update({ failure: { reason, ...(message ? { message } : {}), source: plan.logFile, logTail: [...tail] } });
        return 'failed';
      }
    }
    await publishLocalStage(plan);
    return 'done';
  };

  const executeServe = async (stage: CompiledStage, ctx: StageContext): Promise<StageOutcome> => {
    const plan = plans.get(stage.name)!;
    await writePodFiles(plan);
    const parser = new LogProgressParser();
    const tail: string[] = [];
    const step = plan.steps.at(-1)!;
    ctx.update({ status: 'starting', attempts: ctx.state().attempts + 1, detail: `starting ${step.command[0]} on port ${plan.port}` });
    const { child, exited } = spawnTool(plan, step, ctx, parser, tail);
    const url = `http://127.0.0.1:${plan.port}`;
    const deadline = Date.now() + (options.serveReadyTimeoutMs ?? 900_000);
    const pollMs = options.healthPollMs ?? 1000;
    let finished: Awaited<typeof exited> | undefined;
    void exited.then((r) => (finished = r));
    while (!signal.aborted && finished === undefined && Date.now() < deadline) {
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
    if (finished === undefined) await stopChild(child, exited);
    const reason = finished ? `exited with code ${finished.code ?? finished.signal} before answering /health` : `no answer on ${url}/health in time`;
    ctx.update({ failure: { reason, ...(parser.progress.lastError ? { message: parser.progress.lastError } : {}), source: plan.logFile, logTail: [...tail] } });
    return 'failed';
  };

  const result = await runGraph({
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
  if (result.outcome !== 'succeeded') {
    for (const s of servers) await s.stop();
    return { ...result, servers: [] };
  }
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
