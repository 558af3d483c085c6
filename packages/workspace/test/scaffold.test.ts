// `tunepipe new`'s files: what they are, that they compile as written, and that the lockfile knows
// the new workspace package exactly as npm records one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDescriptor } from '@tunepipe/convert';
import { planScaffold, registerWorkspacePackage, scaffoldIssues, scaffoldModel, synthPipeline, writeScaffold, type ScaffoldRequest } from '../src/index.ts';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * A small repository inside this one (so `@tunepipe/core` resolves from the generated pipeline):
 * one example pipeline, the example datasets, this repo's lockfile and an empty node_modules.
 */
function tempRepo(t: { after: (fn: () => void) => void }): string {
  const root = join(REPO, '.tunepipe', `scaffold-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'node_modules', '@tunepipe'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'r', workspaces: ['pipelines/*'] }));
  cpSync(join(REPO, 'package-lock.json'), join(root, 'package-lock.json'));
  for (const d of ['fintech', 'identity']) cpSync(join(REPO, 'datasets', d), join(root, 'datasets', d), { recursive: true });
  for (const f of ['pipeline.ts', 'package.json', 'tsconfig.json']) cpSync(join(REPO, 'pipelines/llama3-fintech', f), join(root, 'pipelines/llama3-fintech', f));
  return root;
}

function scaffold(root: string, request: ScaffoldRequest) {
  assert.deepEqual(scaffoldIssues(root, request), []);
  const plan = planScaffold(root, request);
  writeScaffold(root, plan);
  assert.equal(registerWorkspacePackage(root, request.name), true);
  return plan;
}

test('the template on a new dataset: files, a lockfile entry as npm writes one, and a pipeline that compiles clean', async (t) => {
  const root = tempRepo(t);
  const plan = scaffold(root, { name: 'my-bot', model: scaffoldModel('Qwen/Qwen2.5-7B-Instruct'), dataset: 'my-data' });
  assert.deepEqual(plan.files.map((f) => f.path), [
    'pipelines/my-bot/pipeline.ts',
    'datasets/my-data/dataset.yaml',
    'datasets/my-data/data.jsonl',
    'pipelines/my-bot/package.json',
    'pipelines/my-bot/tsconfig.json',
  ]);
  assert.deepEqual(plan.dataset, { name: 'my-data', created: true });

  // The descriptor is valid as written, comments and all.
  const descriptor = parseDescriptor(readFileSync(join(root, 'datasets/my-data/dataset.yaml'), 'utf8'), 'dataset.yaml');
  assert.ok(descriptor.ok, JSON.stringify(descriptor));

  const pkg = JSON.parse(readFileSync(join(root, 'pipelines/my-bot/package.json'), 'utf8')) as Record<string, unknown>;
  const example = JSON.parse(readFileSync(join(root, 'pipelines/llama3-fintech/package.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(pkg), Object.keys(example));
  assert.equal(pkg['name'], '@tunepipe/pipeline-my-bot');

  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  assert.deepEqual(lock.packages['pipelines/my-bot'], { name: '@tunepipe/pipeline-my-bot', version: '0.1.0', dependencies: { '@tunepipe/core': '*' } });
  assert.deepEqual(lock.packages['node_modules/@tunepipe/pipeline-my-bot'], { resolved: 'pipelines/my-bot', link: true });
  const keys = Object.keys(lock.packages).filter((k) => k !== '');
  assert.deepEqual(keys, [...keys].sort((a, b) => a.localeCompare(b, 'en')), 'npm keeps the packages sorted');
  assert.equal(readlinkSync(join(root, 'node_modules/@tunepipe/pipeline-my-bot')), '../../pipelines/my-bot');

  const { compiled, warnings } = await synthPipeline(root, 'my-bot');
  assert.deepEqual(compiled.stages.map((s) => s.name), ['fetch-model', 'convert', 'sft', 'merge', 'eval-base', 'eval-adapter', 'serve']);
  assert.deepEqual(warnings.filter((w) => w.code.startsWith('secret.') || w.code === 'sft.no-checkpoint'), []);
});

test('a catalogue model by id, gated: no architecture to type, the hub token from the platform Secret', async (t) => {
  const root = tempRepo(t);
  scaffold(root, { name: 'llama-bot', model: scaffoldModel('meta-llama/Llama-3.1-8B-Instruct') });
  const source = readFileSync(join(root, 'pipelines/llama-bot/pipeline.ts'), 'utf8');
  assert.doesNotMatch(source, /architecture:/);
  assert.match(source, /template: 'llama3'/);
  assert.match(source, /token: \{ secretName: PLATFORM_SECRETS\.hubTokens\.secretName, key: PLATFORM_SECRETS\.hubTokens\.huggingface \}/);
  assert.match(source, /sources: \['fintech'\]/, 'without --dataset, the example source');
  const { warnings } = await synthPipeline(root, 'llama-bot');
  assert.deepEqual(warnings.filter((w) => w.code.startsWith('secret.')), []);
});

test('a model tunepipe does not know: TODOs that check() names, never an internal error', async (t) => {
  const root = tempRepo(t);
  scaffold(root, { name: 'odd', model: scaffoldModel('acme/odd-7b') });
  await assert.rejects(synthPipeline(root, 'odd'), (error: { issues?: { code: string; path: string }[] }) => {
    assert.deepEqual(error.issues?.map((i) => i.path).sort(), ['stages.fetch-model.architecture', 'stages.fetch-model.template']);
    return true;
  });
});

test('--from copies an example under the new name, --model replacing its base model', async (t) => {
  const root = tempRepo(t);
  scaffold(root, { name: 'fin2', from: 'llama3-fintech', model: scaffoldModel('Qwen/Qwen2.5-7B-Instruct') });
  const source = readFileSync(join(root, 'pipelines/fin2/pipeline.ts'), 'utf8');
  assert.match(source, /\{ name: 'fin2',/);
  assert.match(source, /servedModelName: 'fin2'/);
  assert.match(source, /id: 'Qwen\/Qwen2\.5-7B-Instruct',\n\s+revision: 'a09a35458c702b33eeacc393d103063234e8bc28',\n\s+template: 'qwen',\n\s+\}\);/);
  assert.match(source, /^import \{ definePipeline, PLATFORM_SECRETS \} from '@tunepipe\/core';/, 'LLAMA3_8B is no longer used');
  const { compiled } = await synthPipeline(root, 'fin2');
  assert.ok(compiled.stages.some((s) => s.kind === 'quantize'));
});

test('every problem with a request at once, and nothing written', (t) => {
  const root = tempRepo(t);
  const issues = scaffoldIssues(root, { name: 'Llama3_Fintech', from: 'llama3-fintch', dataset: 'My Data' });
  assert.deepEqual(issues.map((i) => i.code), ['new.name', 'new.from', 'new.from-dataset', 'new.dataset']);
  assert.match(issues[1]!.fix!, /did you mean 'llama3-fintech'\?/);
  assert.deepEqual(scaffoldIssues(root, { name: 'llama3-fintech' }).map((i) => i.code), ['new.exists']);
  assert.equal(scaffoldIssues(root, { name: 'x'.repeat(42) })[0]?.code, 'new.name');
  assert.deepEqual(scaffoldIssues(root, { name: 'x'.repeat(41) }), []);
  assert.equal(existsSync(join(root, 'pipelines', 'Llama3_Fintech')), false);
});

test('scaffolded names never collide with files: writeScaffold refuses to overwrite', (t) => {
  const root = tempRepo(t);
  const plan = planScaffold(root, { name: 'twice', dataset: 'twice-data' });
  writeScaffold(root, plan);
  assert.throws(() => writeScaffold(root, plan), /EEXIST/);
});
