import { CheckError, objectKey, sharedObjects, type CompiledPipeline, type CompiledStage, type Issue, type KubeObject } from '@tunepipe/core';

/** One file of rendered output, its path relative to the output folder. */
export interface GitopsFile {
  readonly path: string;
  readonly content: string;
}

/** Problems in what was asked of the GitOps renderers or the git helpers; printed like compile's. */
export class GitopsError extends CheckError {
  constructor(subject: string, issues: readonly Issue[]) {
    super(subject, issues);
    this.name = 'GitopsError';
  }
}

export { objectKey, sharedObjects };

/** A stage that runs to completion: a Job, or a training gang compiled as a JobSet. */
export const isBatch = (stage: CompiledStage): boolean => stage.workload.kind === 'Job' || stage.workload.kind === 'JobSet';

/**
 * Depth of every stage in the stage graph: 0 for stages without upstream stages, else one more
 * than the deepest upstream stage. One pass: compiled stages are in topological order.
 */
export function stageDepths(compiled: CompiledPipeline): Map<string, number> {
  const depths = new Map<string, number>();
  for (const stage of compiled.stages) depths.set(stage.name, Math.max(-1, ...stage.dependsOn.map((d) => depths.get(d)!)) + 1);
  return depths;
}

/**
 * Why a Job must not carry `ttlSecondsAfterFinished`: the Job controller deletes the finished Job,
 * the reconciler sees it missing from the cluster and creates it again, and the stage runs again.
 */
const TTL_FIX =
  'remove ttlSecondsAfterFinished: Argo CD and Flux re-create a Job that disappears after it finished, which runs the stage again';
const SUSPEND_FIX =
  'leave spec.suspend unset: Kueue suspends and resumes Jobs itself, and a reconciler re-applying suspend: true would suspend an admitted Job again';

/**
 * What a reconciler cannot be handed even though compile() accepts it. The graph (valid, in
 * topological order) and object identity (unique, named) are compile()'s guarantees, not checked again.
 */
export function compiledIssues(compiled: CompiledPipeline): Issue[] {
  const issues: Issue[] = [];
  const visit = (object: KubeObject, path: string): void => {
    if (object.kind !== 'Job' || !('spec' in object) || !object.spec) return;
    const spec = object.spec as { ttlSecondsAfterFinished?: number; suspend?: boolean };
    const name = object.metadata?.name;
    if (spec.ttlSecondsAfterFinished !== undefined) {
      issues.push({ code: 'gitops.job-ttl', path: `${path}.spec.ttlSecondsAfterFinished`, value: spec.ttlSecondsAfterFinished, message: `Job ${name} is deleted after it finishes`, fix: TTL_FIX });
    }
    if (spec.suspend === true) {
      issues.push({ code: 'gitops.job-suspend', path: `${path}.spec.suspend`, value: true, message: `Job ${name} is committed suspended`, fix: SUSPEND_FIX });
    }
  };
  compiled.stages.forEach((stage, i) => stage.objects.forEach((o, j) => visit(o, `${compiled.pipeline}.stages[${i}](${stage.name}).objects[${j}]`)));
  sharedObjects(compiled).forEach((o, j) => visit(o, `${compiled.pipeline}.objects[shared ${j}]`));
  return issues;
}

export function assertRenderable(compiled: CompiledPipeline): void {
  const issues = compiledIssues(compiled);
  if (issues.length > 0) throw new GitopsError(`GitOps output of pipeline ${compiled.pipeline}`, issues);
}
