// The Pulumi entry point (index.ts) as `pulumi up` runs it, against this repository's pipelines:
// the registered objects must be what `tunepipe synth` writes for the same pipeline and cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { renderPlain } from '@tunepipe/gitops';
import { synthPipeline } from '@tunepipe/workspace';
import program from '../index.ts';
import { PULUMI_TYPES, type KubeKind } from '../src/index.ts';
import { installEngineDouble, runFailingProgram, runProgram } from './engine-double.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLUSTER = 'acme/tunepipe-cluster/prod';

test('pulumi up registers exactly what tunepipe synth writes for the same cluster', async () => {
  const engine = installEngineDouble({
    config: { 'tunepipe:pipelines': '["llama3-fintech","qwen-support"]', 'tunepipe:clusterStack': CLUSTER },
    stacks: { [CLUSTER]: { outputs: { namespace: 'ml', artifactsPvc: 'tunepipe-artifacts', localQueue: 'tunepipe-gpu', kubeconfig: 'apiVersion: v1' }, secret: ['kubeconfig'] } },
  });
  await runProgram(program);

  const written: string[] = [];
  for (const name of ['llama3-fintech', 'qwen-support']) {
    const { compiled } = await synthPipeline(repoRoot, name, { namespace: 'ml', artifactsClaim: 'tunepipe-artifacts', queueName: 'tunepipe-gpu' });
    for (const file of renderPlain(compiled).filter((f) => f.path !== 'kustomization.yaml')) {
      const object = parse(file.content) as { kind: KubeKind; metadata: { name: string; namespace: string } };
      written.push(`${PULUMI_TYPES[object.kind]} ${object.metadata.namespace}/${object.metadata.name}`);
    }
  }
  const registered = engine.kube().map((r) => `${r.type} ${(r.inputs['metadata'] as { namespace: string }).namespace}/${r.name}`);
  assert.deepEqual(registered.sort(), written.sort());
});

test('an unknown pipeline name stops pulumi up with a suggestion and deploys nothing', async () => {
  const engine = installEngineDouble({ config: { 'tunepipe:pipelines': '["llama3-fintec"]' } });
  const error = await runFailingProgram(program);
  assert.ok(pulumi.RunError.isInstance(error));
  assert.match(error.message, /pipelines\/llama3-fintec/);
  assert.match(error.message, /did you mean 'llama3-fintech'\?/);
  assert.deepEqual(engine.kube(), []);
});
