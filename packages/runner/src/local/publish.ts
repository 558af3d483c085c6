import { readdir, rm } from 'node:fs/promises';
import { completeFolder, publishFolder, readCompletionMarker, type CompletionMarker, type PublishMode } from '@tunepipe/core';

/** What publication needs of a LocalStagePlan. */
export interface PublishTarget {
  readonly mode: PublishMode;
  /** Local artifact folder. */
  readonly outDir: string;
  /** Where the tool wrote: `<outDir>.partial` in rename mode. */
  readonly workDir: string;
  readonly stage: { readonly name: string; readonly hash: string };
}

/** The stage's marker when its folder is complete for this hash; `undefined` otherwise. */
export function completedMarker(plan: Pick<PublishTarget, 'outDir' | 'stage'>): Promise<CompletionMarker | undefined> {
  return readCompletionMarker(plan.outDir, plan.stage.hash);
}

/**
 * Publishes a finished stage as its pod's wrapper would (core's artifact implementation): in
 * rename mode the work folder replaces the artifact folder; then SHA256SUMS and the marker.
 */
export async function publishLocalStage(plan: PublishTarget): Promise<CompletionMarker> {
  const identity = { stage: plan.stage.name, hash: plan.stage.hash };
  if (plan.mode === 'rename') {
    const wroteWork = (await readdir(plan.workDir).catch(() => [])).length > 0;
    const wroteOut = (await readdir(plan.outDir).catch(() => [])).length > 0;
    // A config that points the tool at the final folder instead of `.partial` must not lose its output.
    if (wroteWork || !wroteOut) return publishFolder(plan.workDir, plan.outDir, identity);
    await rm(plan.workDir, { recursive: true, force: true });
  }
  return completeFolder(plan.outDir, identity);
}
