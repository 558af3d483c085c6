// The example pipelines through the real compiler, deployed under the engine double: what Pulumi
// registers must be what `tunepipe synth` writes (core's renderManifests), object for object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { compile, convertInputSources, LABELS, renderManifests, sha256Hex, type CompileContext, type CompiledPipeline, type Pipeline } from '@tunepipe/core';
import { discoverPipelines, findRepoRoot } from '@tunepipe/workspace';
import { PULUMI_TYPES, PipelineDeployment, type KubeKind } from '../src/index.ts';
import { installEngineDouble, runProgram } from './engine-double.ts';

/** Dataset sources as the workspace's loader hands them over (identity = digest); no files ride in ConfigMaps here. */
function contextFor(pipeline: Pipeline, overrides: Partial<CompileContext> = {}): CompileContext {
  const names = pipeline.stages.flatMap((s) => (s.kind === 'convert' ? convertInputSources(s.options) : []));
  const datasets = Object.fromEntries(names.map((name) => [name, { name, digest: sha256Hex(`dataset ${name}`), descriptor: {}, files: [] }]));
  return { datasets, ...overrides };
}

async function deployed(compiled: CompiledPipeline, queueName?: string) {
  const engine = installEngineDouble();
  let deployment: PipelineDeployment | undefined;
  await runProgram(async () => {
    deployment = new PipelineDeployment(compiled.pipeline, { compiled, queueName });
    return {};
  });
  return { engine, deployment: deployment! };
}

// Every pipeline of the repo, imported as its workspace package (which is how `npm ci` links it).
const pipelines = await Promise.all(
  discoverPipelines(findRepoRoot(import.meta.dirname)).map(async (name) => ((await import(`@tunepipe/pipeline-${name}`)) as { default: Pipeline }).default),
);

test('the repository has pipelines to deploy', () => {
  assert.ok(pipelines.some((p) => p.name === 'llama3-fintech'), `found ${pipelines.map((p) => p.name).join(', ')}`);
});

for (const pipeline of pipelines) {
  test(`${pipeline.name}: the registered objects are exactly what synth writes`, async () => {
    const compiled = compile(pipeline, contextFor(pipeline, { queueName: 'tunepipe-gpu' }));
    const { engine } = await deployed(compiled, 'tunepipe-gpu');
    const written = renderManifests(compiled)
      .filter((f) => f.path !== 'kustomization.yaml')
      .map((f) => parse(f.content) as { kind: KubeKind; metadata: { name: string; namespace: string } })
      .map((o) => `${PULUMI_TYPES[o.kind]} ${o.metadata.namespace}/${o.metadata.name}`)
      .sort();
    const registered = engine
      .kube()
      .map((r) => `${r.type} ${(r.inputs['metadata'] as { namespace: string }).namespace}/${r.name}`)
      .sort();
    assert.deepEqual(registered, written);
    assert.equal(new Set(registered).size, compiled.objects.length);
  });

  test(`${pipeline.name}: dependsOn edges between workloads equal the pipeline graph`, async () => {
    const compiled = compile(pipeline, contextFor(pipeline));
    const { deployment } = await deployed(compiled);
    const stageOf = new Map(compiled.stages.map((s) => [`${s.workload.kind}/${s.workload.name}`, s.name]));
    const handed = deployment.registeredEdges
      .filter((e) => stageOf.has(e.from) && stageOf.has(e.to))
      .map((e) => `${stageOf.get(e.from)} -> ${stageOf.get(e.to)}`)
      .sort();
    const graph = compiled.stages.flatMap((s) => s.dependsOn.map((d) => `${s.name} -> ${d}`)).sort();
    assert.deepEqual(handed, graph);
    assert.ok(graph.length >= compiled.stages.length - 2, 'a real pipeline graph');
  });

  test(`${pipeline.name}: every workload waits longer than its stage is expected to run, and beyond 10 minutes`, async () => {
    const compiled = compile(pipeline, contextFor(pipeline));
    const { deployment } = await deployed(compiled);
    for (const stage of compiled.stages) {
      const timeout = deployment.stages[stage.name]!.timeoutSeconds;
      assert.ok(timeout > stage.expectedSeconds && timeout > 600, `${stage.name}: ${timeout}s for ${stage.expectedSeconds}s expected`);
    }
  });

  test(`${pipeline.name}: compiled twice, the same resource names; queue label only on GPU Jobs`, async () => {
    const first = compile(pipeline, contextFor(pipeline, { queueName: 'tunepipe-gpu' }));
    const second = compile(pipeline, contextFor(pipeline, { queueName: 'tunepipe-gpu' }));
    const a = await deployed(first, 'tunepipe-gpu');
    const b = await deployed(second, 'tunepipe-gpu');
    assert.deepEqual(b.engine.kube().map((r) => `${r.type} ${r.name}`), a.engine.kube().map((r) => `${r.type} ${r.name}`));
    const labelled = a.engine.kube().filter((r) => (r.inputs['metadata'] as { labels?: Record<string, string> }).labels?.[LABELS.kueueQueue]);
    const gpuJobs = first.stages.filter((s) => s.gpus > 0 && s.workload.kind === 'Job').map((s) => s.workload.name);
    assert.ok(gpuJobs.length > 0);
    assert.deepEqual(labelled.map((r) => r.name).sort(), [...gpuJobs].sort());
    assert.ok(labelled.every((r) => r.type === 'kubernetes:batch/v1:Job'));
  });
}
