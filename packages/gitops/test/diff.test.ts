import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  diffPipelines,
  diffPipelineSets,
  GitopsError,
  PLAN_COMMENT_MARKER,
  renderPlanMarkdown,
  renderPlanTable,
  summaryLine,
  synthAtRef,
  type PlanDiff,
  type StageDiff,
} from '../src/index.ts';
import { fixtureCompile, fixtureSynth, seedSource, SOURCE_FILE, type FixtureSource } from './fixtures.ts';
import { TempRepo } from './temp-repo.ts';

const byAction = (plan: PlanDiff, action: StageDiff['action']): string[] =>
  plan.pipelines.flatMap((p) => p.stages.filter((s) => s.action === action).map((s) => s.stage));

const stageOf = (plan: PlanDiff, name: string): StageDiff => {
  const found = plan.pipelines.flatMap((p) => p.stages).find((s) => s.stage === name);
  assert.ok(found, `stage ${name} in the plan`);
  return found;
};

/** Commits `before` as the base, writes `after` to the working tree, and diffs base ref against it. */
async function planOf(before: FixtureSource, after: FixtureSource): Promise<PlanDiff> {
  const repo = new TempRepo();
  try {
    repo.write(SOURCE_FILE, `${JSON.stringify(before, null, 2)}\n`);
    repo.commit('base');
    repo.write(SOURCE_FILE, `${JSON.stringify(after, null, 2)}\n`);
    repo.commit('change');
    const base = await synthAtRef(repo.root, 'HEAD~1', fixtureSynth);
    const head = fixtureSynth(repo.root);
    return diffPipelineSets(base, head);
  } finally {
    repo.remove();
  }
}

function edit(mutate: (s: { -readonly [K in keyof FixtureSource]: FixtureSource[K] }) => void): FixtureSource {
  const source = structuredClone(seedSource()) as { -readonly [K in keyof FixtureSource]: FixtureSource[K] };
  mutate(source);
  return source;
}

test('git history: a serve-only edit re-runs no GPU stage and spends 0 GPU-hours', async () => {
  const after = edit((s) => {
    (s.stages.serve!.config as { args: Record<string, unknown> }).args['max-model-len'] = 8192;
  });
  const plan = await planOf(seedSource(), after);
  assert.deepEqual(byAction(plan, 'run'), ['serve']);
  assert.deepEqual(byAction(plan, 'cached'), ['fetch-model', 'convert', 'sft', 'merge', 'quantize', 'evaluate']);
  assert.equal(plan.gpuHours, 0);
  assert.deepEqual(
    stageOf(plan, 'serve').reasons.map((r) => r.text),
    ['args.max-model-len: 4096 → 8192'],
  );
  assert.equal(summaryLine(plan.counts, plan.gpuHours), '1 stage will run, 6 cached, 0.00 GPU-hours');
});

test('git history: editing one dataset row re-runs convert and everything after it', async () => {
  const after = edit((s) => {
    (s as unknown as { dataset: Record<string, string>[] }).dataset[1]!['output'] = 'The periodic interest payment of a bond.';
  });
  const plan = await planOf(seedSource(), after);
  assert.deepEqual(byAction(plan, 'run'), ['convert', 'sft', 'merge', 'quantize', 'evaluate', 'serve']);
  assert.deepEqual(byAction(plan, 'cached'), ['fetch-model']);
  const convert = stageOf(plan, 'convert');
  assert.equal(convert.reasons.length, 1);
  assert.equal(convert.reasons[0]!.kind, 'input');
  assert.equal(convert.reasons[0]!.path, 'dataset:demo');
  assert.match(convert.reasons[0]!.text, /^dataset:demo: [0-9a-f]{12} → [0-9a-f]{12}$/);
  // Downstream configs embed the renamed artifact folders; that is the upstream reason, not a config change.
  assert.deepEqual(stageOf(plan, 'sft').reasons.map((r) => r.text), ['upstream convert changed']);
  assert.deepEqual(stageOf(plan, 'serve').reasons.map((r) => r.text), ['upstream quantize changed', 'upstream evaluate changed']);
  // sft 1 GPU × 1530 s + quantize 1 × 900 s + evaluate 1 × 600 s; serving is not counted.
  assert.equal(plan.gpuHours.toFixed(4), ((1530 + 900 + 600) / 3600).toFixed(4));
  assert.equal(summaryLine(plan.counts, plan.gpuHours), '6 stages will run, 1 cached, 0.84 GPU-hours');
});

