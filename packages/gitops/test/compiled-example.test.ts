// The renderers and the diff on what the real compiler makes of the example pipelines. Dataset
// contents are stand-ins (fixed digests): reading dataset files is the CLI's job, not this package's.
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { Application } from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1';
import { Kustomization } from '@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1';
import { GitRepository } from '@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1';
import { compile, convertInputSources, sha256Hex, type CompileContext, type CompiledPipeline, type DatasetSourceInput, type Pipeline } from '@tunepipe/core';
import { diffPipelineSets, renderArgoCd, renderFlux, stageDepths, synthAtRef, type PlanDiff } from '../src/index.ts';
import { TempRepo } from './temp-repo.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Every pipeline of the repo, as the workspace discovers them (a folder under pipelines/ with a pipeline.ts). */
const EXAMPLES = readdirSync(join(REPO_ROOT, 'pipelines'), { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(REPO_ROOT, 'pipelines', e.name, 'pipeline.ts')))
  .map((e) => e.name)
  .sort();

test('the repository has pipelines to render', () => {
  assert.ok(EXAMPLES.includes('llama3-fintech'), `found ${EXAMPLES.join(', ')}`);
});

function standInContext(pipeline: Pipeline): CompileContext {
  const datasets: Record<string, DatasetSourceInput> = {};
  for (const stage of pipeline.stages) {
    if (stage.kind !== 'convert') continue;
    for (const name of convertInputSources(stage.options)) {
      datasets[name] = { name, digest: sha256Hex(`stand-in ${name}`), descriptor: { format: 'alpaca' }, files: [{ path: 'data.json', sha256: sha256Hex(name), size: 1000, gzipBase64: gzipSync(`[{"instruction":"${name}","output":"x"}]`).toString('base64') }] };
    }
  }
  return { datasets, queueName: 'gpu-queue' };
}

async function compileExample(root: string, name: string): Promise<CompiledPipeline> {
  const module = (await import(pathToFileURL(join(root, 'pipelines', name, 'pipeline.ts')).href)) as { default: Pipeline };
  return compile(module.default, standInContext(module.default));
}

for (const name of EXAMPLES) {
  test(`${name}: Argo CD and Flux output of the compiled example`, async () => {
    const compiled = await compileExample(REPO_ROOT, name);
    const source = { repoUrl: 'https://github.com/acme/ml-pipelines.git', revision: 'main', path: `pipelines/${name}/dist` };
    const depths = stageDepths(compiled);

    const argo = renderArgoCd(compiled, source);
    new Application(parse(argo.find((f) => f.path === 'argocd/application.yaml')!.content) as never).validate();
    const appFiles = argo.filter((f) => f.path.startsWith('app/') && f.path !== 'app/kustomization.yaml');
    assert.equal(appFiles.length, compiled.objects.length);
    for (const f of appFiles) {
      const object = parse(f.content) as { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; kind: string };
      const stage = compiled.stages.find((s) => s.name === object.metadata.labels['tunepipe.dev/stage'])!;
      assert.equal(object.metadata.annotations['argocd.argoproj.io/sync-wave'], String(depths.get(stage.name)));
      for (const dep of stage.dependsOn) assert.ok(depths.get(stage.name)! > depths.get(dep)!);
      assert.equal('ttlSecondsAfterFinished' in ((object as { spec?: object }).spec ?? {}), false);
    }

    const flux = renderFlux(compiled, source);
    for (const f of flux.filter((x) => x.path.startsWith('flux/') && x.path !== 'flux/kustomization.yaml')) {
      const doc = parse(f.content) as { kind: string; metadata: { name: string }; spec: { dependsOn?: { name: string }[] } };
      if (doc.kind === 'GitRepository') {
        new GitRepository(doc as never).validate();
        continue;
      }
      new Kustomization(doc as never).validate();
      const stage = compiled.stages.find((s) => `${name}-${s.name}` === doc.metadata.name)!;
      assert.deepEqual((doc.spec.dependsOn ?? []).map((d) => d.name).sort(), stage.dependsOn.map((d) => `${name}-${d}`).sort());
    }
  });
}

