import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const WORKFLOW = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), '.github/workflows/pipelines.yml');

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}

test('the pull-request workflow: pinned actions, full history, tests, staleness check and the plan comment', () => {
  const workflow = parse(readFileSync(WORKFLOW, 'utf8')) as { on: Record<string, unknown>; permissions: Record<string, string>; jobs: Record<string, { steps: Step[] }> };
  assert.ok('pull_request' in workflow.on);
  assert.equal(workflow.permissions['pull-requests'], 'write');
  const steps = Object.values(workflow.jobs).flatMap((j) => j.steps);
  for (const step of steps.filter((s) => s.uses)) assert.match(step.uses!, /@v\d+\.\d+\.\d+$/, `${step.uses} is pinned to a full version`);

  const checkout = steps.find((s) => s.uses?.startsWith('actions/checkout@'));
  assert.equal(checkout?.with?.['fetch-depth'], 0);
  const node = steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
  assert.equal(node?.with?.['node-version'], 20);
  assert.equal(node?.with?.['cache'], 'npm');

  const runs = steps.map((s) => s.run ?? '');
  const index = (pattern: RegExp): number => runs.findIndex((r) => pattern.test(r));
  assert.ok(index(/^npm ci$/) >= 0);
  assert.ok(index(/^npm test$/) > index(/^npm ci$/));
  assert.ok(index(/^npm run tunepipe -- synth --check$/) > index(/^npm test$/));
  const plan = steps[index(/tunepipe -- diff/)]!;
  assert.match(plan.run!, /npm run --silent tunepipe -- diff --base "origin\/\$BASE_REF" --format markdown > plan\.md/);
  // The branch name reaches the shell through the environment, never pasted into the script.
  assert.equal(plan.env?.['BASE_REF'], '${{ github.base_ref }}');
  const comment = steps.find((s) => s.uses?.startsWith('marocchino/sticky-pull-request-comment@'));
  assert.equal(comment?.with?.['path'], 'plan.md');
  assert.ok(steps.indexOf(comment!) > steps.indexOf(plan));
});
