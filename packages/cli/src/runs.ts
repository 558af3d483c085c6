import type { CompiledPipeline } from '@tunepipe/core';
import type { StageRunRecord } from '@tunepipe/eval';
import { localStatus, readRunRecord, type StageState } from '@tunepipe/runner';

function reportStatus(state: StageState): StageRunRecord['status'] {
  switch (state.status) {
    case 'done':
    case 'cached':
    case 'failed':
    case 'running':
    case 'queued':
      return state.status;
    case 'starting':
    case 'retrying':
      return 'running';
    default:
      return 'pending';
  }
}

/**
 * What the report's timeline needs from local runs: status, start, end and failure reason of
 * every stage that has a run record (the others the report reads from their artifact folders).
 */
export function localRunRecords(compiled: CompiledPipeline, artifactsDir: string): StageRunRecord[] {
  const states = localStatus(compiled, artifactsDir);
  return compiled.stages.flatMap((stage, i): StageRunRecord[] => {
    const state = states[i]!;
    if (!readRunRecord(artifactsDir, stage)) return [];
    const iso = (ms: number) => new Date(ms).toISOString();
    return [
      {
        stage: stage.name,
        status: reportStatus(state),
        ...(state.startedAt !== undefined ? { startedAt: iso(state.startedAt) } : {}),
        ...(state.finishedAt !== undefined ? { finishedAt: iso(state.finishedAt) } : {}),
        ...(state.failure ? { reason: state.failure.reason } : {}),
      },
    ];
  });
}
