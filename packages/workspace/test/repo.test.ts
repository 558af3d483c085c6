// Finding the repository, its pipelines and its tunepipe.json: every mistake is a WorkspaceError
// with the issues to print, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkspaceError, findRepoRoot, loadPipeline, loadRepoConfig, selectPipelines } from '../src/index.ts';

async function repo(t: { after: (fn: () => Promise<void>) => void }, pipelines: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tunepipe-workspace-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'r', workspaces: ['pipelines/*'] }));
  await mkdir(join(root, 'pipelines', 'empty-folder'), { recursive: true });
  for (const [name, source] of Object.entries(pipelines)) {
    await mkdir(join(root, 'pipelines', name), { recursive: true });
    await writeFile(join(root, 'pipelines', name, 'pipeline.ts'), source);
  }
  return root;
}

function workspaceError(check: (e: WorkspaceError) => void): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof WorkspaceError, String(e));
    check(e);
    return true;
  };
}

test('pipelines are the folders with a pipeline.ts; unknown names are one error with a suggestion each', async (t) => {
  const root = await repo(t, { alpha: 'export default 1;', beta: 'export default 1;' });
  assert.equal(findRepoRoot(join(root, 'pipelines', 'alpha')), root);
  assert.deepEqual(selectPipelines(root, []), ['alpha', 'beta']);
  assert.throws(() => selectPipelines(root, ['alpah', 'gamma']), workspaceError((e) => {
    assert.equal(e.message, 'unknown pipelines');
    assert.deepEqual(e.issues.map((i) => [i.path, i.fix]), [['pipelines/alpah', "did you mean 'alpha'?"], ['pipelines/gamma', 'one of: alpha, beta']]);
  }));
});

test('a pipeline.ts must default-export the pipeline named after its folder', async (t) => {
  const root = await repo(t, { bad: 'export default 3;', other: "export default { name: 'elsewhere', stages: [] };" });
  await assert.rejects(loadPipeline(root, 'bad'), workspaceError((e) => assert.match(e.message, /must `export default definePipeline\(\{ name: 'bad' \}/)));
  await assert.rejects(loadPipeline(root, 'other'), workspaceError((e) => assert.deepEqual(e.issues.map((i) => [i.code, i.value]), [['workspace.pipeline-name', 'elsewhere']])));
});

test('tunepipe.json: defaults when absent, every invalid key reported at once', async (t) => {
  const root = await repo(t, {});
  assert.deepEqual(loadRepoConfig(root), { namespace: 'tunepipe', cloud: 'aws', gitops: { flavor: 'plain', revision: 'main' } });
  await writeFile(join(root, 'tunepipe.json'), JSON.stringify({ namespace: 'Bad_NS', cloud: 'azure', gitops: { flavr: 'flux' } }));
  assert.throws(() => loadRepoConfig(root), workspaceError((e) => assert.deepEqual(
    e.issues.map((i) => [i.code, i.path, i.fix]),
    [
      ['config.repo.format', 'tunepipe.json:namespace', 'see the README section "Repository config"'],
      ['config.repo.choice', 'tunepipe.json:cloud', 'see the README section "Repository config"'],
      ['config.repo.unknown-key', 'tunepipe.json:gitops.flavr', "did you mean 'flavor'?"],
    ],
  )));
  // The queue's long form also says what its ClusterQueue admits; `queue` stays the queue's name.
  await writeFile(join(root, 'tunepipe.json'), JSON.stringify({ queue: { name: 'tunepipe-gpu', gpus: { 'h100-80gb': 16 } }, multiNode: 'jobset' }));
  assert.deepEqual(loadRepoConfig(root), { namespace: 'tunepipe', cloud: 'aws', gitops: { flavor: 'plain', revision: 'main' }, multiNode: 'jobset', queue: 'tunepipe-gpu', queueGpus: { 'h100-80gb': 16 } });
  await writeFile(join(root, 'tunepipe.json'), JSON.stringify({ queue: { name: 'q', gpus: { a100: -1 } }, multiNode: 'mpi' }));
  assert.throws(() => loadRepoConfig(root), workspaceError((e) => assert.deepEqual(e.issues.map((i) => i.path), ['tunepipe.json:queue.gpus.a100', 'tunepipe.json:multiNode'])));
  await writeFile(join(root, 'tunepipe.json'), '{nope');
  assert.throws(() => loadRepoConfig(root), workspaceError((e) => assert.match(e.message, /^tunepipe.json is not JSON/)));
});

test("tunepipe.json's queue quota and multi-node engine reach the compile context", async (t) => {
  const { loadCompileContext } = await import('../src/context.ts');
  const { definePipeline } = await import('@tunepipe/core');
  const root = await repo(t, {});
  const pipeline = definePipeline({ name: 'p' }, () => {});
  assert.deepEqual(Object.keys(await loadCompileContext(root, pipeline)).filter((k) => k === 'queueGpus' || k === 'multiNode'), []);
  await writeFile(join(root, 'tunepipe.json'), JSON.stringify({ queue: { name: 'gpu', gpus: { 'h100-80gb': 16 } }, multiNode: 'jobset' }));
  const context = await loadCompileContext(root, pipeline);
  assert.deepEqual(context.queueGpus, { 'h100-80gb': 16 });
  assert.equal(context.multiNode, 'jobset');
});