test('Argo CD keeps server-side apply on data ConfigMaps next to their protection', async () => {
  const compiled = await compileExample(REPO_ROOT, 'llama3-fintech');
  const argo = renderArgoCd(compiled, { repoUrl: 'https://github.com/acme/ml-pipelines.git', revision: 'main', path: 'pipelines/llama3-fintech/dist' });
  const docs = argo.filter((f) => f.path.startsWith('app/') && f.path !== 'app/kustomization.yaml').map((f) => parse(f.content) as { kind: string; metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> } });
  const data = docs.filter((d) => d.kind === 'ConfigMap' && d.metadata.labels['app.kubernetes.io/component'] === 'dataset');
  assert.ok(data.length >= 2, 'the example has a data ConfigMap per dataset source');
  for (const d of data) {
    const options = d.metadata.annotations['argocd.argoproj.io/sync-options']!.split(',');
    // Client-side apply would copy the object into the 256 KiB last-applied annotation.
    assert.deepEqual(options.sort(), ['Delete=false', 'Prune=false', 'ServerSideApply=true'], d.metadata.name);
  }
  // A changed pod template under an unchanged name is re-created instead of failing as immutable.
  for (const job of docs.filter((d) => d.kind === 'Job')) {
    assert.ok(job.metadata.annotations['argocd.argoproj.io/sync-options']!.split(',').includes('Force=true'), job.metadata.name);
  }
});

/** A repo holding a copy of the llama3-fintech source, with the monorepo's packages installed. */
function exampleRepo(): TempRepo {
  const repo = new TempRepo();
  repo.write('package.json', '{ "private": true, "type": "module" }\n');
  repo.write('.gitignore', 'node_modules\n');
  repo.write('pipelines/llama3-fintech/pipeline.ts', readFileSync(join(REPO_ROOT, 'pipelines/llama3-fintech/pipeline.ts'), 'utf8'));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(repo.root, 'node_modules'));
  repo.commit('llama3-fintech as in the seed');
  return repo;
}

async function planAfterEdit(edit: (source: string) => string): Promise<PlanDiff> {
  const repo = exampleRepo();
  try {
    const file = 'pipelines/llama3-fintech/pipeline.ts';
    const before = readFileSync(join(repo.root, file), 'utf8');
    const after = edit(before);
    assert.notEqual(after, before, 'the edit applies');
    repo.write(file, after);
    const synth = async (root: string) => [await compileExample(root, 'llama3-fintech')];
    const base = await synthAtRef(repo.root, 'HEAD', synth);
    return diffPipelineSets(base, await synth(repo.root));
  } finally {
    repo.remove();
  }
}

const running = (plan: PlanDiff): string[] => plan.pipelines[0]!.stages.filter((s) => s.action === 'run').map((s) => s.stage);

test('llama3-fintech through git: a learning-rate change re-runs sft, merge, quantize, the adapter evaluation and serve', async () => {
  const plan = await planAfterEdit((s) => s.replace('learning_rate: 5e-5', 'learning_rate: 1e-4'));
  assert.deepEqual(running(plan), ['sft', 'merge', 'quantize', 'eval-adapter', 'serve']);
  assert.deepEqual(plan.pipelines[0]!.stages.filter((s) => s.action === 'cached').map((s) => s.stage), ['fetch-model', 'convert', 'eval-base']);
  const sft = plan.pipelines[0]!.stages.find((s) => s.stage === 'sft')!;
  assert.deepEqual(sft.reasons.map((r) => r.text), ['learning_rate: 0.00005 → 0.0001']);
  const expected = plan.pipelines[0]!.stages
    .filter((s) => s.action === 'run' && s.workload === 'Job')
    .reduce((sum, s) => sum + (s.gpus * s.expectedSeconds) / 3600, 0);
  assert.ok(plan.gpuHours > 0);
  assert.equal(plan.gpuHours, expected);
});

test('llama3-fintech through git: a serve-only change re-runs no GPU stage, 0 GPU-hours', async () => {
  const plan = await planAfterEdit((s) => s.replace('maxNumSeqs: 64', 'maxNumSeqs: 32'));
  assert.deepEqual(running(plan), ['serve']);
  assert.equal(plan.gpuHours, 0);
  // vLLM flags are diffed by name, not by position in the argument list.
  assert.deepEqual(plan.pipelines[0]!.stages.find((s) => s.stage === 'serve')!.reasons.map((r) => r.text), ['args[--max-num-seqs]: "64" → "32"']);
});
