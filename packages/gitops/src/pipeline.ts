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

export const isBatch = (stage: CompiledStage): boolean => stage.workload.kind === 'Job';

/**
 * Depth of every stage in the stage graph: 0 for stages without upstream stages, else one more
 * than the deepest upstream stage. Assumes a graph that `graphIssues` found no fault with.
 */
export function stageDepths(compiled: CompiledPipeline): Map<string, number> {
  const byName = new Map(compiled.stages.map((s) => [s.name, s]));
  const depths = new Map<string, number>();
  const visit = (name: string): number => {
    const known = depths.get(name);
    if (known !== undefined) return known;
    const stage = byName.get(name);
    const depth = stage && stage.dependsOn.length > 0 ? 1 + Math.max(...stage.dependsOn.map(visit)) : 0;
    depths.set(name, depth);
    return depth;
  };
  for (const stage of compiled.stages) visit(stage.name);
  return depths;
}

function graphIssues(compiled: CompiledPipeline): Issue[] {
  const issues: Issue[] = [];
  const names = compiled.stages.map((s) => s.name);
  const seen = new Set<string>();
  compiled.stages.forEach((stage, i) => {
    const path = `${compiled.pipeline}.stages[${i}]`;
    if (seen.has(stage.name)) {
      issues.push({ code: 'gitops.stage-duplicate', path: `${path}.name`, value: stage.name, message: 'two stages have this name', fix: 'give every stage a unique name' });
    }
    for (const dep of stage.dependsOn) {
      if (!names.includes(dep)) {
        issues.push({ code: 'gitops.stage-unknown-dependency', path: `${path}.dependsOn`, value: dep, message: `stage ${stage.name} depends on a stage that is not in the pipeline`, fix: `one of: ${names.join(', ')}` });
      } else if (!seen.has(dep)) {
        // Stages are in topological order, so an upstream stage is always listed earlier.
        issues.push({ code: 'gitops.stage-order', path: `${path}.dependsOn`, value: dep, message: `stage ${stage.name} depends on ${dep}, which is not listed before it (a cycle, or stages out of order)`, fix: 'list stages in topological order without cycles' });
      }
    }
    seen.add(stage.name);
  });
  return issues;
}

/**
 * Why a Job must not carry `ttlSecondsAfterFinished`: the Job controller deletes the finished Job,
 * the reconciler sees it missing from the cluster and creates it again, and the stage runs again.
 */
const TTL_FIX =
  'remove ttlSecondsAfterFinished: Argo CD and Flux re-create a Job that disappears after it finished, which runs the stage again';
const SUSPEND_FIX =
  'leave spec.suspend unset: Kueue suspends and resumes Jobs itself, and a reconciler re-applying suspend: true would suspend an admitted Job again';

function objectIssues(compiled: CompiledPipeline): Issue[] {
  const issues: Issue[] = [];
  const keys = new Map<string, string>();
  const visit = (object: KubeObject, path: string): void => {
    if (!object.kind || !object.apiVersion || !object.metadata?.name) {
      issues.push({ code: 'gitops.object-identity', path, value: { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata?.name }, message: 'object without apiVersion, kind or metadata.name', fix: 'every emitted object needs apiVersion, kind and metadata.name' });
      return;
    }
    const key = objectKey(object);
    const first = keys.get(key);
    if (first !== undefined && first !== path) {
      issues.push({ code: 'gitops.object-duplicate', path, value: key, message: `the same object is also emitted at ${first}`, fix: 'emit each object once' });
    } else keys.set(key, path);
    if (object.kind === 'Job' && 'spec' in object && object.spec) {
      const spec = object.spec as { ttlSecondsAfterFinished?: number; suspend?: boolean };
      if (spec.ttlSecondsAfterFinished !== undefined) {
        issues.push({ code: 'gitops.job-ttl', path: `${path}.spec.ttlSecondsAfterFinished`, value: spec.ttlSecondsAfterFinished, message: `Job ${object.metadata.name} is deleted after it finishes`, fix: TTL_FIX });
      }
      if (spec.suspend === true) {
        issues.push({ code: 'gitops.job-suspend', path: `${path}.spec.suspend`, value: true, message: `Job ${object.metadata.name} is committed suspended`, fix: SUSPEND_FIX });
      }
    }
  };
  compiled.stages.forEach((stage, i) => stage.objects.forEach((o, j) => visit(o, `${compiled.pipeline}.stages[${i}](${stage.name}).objects[${j}]`)));
  sharedObjects(compiled).forEach((o, j) => visit(o, `${compiled.pipeline}.objects[shared ${j}]`));
  return issues;
}

/** Every reason the compiled pipeline cannot be handed to a reconciler as it is. */
export function compiledIssues(compiled: CompiledPipeline): Issue[] {
  return [...graphIssues(compiled), ...objectIssues(compiled)];
}

export function assertRenderable(compiled: CompiledPipeline): void {
  const issues = compiledIssues(compiled);
  if (issues.length > 0) throw new GitopsError(`GitOps output of pipeline ${compiled.pipeline}`, issues);
}
