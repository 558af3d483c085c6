import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointRepairScript, MOVED_ASIDE_LOG, pickResumeCheckpoint, type OutputDirEntry, type SealCheck } from '@tunepipe/core';
import { readOutputDir, repairOutputDir, sealCheckpoints } from '../src/checkpoint.ts';

const WHOLE = ['adapter_config.json', 'adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'trainer_state.json'];
const files = (names: readonly string[], size = 10) => names.map((name) => ({ name, size }));

type Seal = 'verified' | 'unsealed' | 'broken' | 'garbage-state';
interface Checkpoint extends OutputDirEntry {
  readonly sealAs?: Seal;
}
/** A checkpoint; whole ones are sealed unless told otherwise. */
const ckpt = (step: number, names: readonly string[] = WHOLE, sealAs: Seal = 'verified', size = 10): Checkpoint => ({ name: `checkpoint-${step}`, files: files(names, size), sealAs });

interface Scenario {
  readonly name: string;
  readonly entries: readonly Checkpoint[];
  readonly resumeFrom?: string;
  readonly moved: readonly string[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'empty output_dir', entries: [], moved: [] },
  { name: 'all checkpoints whole and sealed', entries: [ckpt(100), ckpt(200)], resumeFrom: 'checkpoint-200', moved: [] },
  {
    name: 'killed while saving: weights written, no trainer_state.json',
    entries: [ckpt(100), ckpt(200, ['adapter_config.json', 'adapter_model.safetensors'], 'unsealed')],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'killed while writing the weights (zero bytes)',
    entries: [ckpt(100), { name: 'checkpoint-200', files: [...files(['trainer_state.json', 'optimizer.pt', 'scheduler.pt']), { name: 'adapter_model.safetensors', size: 0 }], sealAs: 'unsealed' }],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'optimizer state missing',
    entries: [ckpt(100), ckpt(200, ['adapter_model.safetensors', 'scheduler.pt', 'trainer_state.json'], 'unsealed')],
    resumeFrom: 'checkpoint-100',
    moved: ['checkpoint-200'],
  },
  {
    name: 'two broken in a row, numeric (not lexical) order',
    entries: [ckpt(90), ckpt(100, ['adapter_model.safetensors'], 'unsealed'), ckpt(1000, [], 'unsealed')],
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
    entries: [ckpt(100, ['adapter_model.safetensors'], 'unsealed'), { name: 'adapter_model.safetensors', size: 3 }, { name: 'trainer_log.jsonl', size: 50 }],
    moved: ['checkpoint-100', 'adapter_model.safetensors'],
  },
  {
    name: 'other folders are left alone',
    entries: [ckpt(100), { name: 'tmp-checkpoint-200', files: [] }, { name: 'checkpoint-x', files: [] }, { name: 'runs', files: [] }],
    resumeFrom: 'checkpoint-100',
    moved: [],
  },
  {
    name: 'the newest is whole but was never sealed (killed before its save was confirmed)',
    entries: [ckpt(10), ckpt(20, WHOLE, 'unsealed')],
    resumeFrom: 'checkpoint-10',
    moved: ['checkpoint-20'],
  },
  {
    name: 'the newest is sealed but its bytes changed since',
    entries: [ckpt(10), ckpt(20, WHOLE, 'broken')],
    resumeFrom: 'checkpoint-10',
    moved: ['checkpoint-20'],
  },
  {
    name: 'a garbage trainer_state.json that was never sealed',
    entries: [ckpt(10), ckpt(20, WHOLE, 'garbage-state')],
    resumeFrom: 'checkpoint-10',
    moved: ['checkpoint-20'],
  },
  {
    name: 'older unsealed checkpoints stay when a newer one verifies',
    entries: [ckpt(10, WHOLE, 'unsealed'), ckpt(20)],
    resumeFrom: 'checkpoint-20',
    moved: [],
  },
  {
    name: 'nothing sealed: start over, stray weights moved too',
    entries: [ckpt(10, WHOLE, 'unsealed'), ckpt(20, WHOLE, 'broken'), { name: 'adapter_model.safetensors', size: 3 }],
    moved: ['checkpoint-20', 'checkpoint-10', 'adapter_model.safetensors'],
  },
];

/** The seal verdict the pure function gets, as the Node side would compute it. */
function sealOf(entry: Checkpoint): SealCheck | undefined {
  switch (entry.sealAs) {
    case 'verified':
      return { state: 'verified' };
    case 'broken':
      return { state: 'broken', problem: 'optimizer.pt does not match its SHA256SUMS entry' };
    case undefined:
      return undefined;
    default:
      return { state: 'unsealed' };
  }
}

test('pickResumeCheckpoint', async (t) => {
  for (const s of SCENARIOS) {
    await t.test(s.name, () => {
      const decision = pickResumeCheckpoint(s.entries.map((e) => ({ ...e, ...(sealOf(e) ? { seal: sealOf(e)! } : {}) })));
      assert.equal(decision.resumeFrom, s.resumeFrom);
      assert.deepEqual(decision.moveAside.map((m) => m.name), s.moved);
    });
  }
  assert.match(pickResumeCheckpoint([ckpt(200, ['adapter_model.safetensors'])]).moveAside[0]!.reason, /is incomplete \(missing trainer_state\.json, optimizer\.pt, scheduler\.pt\)/);
  assert.match(pickResumeCheckpoint([ckpt(200)]).moveAside[0]!.reason, /was never sealed/, 'no seal checked: not trusted');
});

/** Writes the scenario as real folders: seals are real SHA256SUMS, broken ones changed after sealing. */
function materialise(dir: string, entries: readonly Checkpoint[]): void {
  mkdirSync(dir, { recursive: true });
  for (const e of entries) {
    if (!e.files) {
      writeFileSync(join(dir, e.name), 'x'.repeat(e.size ?? 1));
      continue;
    }
    const at = join(dir, e.name);
    mkdirSync(at);
    const step = Number(e.name.replace('checkpoint-', ''));
    for (const f of e.files) {
      const content = f.name === 'trainer_state.json' && f.size > 0 ? JSON.stringify({ global_step: Number.isNaN(step) ? 0 : step }).padEnd(f.size) : 'x'.repeat(f.size);
      writeFileSync(join(at, f.name), content);
    }
    if (e.sealAs === 'garbage-state') writeFileSync(join(at, 'trainer_state.json'), '{"global_st');
    if (e.sealAs === 'verified' || e.sealAs === 'broken') {
      const sums = [...e.files].map((f) => f.name).sort().map((f) => `${createHash('sha256').update(readFileSync(join(at, f))).digest('hex')}  ${f}\n`).join('');
      writeFileSync(join(at, 'SHA256SUMS'), sums);
    }
    if (e.sealAs === 'broken') writeFileSync(join(at, 'optimizer.pt'), 'changed after the seal');
  }
}

const movedNames = (work: string) =>
  existsSync(`${work}.broken`) ? readdirSync(`${work}.broken`).filter((n) => n !== MOVED_ASIDE_LOG).map((n) => n.replace(/\.\d+$/, '')).sort() : [];

test('the in-pod shell snippet makes the same decisions (run with sh -eu on real folders)', async (t) => {
  const script = checkpointRepairScript('work');
  execFileSync('sh', ['-n'], { input: script });
  for (const s of SCENARIOS) {
    await t.test(s.name, () => {
      const root = mkdtempSync(join(tmpdir(), 'tunepipe-resume-'));
      try {
        const work = join(root, 'out put');
        materialise(work, s.entries);
        const output = execFileSync('sh', ['-eu', '-c', `work="$0"\n${script}\necho "exit ok"`, work], { encoding: 'utf8' });
        assert.match(output, /exit ok/);
        assert.deepEqual(movedNames(work), [...s.moved].sort());
        for (const name of s.moved) assert.ok(!existsSync(join(work, name)), `${name} is gone from output_dir`);
        if (s.resumeFrom) assert.match(output, new RegExp(`training resumes from ${s.resumeFrom}\\n`));
        else assert.doesNotMatch(output, /training resumes from/);
        if (s.moved.length > 0) assert.equal(readFileSync(join(`${work}.broken`, MOVED_ASIDE_LOG), 'utf8').trim().split('\n').length, s.moved.length);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

test('repairOutputDir makes the same decisions on the same real folders, checking seals from disk', async (t) => {
  for (const s of SCENARIOS) {
    await t.test(s.name, async () => {
      const root = mkdtempSync(join(tmpdir(), 'tunepipe-resume-'));
      try {
        const work = join(root, 'out');
        materialise(work, s.entries);
        const decision = await repairOutputDir(work, () => 1_700_000_000_000);
        assert.equal(decision.resumeFrom, s.resumeFrom);
        assert.deepEqual(movedNames(work), [...s.moved].sort());
        if (s.name.includes('bytes changed')) assert.match(decision.moveAside[0]!.reason, /fails its integrity check \(optimizer\.pt does not match its SHA256SUMS entry\)/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

test('repairOutputDir moves broken checkpoints beside output_dir, with a note, never deleting them', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tunepipe-resume-'));
  try {
    const out = join(root, 'out');
    materialise(out, [ckpt(10), ckpt(20, ['adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt', 'trainer_state.json'], 'unsealed', 0)]);
    assert.deepEqual((await readOutputDir(out)).map((e) => e.name), ['checkpoint-10', 'checkpoint-20']);
    const decision = await repairOutputDir(out, () => 1_700_000_000_000);
    assert.equal(decision.resumeFrom, 'checkpoint-10');
    assert.deepEqual(readdirSync(out), ['checkpoint-10']);
    assert.deepEqual(readdirSync(`${out}.broken`).sort(), ['checkpoint-20.1700000000', MOVED_ASIDE_LOG]);
    assert.equal(readFileSync(join(`${out}.broken`, MOVED_ASIDE_LOG), 'utf8'), '1700000000 checkpoint-20 -> checkpoint-20.1700000000: is incomplete (missing trainer_state.json, adapter/model weights, optimizer.pt, scheduler.pt)\n');
    assert.deepEqual(await readOutputDir(join(root, 'missing')), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('sealCheckpoints seals what the trainer has finished, and only that', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tunepipe-seal-'));
  try {
    const out = join(root, 'out');
    const old = (path: string, seconds: number) => utimesSync(path, new Date(Date.now() - seconds * 1000), new Date(Date.now() - seconds * 1000));
    materialise(out, [ckpt(10, WHOLE, 'unsealed'), ckpt(20, WHOLE, 'unsealed'), ckpt(30, WHOLE, 'unsealed'), ckpt(40, ['adapter_model.safetensors'], 'unsealed'), ckpt(50, WHOLE, 'garbage-state')]);
    // 30 was logged past (step 35), 20 is followed by 30; 10 is followed too; 40 is half-written; 50 is garbage.
    writeFileSync(join(out, 'trainer_log.jsonl'), '{"current_steps": 30}\n{"current_steps": 35}\n');
    let sealed = await sealCheckpoints(out);
    assert.deepEqual(sealed.map((s) => `${s.name}: ${s.why}`), ['checkpoint-10: checkpoint-20 followed it', 'checkpoint-20: checkpoint-30 followed it', 'checkpoint-30: checkpoint-40 followed it']);
    // A later checkpoint folder (even a half-written one) proves the trainer moved on; remove it and
    // only the log can speak for 30.
    rmSync(join(out, 'checkpoint-30', 'SHA256SUMS'));
    rmSync(join(out, 'checkpoint-40'), { recursive: true });
    rmSync(join(out, 'checkpoint-50'), { recursive: true });
    sealed = await sealCheckpoints(out);
    assert.deepEqual(sealed.map((s) => `${s.name}: ${s.why}`), ['checkpoint-30: training logged step 35 after it']);
    // A log older than the checkpoint (an earlier attempt's) proves nothing; nor does a young folder.
    rmSync(join(out, 'checkpoint-30', 'SHA256SUMS'));
    old(join(out, 'trainer_log.jsonl'), 60);
    assert.deepEqual(await sealCheckpoints(out, Date.now() - 30_000), []);
    for (const f of readdirSync(join(out, 'checkpoint-30'))) old(join(out, 'checkpoint-30', f), 40);
    old(join(out, 'checkpoint-30'), 40);
    sealed = await sealCheckpoints(out, Date.now() - 30_000);
    assert.deepEqual(sealed.map((s) => `${s.name}: ${s.why}`), ['checkpoint-30: unchanged for the settle time']);
    // What was sealed verifies, and is resumed from.
    assert.equal((await repairOutputDir(out)).resumeFrom, 'checkpoint-30');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