test('git history: a learning-rate change re-runs sft, merge, quantize, evaluate and serve', async () => {
  const after = edit((s) => {
    (s.stages.sft!.config as Record<string, unknown>)['learning_rate'] = 1e-4;
  });
  const plan = await planOf(seedSource(), after);
  assert.deepEqual(byAction(plan, 'run'), ['sft', 'merge', 'quantize', 'evaluate', 'serve']);
  assert.deepEqual(byAction(plan, 'cached'), ['fetch-model', 'convert']);
  const sft = stageOf(plan, 'sft');
  assert.deepEqual(sft.reasons.map((r) => [r.kind, r.path, r.before, r.after]), [['config', 'learning_rate', 5e-5, 1e-4]]);
  assert.equal(sft.reasons[0]!.text, 'learning_rate: 0.00005 → 0.0001');
  assert.deepEqual(stageOf(plan, 'merge').reasons.map((r) => r.text), ['upstream sft changed']);
  assert.equal(stageOf(plan, 'sft').gpuHours, 1530 / 3600);
  assert.equal(stageOf(plan, 'merge').gpuHours, 0, 'merge runs on CPU');
  assert.equal(stageOf(plan, 'serve').gpuHours, 0, 'serving is capacity, not a one-off spend');
});

test('synthAtRef reads the base revision, not the working tree, and removes its temporary tree', async () => {
  const repo = new TempRepo();
  try {
    repo.write(SOURCE_FILE, JSON.stringify(seedSource()));
    repo.commit('base');
    writeFileSync(join(repo.root, SOURCE_FILE), JSON.stringify(edit((s) => (s.name = 'renamed'))));
    let tree = '';
    const base = await synthAtRef(repo.root, 'main', (root) => {
      tree = root;
      assert.notEqual(root, repo.root);
      return fixtureSynth(root);
    });
    assert.equal(base[0]!.pipeline, 'demo');
    assert.equal(fixtureSynth(repo.root)[0]!.pipeline, 'renamed');
    assert.equal(existsSync(tree), false, 'temporary tree removed');
    // The repository itself is untouched: no worktree was registered.
    assert.equal(repo.git('worktree', 'list').trim().split('\n').length, 1);
  } finally {
    repo.remove();
  }
});

test('synthAtRef removes its tree when synth throws, and reports an unknown ref as a GitopsError', async () => {
  const repo = new TempRepo();
  try {
    repo.write(SOURCE_FILE, JSON.stringify(seedSource()));
    repo.commit('base');
    let tree = '';
    await assert.rejects(
      synthAtRef(repo.root, 'HEAD', (root) => {
        tree = root;
        throw new Error('synth failed');
      }),
      /synth failed/,
    );
    assert.equal(existsSync(tree), false);
    await assert.rejects(synthAtRef(repo.root, 'origin/main', fixtureSynth), (error: unknown) => {
      assert.ok(error instanceof GitopsError);
      assert.equal(error.issues[0]!.value, 'origin/main');
      assert.match(error.issues[0]!.fix ?? '', /fetch-depth: 0/);
      return true;
    });
    await assert.rejects(synthAtRef(repo.root, '--output=/tmp/x', fixtureSynth), GitopsError);
  } finally {
    repo.remove();
  }
});

