// Golden manifests and Kubernetes OpenAPI validation of every object the repo's pipelines emit.
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

test('every folder under pipelines/ is a discovered pipeline and a workspace package the lockfile knows', () => {
  assert.ok(pipelines.includes('llama3-fintech'), `found ${pipelines.join(', ')}`);
  const folders = readdirSync(join(root, 'pipelines'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  // A folder without pipeline.ts would be skipped by every command without a word.
  assert.deepEqual(folders, pipelines, 'each pipelines/<name> needs a pipeline.ts');
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { name?: string; resolved?: string; link?: boolean }> };
  for (const name of pipelines) {
    const pkg = JSON.parse(readFileSync(join(root, 'pipelines', name, 'package.json'), 'utf8')) as { name: string };
    assert.equal(pkg.name, `@tunepipe/pipeline-${name}`, `pipelines/${name}/package.json`);
    // Without these two entries `npm ci` stops: "package.json and package-lock.json are not in sync".
    assert.equal(lock.packages[`pipelines/${name}`]?.name, pkg.name, `package-lock.json has no pipelines/${name} (run npm install)`);
    assert.deepEqual(lock.packages[`node_modules/${pkg.name}`], { resolved: `pipelines/${name}`, link: true });
  }
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
