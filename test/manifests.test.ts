// Golden manifests and Kubernetes OpenAPI validation of every object the example pipelines emit.
// UPDATE_GOLDEN=1 rewrites pipelines/<name>/dist/ (the committed manifests GitOps applies).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import type { KubeObject } from '@tunepipe/core';
import { renderPlain, writeFiles } from '@tunepipe/gitops';
import { discoverPipelines } from '../packages/workspace/src/repo.ts';
import { synthPipeline } from '../packages/workspace/src/synth.ts';
import { distDir } from '../packages/cli/src/synth.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const pipelines = discoverPipelines(root);

test('the example pipelines exist', () => {
  assert.deepEqual(pipelines, ['llama3-fintech', 'qwen-support']);
});

const validators: Record<string, (o: KubeObject) => void> = {
  ConfigMap: (o) => new ConfigMap(o as never).validate(),
  Service: (o) => new Service(o as never).validate(),
  Job: (o) => new Job(o as never).validate(),
  Deployment: (o) => new Deployment(o as never).validate(),
};

for (const name of pipelines) {
  test(`${name}: every emitted object is valid against the Kubernetes OpenAPI schema`, async () => {
    const { compiled } = await synthPipeline(root, name);
    assert.ok(compiled.objects.length > 0);
    for (const object of compiled.objects) {
      const validate = validators[object.kind ?? ''];
      assert.ok(validate, `no validator for ${object.kind}`);
      assert.doesNotThrow(() => validate(object), `${object.kind}/${object.metadata?.name}`);
    }
  });

  test(`${name}: manifests match the committed golden files in pipelines/${name}/dist`, async () => {
    const { compiled } = await synthPipeline(root, name);
    const files = renderPlain(compiled);
    const dir = distDir(root, name);
    if (process.env['UPDATE_GOLDEN'] === '1') writeFiles(dir, files);
    const committed = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(committed, files.map((f) => f.path).sort(), 'the same files');
    for (const file of files) {
      assert.equal(readFileSync(join(dir, file.path), 'utf8'), file.content, `${file.path} differs (UPDATE_GOLDEN=1 npm test rewrites it)`);
      for (const doc of parseAllDocuments(file.content)) assert.deepEqual(doc.errors, [], file.path);
    }
  });
}
