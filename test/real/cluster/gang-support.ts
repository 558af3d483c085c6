// The multi-node training stage the real gang tests run, as the compiler emits it: issue 20's
// pipelines/llama3-70b-lora when the planner makes it a 2-node gang, else the same 70B LoRA
// pinned to 2 × 8 H100.
import { compile, definePipeline, PLATFORM_SECRETS } from '@tunepipe/core';
import { objectKey, type CompiledPipeline, type CompiledStage } from '@tunepipe/core/compiled';
import { loadCompileContext } from '../../../packages/workspace/src/context.ts';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { GANG, withGang } from '../../../packages/runner/test/scenarios/cluster-scenarios.ts';
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
 * The 70B LoRA of pipelines/llama3-70b-lora pinned to 2 nodes × 8 H100 (the planner's own choice
 * for it is 1 × 8, one pod, no gang): same model, data and arguments, compiled by the compiler
 * with the repository's datasets for `namespace`. Only the stages up to sft: merge and serve need
 * no gang.
 */
function pinnedGangDefinition() {
  return definePipeline({ name: 'llama3-70b-gang', description: 'pipelines/llama3-70b-lora on 2 × 8 H100' }, (p) => {
    const base = p.baseModel({
      hub: 'huggingface',
      id: 'meta-llama/Llama-3.1-70B-Instruct',
      revision: 'main',
      template: 'llama3',
      token: { secretName: PLATFORM_SECRETS.hubTokens.secretName, key: PLATFORM_SECRETS.hubTokens.huggingface },
    });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024, split: { validation: 0.1, test: 0.1 } });
    p.sft({
      model: base,
      train: data.train,
      eval: data.validation,
      resources: { gpuType: GANG.gpuType, gpusPerNode: GANG.gpusPerNode, nodes: GANG.nodes },
      args: { cutoff_len: 1024, learning_rate: 1e-4, num_train_epochs: 3, per_device_train_batch_size: 1, gradient_accumulation_steps: 8, save_steps: 0.25, bf16: true, lora_rank: 16, lora_alpha: 32, lora_target: 'all' },
    });
  });
}

/**
 * A 2×8 H100 gang compiled for `namespace`: pipelines/llama3-70b-lora's sft when the planner
 * makes it a 2-node gang, else the same 70B LoRA pinned to 2 × 8 (both by the compiler). With
 * `fallbackToSeed`, a compiler that emits no gang (before issue 20) gives llama3-fintech's sft
 * made a gang by withGang, the shape the compiler was asked for.
 */
export async function gangPipeline(namespace: string, queueName: string, options: { readonly multiNode?: 'indexed-job' | 'jobset' } = {}): Promise<GangPipeline> {
  const overrides = { namespace, queueName, ...(options.multiNode ? { multiNode: options.multiNode } : {}) };
  const example = await synthPipeline(repoRoot, 'llama3-70b-lora', overrides);
  const exampleGang = example.compiled.stages.find((s) => isGangStage(s) && workloadOf(s)!['spec'] !== undefined);
  if (exampleGang) return { pipeline: upTo(example.compiled, exampleGang.name), stage: exampleGang, job: workloadOf(exampleGang)!, source: 'pipelines/llama3-70b-lora (compiled)' };
  const layout = example.compiled.stages.find((s) => s.kind === 'sft')?.layout;
  const definition = pinnedGangDefinition();
  const context = await loadCompileContext(repoRoot, definition, overrides);
  const compiled = compile(definition, context);
  const stage = compiled.stages.find((s) => s.kind === 'sft')!;
  if (!isGangStage(stage)) {
    const { compiled: seed } = await synthPipeline(repoRoot, 'llama3-fintech', { namespace, queueName });
    const pipeline = upTo(withGang(seed, namespace), 'sft');
    const sft = pipeline.stages.find((s) => s.name === 'sft')!;
    return { pipeline, stage: sft, job: workloadOf(sft)!, source: 'llama3-fintech sft made a gang by the test (the compiler emitted none)' };
  }
  return {
    pipeline: upTo(compiled, stage.name),
    stage,
    job: workloadOf(stage)!,
    source: `the 70B LoRA of pipelines/llama3-70b-lora pinned to ${GANG.nodes}×${GANG.gpusPerNode}, compiled (the example itself plans ${layout ? `${layout.nodes}×${layout.gpusPerNode} ${layout.strategy}` : 'no layout'})`,
  };
}

/** The stage's objects as the runner applies them: in the namespace, in order. */
export function stageObjects(stage: CompiledStage, namespace: string): KubeObject[] {
  return stage.objects.map((o) => ({ ...structuredClone(o), metadata: { ...o.metadata, namespace } }) as unknown as KubeObject);
}
