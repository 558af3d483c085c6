// pipeline.ts is compiled by esbuild and imported as JavaScript, with no TypeScript loader in the
// process: what it imports from @tunepipe/core is this process's core, its local files come along,
// and a file that does not compile is a WorkspaceError naming each place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as core from '@tunepipe/core';
import { WorkspaceError, loadPipeline } from '../src/index.ts';

async function repo(t: { after: (fn: () => Promise<void>) => void }, files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tunepipe-pipeline-module-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'r', workspaces: ['pipelines/*'] }));
  for (const [path, source] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), source);
  }
  return root;
}

const PIPELINE = `
import { definePipeline, QWEN2_5_7B } from '@tunepipe/core';
import { MODEL_ID } from './model.ts';
import type { Pipeline } from '@tunepipe/core';

const typed: number = 1;
export const where = { url: import.meta.url, dirname: import.meta.dirname, typed };
export default definePipeline({ name: 'small' }, (p) => {
  p.baseModel({ hub: 'huggingface', id: MODEL_ID, revision: 'main', template: 'qwen', architecture: QWEN2_5_7B });
}) satisfies Pipeline;
`;

test("a pipeline with a local import loads against this process's core, and knows where it lives", async (t) => {
  const root = await repo(t, {
    'pipelines/small/pipeline.ts': PIPELINE,
    'pipelines/small/model.ts': "export const MODEL_ID: string = 'Qwen/Qwen2.5-7B-Instruct';\n",
  });
  const pipeline = await loadPipeline(root, 'small');
  assert.equal(pipeline.name, 'small');
  assert.deepEqual(pipeline.stages.map((s) => s.kind), ['fetch-model']);
  // The architecture object is core's own, not a copy made by a second instance of core.
  const options = pipeline.stages[0]!.options as { architecture?: unknown; id?: string };
  assert.equal(options.architecture, core.QWEN2_5_7B);
  assert.equal(options.id, 'Qwen/Qwen2.5-7B-Instruct');
  // Loaded once per version of the file, as import() would.
  assert.equal(await loadPipeline(root, 'small'), pipeline);
});

test('import.meta inside pipeline.ts names pipeline.ts, not the compiled copy', async (t) => {
  const root = await repo(t, {
    'pipelines/meta/pipeline.ts': `
import { definePipeline } from '@tunepipe/core';
export default definePipeline({ name: 'meta', description: import.meta.dirname + '|' + import.meta.url }, () => {});
`,
  });
  const pipeline = await loadPipeline(root, 'meta');
  assert.equal(pipeline.description, `${join(root, 'pipelines', 'meta')}|file://${join(root, 'pipelines', 'meta', 'pipeline.ts')}`);
});

test('a pipeline.ts that does not compile is a WorkspaceError with every error and its place', async (t) => {
  const root = await repo(t, {
    'pipelines/broken/pipeline.ts': "import { definePipeline } from '@tunepipe/core';\nimport { nothing } from './missing.ts';\nexport default definePipeline({ name: 'broken' }, (p) => {\n  const x = ;\n});\n",
  });
  await assert.rejects(loadPipeline(root, 'broken'), (e: unknown) => {
    assert.ok(e instanceof WorkspaceError, String(e));
    assert.equal(e.message, 'pipelines/broken/pipeline.ts does not compile');
    assert.ok(e.issues.length >= 1);
    assert.ok(e.issues.every((i) => i.code === 'workspace.pipeline-compile' && /^pipelines\/broken\/pipeline\.ts:\d+:\d+$/.test(i.path)), JSON.stringify(e.issues));
    assert.ok(e.issues.some((i) => i.path === 'pipelines/broken/pipeline.ts:4:13'), JSON.stringify(e.issues));
    return true;
  });
});

test('an edited pipeline.ts is compiled again in the same process', async (t) => {
  const root = await repo(t, { 'pipelines/edit/pipeline.ts': "import { definePipeline } from '@tunepipe/core';\nexport default definePipeline({ name: 'edit', description: 'one' }, () => {});\n" });
  assert.equal((await loadPipeline(root, 'edit')).description, 'one');
  await writeFile(join(root, 'pipelines/edit/pipeline.ts'), "import { definePipeline } from '@tunepipe/core';\nexport default definePipeline({ name: 'edit', description: 'the second version' }, () => {});\n");
  assert.equal((await loadPipeline(root, 'edit')).description, 'the second version');
});

test("an error thrown by the pipeline's own code names its place in pipeline.ts, not a stack trace", async (t) => {
  const root = await repo(t, {
    'pipelines/throws/pipeline.ts': "import { definePipeline } from '@tunepipe/core';\nconst settings: { rank?: number } | undefined = undefined;\nexport default definePipeline({ name: 'throws' }, () => {\n  void settings!.rank;\n});\n",
  });
  await assert.rejects(loadPipeline(root, 'throws'), (e: unknown) => {
    assert.ok(e instanceof WorkspaceError, String(e));
    assert.equal(e.message, 'pipelines/throws/pipeline.ts failed while defining the pipeline');
    assert.deepEqual(e.issues.map((i) => [i.code, i.path]), [['workspace.pipeline-threw', 'pipelines/throws/pipeline.ts:4:18']]);
    assert.match(e.issues[0]!.message, /^TypeError: Cannot read properties of undefined \(reading 'rank'\)$/);
    return true;
  });
});
