import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CompiledPipeline, CompiledStage, StageKind } from '@tunepipe/core/compiled';
import { parseMarker } from '@tunepipe/core';
import type { RunReporter, RunResult, StageFailure, StageState, StageStatus } from '../types.ts';
import { processAlive } from '../process-alive.ts';

/**
 * A local run leaves, per stage, a record of its last execution next to its log:
 * `<artifacts>/.tunepipe-runs/<resource name>/run.json`. The resource name carries the stage's
 * hash, so a record always describes the stage as it is now compiled; an edited stage has none
 * until it runs. `tunepipe status/logs --target local` and `tunepipe report` read them.
 */
export const RUNS_DIR = '.tunepipe-runs';
export const RUN_RECORD_FILE = 'run.json';
export const STAGE_LOG_FILE = 'stage.log';

/** The folder of one stage's local run: its pod files, log and record. */
export function stageRunDir(artifactsDir: string, stage: Pick<CompiledStage, 'resourceName'>): string {
  return join(artifactsDir, RUNS_DIR, stage.resourceName);
}

/** One stage's last execution on this machine. Times are ISO strings. */
export interface LocalRunRecord {
  readonly pipeline: string;
  readonly stage: string;
  readonly kind: StageKind;
  readonly hash: string;
  readonly status: StageStatus;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly durationSeconds?: number;
  readonly attempts: number;
  /** The process that ran the stage: a `running` record whose runner is gone was interrupted. */
  readonly runnerPid: number;
  readonly failure?: StageFailure;
  readonly detail?: string;
}

/** Statuses a stage reaches by being worked on; waiting, skipped and cached leave the last record alone. */
const RECORDED: ReadonlySet<StageStatus> = new Set(['starting', 'running', 'retrying', 'done', 'failed', 'stopped', 'blocked']);

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function toRecord(pipeline: string, state: StageState): LocalRunRecord {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const startedAt = iso(state.startedAt);
  const finishedAt = iso(state.finishedAt);
  return {
    pipeline,
    stage: state.stage,
    kind: state.kind,
    hash: state.hash,
    status: state.status,
    ...(startedAt ? { startedAt } : {}),
    ...(finishedAt ? { finishedAt } : {}),
    ...(state.startedAt !== undefined && state.finishedAt !== undefined ? { durationSeconds: (state.finishedAt - state.startedAt) / 1000 } : {}),
    attempts: state.attempts,
    runnerPid: process.pid,
    ...(state.failure ? { failure: state.failure } : {}),
    ...(state.detail ? { detail: state.detail } : {}),
  };
}

/**
 * Passes everything to `inner` and writes a stage's record whenever its status changes (progress
 * updates are not written: they are many, and the log has them).
 */
export function recordingReporter(inner: RunReporter, recordPath: (stage: string) => string | undefined): RunReporter {
  let pipeline = '';
  const written = new Map<string, string>();
  const save = (state: StageState) => {
    if (!RECORDED.has(state.status)) return;
    const path = recordPath(state.stage);
    if (!path) return;
    const key = `${state.status}|${state.finishedAt ?? ''}|${state.failure?.reason ?? ''}|${state.attempts}`;
    if (written.get(state.stage) === key) return;
    written.set(state.stage, key);
    try {
      writeAtomically(path, `${JSON.stringify(toRecord(pipeline, state), null, 2)}\n`);
    } catch {
      // A record is a convenience for status and report; a full disk shows up in the stage itself.
    }
  };
  return {
    start(info) {
      pipeline = info.pipeline;
      inner.start(info);
    },
    update(state) {
      save(state);
      inner.update(state);
    },
    note(stage, message) {
      inner.note(stage, message);
    },
    finish(result: RunResult) {
      for (const state of result.stages) save(state);
      inner.finish(result);
    },
  };
}

/** The stage's record, or undefined when it has none or it is unreadable. */
export function readRunRecord(artifactsDir: string, stage: Pick<CompiledStage, 'resourceName' | 'hash'>): LocalRunRecord | undefined {
  const path = join(stageRunDir(artifactsDir, stage), RUN_RECORD_FILE);
  try {
    const record = JSON.parse(readFileSync(path, 'utf8')) as LocalRunRecord;
    return record && typeof record === 'object' && record.hash === stage.hash && typeof record.status === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

function markerComplete(artifactsDir: string, stage: CompiledStage): boolean {
  if (!stage.completionMarker) return false;
  const path = stage.completionMarker.replace(/^\/artifacts(?=\/)/, artifactsDir);
  if (!existsSync(path)) return false;
  try {
    return parseMarker(readFileSync(path, 'utf8'))?.hash === stage.hash;
  } catch {
    return false;
  }
}

/**
 * Every stage of a pipeline as the last local runs left it: a complete artifact folder is done
 * (cached when no record says it ran), otherwise the record says; a `running` record whose runner
 * process is gone was stopped.
 */
export function localStatus(compiled: CompiledPipeline, artifactsDir: string): StageState[] {
  return compiled.stages.map((stage): StageState => {
    const record = readRunRecord(artifactsDir, stage);
    const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));
    const base: StageState = { stage: stage.name, kind: stage.kind, hash: stage.hash, status: 'waiting', attempts: record?.attempts ?? 0, preemptions: 0, expectedSeconds: stage.expectedSeconds };
    const times = { ...(record?.startedAt ? { startedAt: ms(record.startedAt)! } : {}), ...(record?.finishedAt ? { finishedAt: ms(record.finishedAt)! } : {}) };
    if (stage.workload.kind === 'Job' && markerComplete(artifactsDir, stage)) {
      return record?.status === 'done' ? { ...base, ...times, status: 'done' } : { ...base, ...times, status: 'cached', detail: 'complete on disk' };
    }
    if (!record) return { ...base, detail: 'not run on this machine' };
    const running = record.status === 'starting' || record.status === 'running' || record.status === 'retrying';
    if (running && !processAlive(record.runnerPid)) {
      return { ...base, ...times, status: 'stopped', detail: `its runner (pid ${record.runnerPid}) is gone; run it again to resume` };
    }
    if (stage.workload.kind === 'Deployment' && record.status === 'done') {
      // A local server lives as long as the `tunepipe run` that started it.
      return processAlive(record.runnerPid) ? { ...base, ...times, status: 'running', detail: 'serving' } : { ...base, ...times, status: 'stopped', detail: 'its server stopped with its runner' };
    }
    if (record.status === 'done') return { ...base, detail: 'ran, but its artifact folder is no longer complete' };
    return {
      ...base,
      ...times,
      status: record.status,
      ...(record.detail ? { detail: record.detail } : {}),
      ...(record.failure ? { failure: record.failure } : {}),
    };
  });
}
