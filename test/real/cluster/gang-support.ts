// The multi-node training stage the real gang tests run, as the compiler emits it: issue 20's
// pipelines/llama3-70b-lora pinned to 2 × 8 H100.
import assert from 'node:assert/strict';
import { compile, type Pipeline } from '@tunepipe/core';
import { objectKey, type CompiledPipeline, type CompiledStage } from '@tunepipe/core/compiled';
import { loadCompileContext } from '../../../packages/workspace/src/context.ts';
import { loadPipeline } from '../../../packages/workspace/src/repo.ts';
import { GANG } from '../../../packages/runner/test/scenarios/cluster-scenarios.ts';
import type { KubeObject } from '../support/cluster.ts';
import { repoRoot } from './cli.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface GangPipeline {
  /** The gang stage and the stages it reads from; nothing downstream. */
  readonly pipeline: CompiledPipeline;
  readonly stage: CompiledStage;
  /** The gang's Job (an Indexed Job, parallelism = nodes); for a JobSet, its replicated Job with the JobSet under `jobSet`. */
  readonly job: Json;
  /** Where it came from, for the test's log line. */
  readonly source: string;
}

/** The stage's Job, or its JobSet's one replicated Job template. */
const workloadOf = (stage: CompiledStage): Json | undefined => {
  const jobSet = stage.objects.find((o) => o.kind === 'JobSet') as Json | undefined;
  if (jobSet) return { metadata: jobSet['metadata'], spec: jobSet['spec'].replicatedJobs[0].template.spec, jobSet };
  return stage.objects.find((o) => o.kind === 'Job') as Json | undefined;
};
const isGangStage = (stage: CompiledStage) => (workloadOf(stage)?.['spec']?.parallelism ?? 1) > 1;

/** The stage and its upstream stages, with the pipeline's shared objects. */
function upTo(compiled: CompiledPipeline, stage: string): CompiledPipeline {
  const keep = new Set<string>();
  const visit = (name: string) => {
    if (keep.has(name)) return;
    keep.add(name);
    for (const dep of compiled.stages.find((s) => s.name === name)?.dependsOn ?? []) visit(dep);
  };
  visit(stage);
  const stages = compiled.stages.filter((s) => keep.has(s.name));
  const dropped = new Set(compiled.stages.filter((s) => !keep.has(s.name)).flatMap((s) => s.objects.map(objectKey)));
  return { ...compiled, stages, objects: compiled.objects.filter((o) => !dropped.has(objectKey(o))) };
}

/**
 * pipelines/llama3-70b-lora with its sft stage pinned to GANG.nodes nodes (the planner's own
 * choice for it is 1 × 8, one pod): the example's own definition with one resource changed,
 * compiled with the repository's datasets for `namespace`, up to sft (merge and serve need no gang).
 */
export async function gangPipeline(namespace: string, queueName: string, options: { readonly multiNode?: 'indexed-job' | 'jobset' } = {}): Promise<GangPipeline> {
  const overrides = { namespace, queueName, ...(options.multiNode ? { multiNode: options.multiNode } : {}) };
  const example = await loadPipeline(repoRoot, 'llama3-70b-lora');
  const pinned: Pipeline = {
    ...example,
    name: 'llama3-70b-gang',
    stages: example.stages.map((s) => (s.kind === 'sft' ? { ...s, options: { ...s.options, resources: { ...s.options.resources, nodes: GANG.nodes } } } : s)),
  };
  const compiled = compile(pinned, await loadCompileContext(repoRoot, pinned, overrides));
  const stage = compiled.stages.find((s) => s.kind === 'sft')!;
  assert.ok(isGangStage(stage), `the pinned example's sft is no gang: ${JSON.stringify(stage.layout)}`);
  return {
    pipeline: upTo(compiled, stage.name),
    stage,
    job: workloadOf(stage)!,
    source: `pipelines/llama3-70b-lora with its sft pinned to ${GANG.nodes}×${GANG.gpusPerNode} (the planner's own layout for it is one node), compiled`,
  };
}

/** The stage's objects as the runner applies them: in the namespace, in order. */
export function stageObjects(stage: CompiledStage, namespace: string): KubeObject[] {
  return stage.objects.map((o) => ({ ...structuredClone(o), metadata: { ...o.metadata, namespace } }) as unknown as KubeObject);
}
