import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointRepairScript, pickResumeCheckpoint, type OutputDirEntry } from '@tunepipe/core';
import { readOutputDir, repairOutputDir } from '../src/checkpoint.ts';

const WHOLE = ['adapter_config.json', 'adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'trainer_state.json'];
const files = (names: readonly string[], size = 10) => names.map((name) => ({ name, size }));
const ckpt = (step: number, names: readonly string[] = WHOLE, size = 10): OutputDirEntry => ({ name: `checkpoint-${step}`, files: files(names, size) });

interface Scenario {
  readonly name: string;
  readonly entries: readonly OutputDirEntry[];
  readonly resumeFrom?: string;
  readonly moved: readonly string[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'empty output_dir', entries: [], moved: [] },
  { name: 'all checkpoints whole', entries: [ckpt(100), ckpt(200)], resumeFrom: 'checkpoint-200', moved: [] },
  {
    name: 'killed while saving: weights written, no trainer_state.json',
    entries: [ckpt(100), ckpt(200, ['adapter_config.json', 'adapter_model.safetensors'])],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'killed while writing the weights (zero bytes)',
    entries: [ckpt(100), { name: 'checkpoint-200', files: [...files(['trainer_state.json', 'optimizer.pt', 'scheduler.pt']), { name: 'adapter_model.safetensors', size: 0 }] }],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'optimizer state missing',
    entries: [ckpt(100), ckpt(200, ['adapter_model.safetensors', 'scheduler.pt', 'trainer_state.json'])],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'two broken in a row, numeric (not lexical) order',
    entries: [ckpt(90), ckpt(100, ['adapter_model.safetensors']), ckpt(1000, [])],
    resumeFrom: 'checkpoint-90',
    moved: ['checkpoint-1000', 'checkpoint-100'],
  },
  {
    name: 'full fine-tune weights count too',
    entries: [ckpt(50, ['model.safetensors.index.json', 'optimizer.pt', 'scheduler.pt', 'trainer_state.json'])],
    resumeFrom: 'checkpoint-50',
    moved: [],
  },
  {
    name: 'the only checkpoint is broken and a final save was cut short: start over',
    entries: [ckpt(100, ['adapter_model.safetensors']), { name: 'adapter_model.safetensors', size: 3 }, { name: 'trainer_log.jsonl', size: 50 }],
    moved: ['checkpoint-100', 'adapter_model.safetensors'],
  },
  {
    name: 'other folders are left alone',
    entries: [ckpt(100), { name: 'tmp-checkpoint-200', files: [] }, { name: 'checkpoint-x', files: [] }, { name: 'runs', files: [] }],
    resumeFrom: 'checkpoint-100',
    moved: [],
  },
];

test('pickResumeCheckpoint', async (t) => {
  for (const s of SCENARIOS) {
    await t.test(s.name, () => {
      const decision = pickResumeCheckpoint(s.entries);
      assert.equal(decision.resumeFrom, s.resumeFrom);
      assert.deepEqual(decision.moveAside.map((m) => m.name), s.moved);
    });
  }
  assert.match(pickResumeCheckpoint([ckpt(200, ['adapter_model.safetensors'])]).moveAside[0]!.reason, /missing trainer_state\.json, optimizer\.pt, scheduler\.pt/);
});

function materialise(dir: string, entries: readonly OutputDirEntry[]): void {
  mkdirSync(dir, { recursive: true });
  for (const e of entries) {
    if (e.files) {
      mkdirSync(join(dir, e.name));
      for (const f of e.files) writeFileSync(join(dir, e.name, f.name), 'x'.repeat(f.size));
    } else writeFileSync(join(dir, e.name), 'x'.repeat(e.size ?? 1));
  }
}

test('the in-pod shell snippet makes the same decisions (run with sh -eu on real folders)', async (t) => {
  const script = checkpointRepairScript('work');
  execFileSync('sh', ['-n'], { input: script });
  for (const s of SCENARIOS) {
    await t.test(s.name, () => {
      const root = mkdtempSync(join(tmpdir(), 'tunepipe-resume-'));
      try {
        const work = join(root, 'out');
        materialise(work, s.entries);
        const output = execFileSync('sh', ['-eu', '-c', `work='${work}'\n${script}\necho "exit ok"`], { encoding: 'utf8' });
        assert.match(output, /exit ok/);
        const moved = existsSync(`${work}.broken`) ? readdirSync(`${work}.broken`).map((n) => n.replace(/\.\d+$/, '')) : [];
        assert.deepEqual(moved.sort(), [...s.moved].sort());
        for (const name of s.moved) assert.ok(!existsSync(join(work, name)), `${name} is gone from output_dir`);
        if (s.resumeFrom) assert.match(output, new RegExp(`training resumes from ${s.resumeFrom}\\n`));
        else assert.doesNotMatch(output, /training resumes from/);
        // What the pure function says about the folder afterwards: nothing left to move.
        assert.deepEqual(pickResumeCheckpoint(readFolder(work)).moveAside, []);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

function readFolder(dir: string): OutputDirEntry[] {
  return readdirSync(dir, { withFileTypes: true }).map((d) =>
    d.isDirectory() ? { name: d.name, files: readdirSync(join(dir, d.name)).map((f) => ({ name: f, size: 1 })) } : { name: d.name, size: 1 },
  );
}

test('repairOutputDir reads sizes from disk and moves broken checkpoints beside output_dir', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tunepipe-resume-'));
  try {
    const out = join(root, 'out');
    materialise(out, [ckpt(10), ckpt(20, ['adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt', 'trainer_state.json'], 0)]);
    assert.deepEqual((await readOutputDir(out)).map((e) => e.name), ['checkpoint-10', 'checkpoint-20']);
    const decision = await repairOutputDir(out, () => 1_700_000_000_000);
    assert.equal(decision.resumeFrom, 'checkpoint-10');
    assert.deepEqual(readdirSync(out), ['checkpoint-10']);
    assert.deepEqual(readdirSync(`${out}.broken`), ['checkpoint-20.1700000000']);
    assert.deepEqual(await readOutputDir(join(root, 'missing')), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