test('added and removed stages and pipelines', () => {
  const base = fixtureCompile(seedSource());
  const head = fixtureCompile(
    edit((s) => {
      const stages = { ...s.stages } as Record<string, unknown>;
      delete stages['evaluate'];
      stages['serve'] = { ...s.stages.serve!, dependsOn: ['quantize'] };
      stages['eval-2'] = { kind: 'evaluate', dependsOn: ['quantize'], gpus: 2, expectedSeconds: 1800 };
      s.stages = stages as FixtureSource['stages'];
    }),
  );
  const diff = diffPipelines(base, head);
  assert.equal(diff.status, 'changed');
  const actions = Object.fromEntries(diff.stages.map((s) => [s.stage, s.action]));
  assert.deepEqual(actions, {
    'fetch-model': 'cached',
    convert: 'cached',
    sft: 'cached',
    merge: 'cached',
    quantize: 'cached',
    serve: 'run',
    'eval-2': 'added',
    evaluate: 'removed',
  });
  assert.equal(diff.stages.at(-1)!.stage, 'evaluate', 'removed stages come last');
  assert.deepEqual(diff.stages.find((s) => s.stage === 'serve')!.reasons.map((r) => r.text), ['upstream stages -evaluate']);
  assert.equal(diff.gpuHours, 1, 'the new evaluate: 2 GPUs × 0.5 h');
  assert.deepEqual(diff.counts, { run: 2, cached: 5, added: 1, removed: 1 });

  const created = diffPipelines(undefined, base);
  assert.equal(created.status, 'added');
  assert.ok(created.stages.every((s) => s.action === 'added'));
  assert.equal(created.gpuHours.toFixed(4), ((1530 + 900 + 600) / 3600).toFixed(4));
  const dropped = diffPipelines(base, undefined);
  assert.equal(dropped.status, 'removed');
  assert.ok(dropped.stages.every((s) => s.action === 'removed' && s.gpuHours === 0));
  assert.throws(() => diffPipelines(undefined, undefined));
});

test('image changes and changes nobody can explain are reported, never dropped', () => {
  const base = fixtureCompile(seedSource());
  const head = fixtureCompile(edit((s) => ((s.stages.merge as { image?: string }).image = 'hiyouga/llamafactory:0.9.5')));
  const merge = diffPipelines(base, head).stages.find((s) => s.stage === 'merge')!;
  assert.deepEqual(merge.reasons.map((r) => r.text), ['image hiyouga/llamafactory:0.9.4 → hiyouga/llamafactory:0.9.5']);

  // Serve's config does not embed its own hash, so only the hash differs.
  const rehashed = { ...base, stages: base.stages.map((s) => (s.name === 'serve' ? { ...s, hash: 'f'.repeat(64) } : s)) };
  const diff = diffPipelines(base, rehashed).stages.find((s) => s.stage === 'serve')!;
  assert.equal(diff.action, 'run');
  assert.equal(diff.reasons[0]!.kind, 'unexplained');
});

test('terminal table and Markdown comment', async () => {
  const after = edit((s) => {
    (s.stages.sft!.config as Record<string, unknown>)['lora_target'] = 'q_proj|v_proj';
  });
  const plan = diffPipelineSets([fixtureCompile(seedSource())], [fixtureCompile(after)]);
  const table = renderPlanTable(plan);
  assert.match(table, /^demo: 5 stages will run, 2 cached, 0\.84 GPU-hours$/m);
  assert.match(table, /roll out/);
  assert.match(table, /lora_target: \(unset\) → "q_proj\|v_proj"/);
  assert.match(table.trimEnd().split('\n').at(-1)!, /^total: 5 stages will run, 2 cached, 0\.84 GPU-hours$/);

  const md = renderPlanMarkdown(plan);
  assert.ok(md.startsWith(`${PLAN_COMMENT_MARKER}\n`));
  assert.match(md, /^\*\*5 stages will run, 2 cached, 0\.84 GPU-hours\*\*$/m);
  const sftRow = md.split('\n').find((l) => l.startsWith('| `sft` |'))!;
  assert.ok(sftRow, 'a row for sft');
  assert.match(sftRow, /\| \*\*run\*\* \| `[0-9a-f]{8}` → `[0-9a-f]{8}` \| 1 × a100-80gb \| 0\.42 \|/);
  assert.match(sftRow, /q_proj\\\|v_proj/, 'pipes in values are escaped');
  // Every table row has the header's 6 columns (escaped pipes do not split cells).
  for (const row of md.split('\n').filter((l) => l.startsWith('| `'))) {
    assert.equal(row.replace(/\\\|/g, '').split('|').length - 2, 6, row);
  }
  const serveRow = md.split('\n').find((l) => l.startsWith('| `serve` |'))!;
  assert.match(serveRow, /\*\*roll out\*\*.*\| serving \|/);

  const unchanged = renderPlanMarkdown(diffPipelineSets([fixtureCompile(seedSource())], [fixtureCompile(seedSource())]));
  assert.match(unchanged, /### demo: no changes, 7 cached/);
  assert.doesNotMatch(unchanged, /\| stage \|/);
});
