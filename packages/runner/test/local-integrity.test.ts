// The local runner's integrity and robustness: verified caches and inputs, resource failures as
// user errors, one run per pipeline, and children that do not outlive the runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLocally, type LocalRunOptions, type RunConvertStage } from '../src/local/run.ts';
import { lockPath } from '../src/local/lock.ts';
import { localCheckpointNotes } from '../src/local/resume-note.ts';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { makePipeline, type FixtureOptions } from './fixtures/pipeline.ts';
import { recorder, waitFor } from './helpers.ts';

// TEST DOUBLES: the stub tools in ./doubles/bin, as in local.test.ts.
const STUBS = fileURLToPath(new URL('./doubles/bin', import.meta.url));
for (const f of readdirSync(STUBS)) chmodSync(join(STUBS, f), 0o755);

let corruptDuringConvert: (() => void) | undefined;
const converterDouble: RunConvertStage = async (_stage, paths) => {
  corruptDuringConvert?.();
  await writeFile(join(paths.workDir, 'dataset_info.json'), JSON.stringify({ identity: { file_name: 'identity.json' } }));
  await writeFile(join(paths.workDir, 'identity.json'), '[]');
  await writeFile(join(paths.workDir, 'calibration.jsonl'), '{"text":"x"}\n');
};

interface Box {
  readonly dir: string;
  readonly artifacts: string;
  readonly calls: () => string[];
  run(options?: Partial<LocalRunOptions> & { fixture?: FixtureOptions; extraEnv?: Record<string, string> }): ReturnType<typeof runWith>;
}

async function runWith(b: { artifacts: string; dir: string }, options: Partial<LocalRunOptions> & { fixture?: FixtureOptions; extraEnv?: Record<string, string> } = {}) {
  const rec = recorder();
  const { fixture, extraEnv, ...rest } = options;
  const pipeline = makePipeline({ gate: false, sft: { save_steps: 10 }, without: ['serve'], ...fixture });
  const result = await runLocally(pipeline, {
    artifactsDir: b.artifacts,
    env: { PATH: `${STUBS}${delimiter}${process.env['PATH']}`, HOME: b.dir, STUB_CALLS_FILE: join(b.dir, 'calls.txt'), ...extraEnv },
    runConvertStage: converterDouble,
    reporter: rec,
    checkpointSettleMs: 0,
    ...rest,
  });
  return { rec, result, pipeline };
}

function box(): Box {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-integrity-'));
  writeFileSync(join(dir, 'calls.txt'), '');
  const b = { dir, artifacts: join(dir, 'artifacts') };
  return { ...b, calls: () => readFileSync(join(dir, 'calls.txt'), 'utf8').split('\n').filter(Boolean), run: (options) => runWith(b, options) };
}

const outDir = (b: Box, p: CompiledPipeline, stage: string) => join(b.artifacts, p.stages.find((s) => s.name === stage)!.artifactPath!.replace(/^\/artifacts\//, ''));
const statusOf = (r: { result: { stages: readonly { stage: string; status: string }[] } }) => Object.fromEntries(r.result.stages.map((s) => [s.stage, s.status]));

test('local: a stage whose folder no longer matches its SHA256SUMS is not cached; it runs again', async () => {
  const b = box();
  try {
    const first = await b.run();
    assert.equal(first.result.outcome, 'succeeded', first.rec.output());
    const sft = outDir(b, first.pipeline, 'sft');
    writeFileSync(join(sft, 'adapter_model.safetensors'), 'flipped bits');
    const second = await b.run();
    assert.equal(second.result.outcome, 'succeeded', second.rec.output());
    assert.deepEqual(statusOf(second), { 'fetch-model': 'cached', convert: 'cached', sft: 'done', merge: 'cached', quantize: 'cached', evaluate: 'cached' });
    assert.match(second.rec.notes.join('\n'), /sft: .*sft\/[0-9a-f]{64} is marked complete but adapter_model\.safetensors does not match its SHA256SUMS entry; running it again/);
    assert.equal(readFileSync(join(sft, 'adapter_model.safetensors'), 'utf8'), 'final adapter');
    // Unchanged folders are trusted from their record of the last full check: no tool runs.
    const calls = b.calls().length;
    assert.deepEqual(Object.values(statusOf(await b.run())), Array(6).fill('cached'));
    assert.equal(b.calls().length, calls);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: an input that changed after it was checked fails the stage that reads it, naming the folder and the file', async () => {
  const b = box();
  try {
    const first = await b.run();
    assert.equal(first.result.outcome, 'succeeded', first.rec.output());
    const model = outDir(b, first.pipeline, 'fetch-model');
    // fetch-model is checked and cached at the start; convert (forced) then damages it before sft reads it.
    corruptDuringConvert = () => writeFileSync(join(model, 'config.json'), '{"architectures": []}');
    const second = await b.run({ force: ['convert'] });
    assert.equal(second.result.outcome, 'failed');
    const sft = second.result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.failure?.reason, 'input fetch-model is corrupt: config.json does not match its SHA256SUMS entry');
    assert.equal(sft.failure?.message, `in ${model}; run again with --force fetch-model to rebuild it`);
    assert.match(second.rec.output(), /✗ sft failed: input fetch-model is corrupt: config\.json/);
    assert.equal(statusOf(second)['merge'], 'blocked');
  } finally {
    corruptDuringConvert = undefined;
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: an unsealed newest checkpoint is not resumed from, and `tunepipe status` says so', async () => {
  const b = box();
  try {
    // The trainer dies right after saving checkpoint-20, before logging another step: with the
    // default settle time nothing proves that save finished.
    const first = await b.run({ extraEnv: { STUB_LF_DIE_AT_STEP: '20' }, checkpointSettleMs: 30_000 });
    assert.equal(first.result.outcome, 'failed');
    const sftOut = outDir(b, first.pipeline, 'sft');
    assert.ok(existsSync(join(sftOut, 'checkpoint-10', 'SHA256SUMS')), 'checkpoint-10 sealed: checkpoint-20 followed it');
    assert.ok(!existsSync(join(sftOut, 'checkpoint-20', 'SHA256SUMS')));
    const second = await b.run();
    assert.equal(second.result.outcome, 'succeeded', second.rec.output());
    assert.match(second.rec.notes.join('\n'), /sft: checkpoint-20 was never sealed \(its save was not confirmed finished\); moved to .*\.broken\//);
    assert.match(second.result.stages.find((s) => s.stage === 'sft')!.progress?.resumedFrom ?? '', /checkpoint-10$/);
    const notes = localCheckpointNotes(second.pipeline, b.artifacts);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /^sft: resumed from checkpoint-10: checkpoint-20 was never sealed .*; moved to .*\.broken\/ \(.*\)$/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

/** An fs error as Node raises it. */
const fsError = (code: string, path: string, syscall = 'open') => Object.assign(new Error(`${code}: failed, ${syscall} '${path}'`), { code, path, syscall });

test('local: a full disk, a missing permission and a vanished folder are user errors naming the stage and path; the next run resumes', async (t) => {
  await t.test('disk full writing a stage file', async () => {
    const b = box();
    try {
      const failing = await b.run({
        fs: {
          writeFile: async (path, data) => {
            if (path.endsWith('/sft.yaml')) throw fsError('ENOSPC', path);
            await writeFile(path, data);
          },
        },
      });
      assert.equal(failing.result.outcome, 'failed');
      const sft = failing.result.stages.find((s) => s.stage === 'sft')!;
      assert.match(sft.failure?.reason ?? '', /^disk full writing .*\/config\/sft\.yaml$/);
      assert.match(sft.failure?.message ?? '', /^ENOSPC: free space on that disk .*then run again/);
      assert.match(failing.rec.output(), /✗ sft failed: disk full writing /);
      assert.doesNotMatch(failing.rec.output(), /\n\s+at /, 'no stack trace');
      assert.equal(existsSync(lockPath(b.artifacts, 'llama3-fintech')), false, 'the lock is released');
      const again = await b.run();
      assert.equal(again.result.outcome, 'succeeded', again.rec.output());
      assert.deepEqual(statusOf(again), { 'fetch-model': 'cached', convert: 'cached', sft: 'done', merge: 'done', quantize: 'done', evaluate: 'done' });
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  await t.test('disk full writing a log: noted, the runner keeps going', async () => {
    const b = box();
    try {
      const { Writable } = await import('node:stream');
      const run = await b.run({
        fs: {
          openLog: (path) =>
            new Writable({
              write(_chunk, _encoding, done) {
                done(path.includes('-sft-') ? fsError('ENOSPC', path, 'write') : null);
              },
            }),
        },
      });
      assert.equal(run.result.outcome, 'succeeded', run.rec.output());
      assert.match(run.rec.notes.join('\n'), /sft: its log is incomplete: disk full writing .*-sft-[0-9a-f]{8}\/stage\.log/);
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  await t.test('disk full preparing the serve stage: its failure names the path; nothing is started', async () => {
    const b = box();
    try {
      const failing = await b.run({
        fixture: { gate: false, sft: { save_steps: 10 }, without: [] },
        fs: {
          mkdir: async (path) => {
            if (/-serve$/.test(path)) throw fsError('ENOSPC', path, 'mkdir');
            await mkdir(path, { recursive: true });
          },
        },
      });
      assert.equal(failing.result.outcome, 'failed');
      const serve = failing.result.stages.find((s) => s.stage === 'serve')!;
      assert.equal(serve.status, 'failed');
      assert.match(serve.failure?.reason ?? '', /^disk full writing .*-serve$/);
      assert.equal(failing.result.servers.length, 0, 'no vLLM left running');
      assert.doesNotMatch(failing.rec.output(), /\n\s+at /, 'no stack trace');
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  for (const [code, expected] of [['EACCES', /^no permission for .*merge\/[0-9a-f]{64}$/], ['ENOENT', /^.*merge\/[0-9a-f]{64}\.partial is gone$/]] as const) {
    await t.test(`${code} while publishing`, async () => {
      const b = box();
      try {
        const { publishLocalStage } = await import('../src/local/publish.ts');
        const failing = await b.run({
          fs: {
            publish: async (target) => {
              if (target.stage.name === 'merge') throw fsError(code, code === 'ENOENT' ? target.workDir : target.outDir, 'rename');
              return publishLocalStage(target);
            },
          },
        });
        assert.equal(failing.result.outcome, 'failed');
        const merge = failing.result.stages.find((s) => s.stage === 'merge')!;
        assert.match(merge.failure?.reason ?? '', expected);
        assert.equal(statusOf(failing)['quantize'], 'blocked');
        const again = await b.run();
        assert.equal(again.result.outcome, 'succeeded', again.rec.output());
        assert.equal(statusOf(again)['merge'], 'done');
        assert.equal(statusOf(again)['sft'], 'cached');
      } finally {
        rmSync(b.dir, { recursive: true, force: true });
      }
    });
  }
});

test('local: one run per pipeline at a time', async (t) => {
  const writeLock = (b: Box, holder: Record<string, unknown>) => {
    mkdirSync(join(b.artifacts, '.tunepipe-runs'), { recursive: true });
    writeFileSync(lockPath(b.artifacts, 'llama3-fintech'), JSON.stringify({ pipeline: 'llama3-fintech', startedAt: '2025-05-01T10:00:00.000Z', ...holder }));
  };
  await t.test('a live holder: refused, naming it; nothing runs', async () => {
    const b = box();
    try {
      writeLock(b, { pid: process.pid, host: hostname() });
      await assert.rejects(b.run(), (error: Error) => {
        assert.equal(error.name, 'RunnerError');
        assert.match(error.message, new RegExp(`another run of pipeline llama3-fintech holds .*llama3-fintech\\.lock: pid ${process.pid}, started 2025-05-01T10:00:00\\.000Z`));
        return true;
      });
      assert.deepEqual(b.calls(), []);
      assert.ok(existsSync(lockPath(b.artifacts, 'llama3-fintech')), "the holder's lock stays");
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  await t.test('a holder on another host: refused, with how to clear it', async () => {
    const b = box();
    try {
      writeLock(b, { pid: 1, host: 'gpu-box-7' });
      await assert.rejects(b.run(), /pid 1 on host gpu-box-7, .*if that run is gone \(this machine cannot check gpu-box-7\), delete /);
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  await t.test('a dead holder on this host: taken over with a note, released at the end', async () => {
    const b = box();
    try {
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      writeLock(b, { pid: Number(dead.stdout), host: hostname() });
      const run = await b.run();
      assert.equal(run.result.outcome, 'succeeded', run.rec.output());
      assert.match(run.rec.notes.join('\n'), new RegExp(`took over the lock .*: its runner \\(pid ${dead.stdout}, started 2025-05-01T10:00:00\\.000Z\\) is gone`));
      assert.equal(existsSync(lockPath(b.artifacts, 'llama3-fintech')), false);
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
  await t.test('two runs started together: the second is refused while the first holds it', async () => {
    const b = box();
    try {
      const first = b.run({ extraEnv: { STUB_LF_STEP_MS: '20' } });
      await waitFor(() => existsSync(lockPath(b.artifacts, 'llama3-fintech')), 10_000, 'the first run to take the lock');
      await assert.rejects(b.run(), new RegExp(`holds .*: pid ${process.pid}`));
      assert.equal((await first).result.outcome, 'succeeded');
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  });
});

test('local: a runner stopped by SIGTERM stops its tools and releases its lock', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-signal-'));
  try {
    // A trainer that records its pid and would train for a minute.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const pidFile = join(dir, 'trainer.pid');
    writeFileSync(join(bin, 'llamafactory-cli'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 60\n`);
    chmodSync(join(bin, 'llamafactory-cli'), 0o755);
    const artifacts = join(dir, 'artifacts');
    const fixture = fileURLToPath(new URL('./fixtures/local-run-process.ts', import.meta.url));
    const runner = spawn(process.execPath, ['--import', 'tsx', fixture, artifacts], {
      env: { ...process.env, PATH: `${bin}${delimiter}${STUBS}${delimiter}${process.env['PATH']}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    runner.stdout.on('data', (c: Buffer) => (output += c.toString()));
    runner.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => runner.once('exit', (code, signal) => r({ code, signal })));
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 30_000, 'the trainer to start');
    const trainer = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(existsSync(lockPath(artifacts, 'llama3-fintech')));
    runner.kill('SIGTERM');
    const end = await exited;
    assert.equal(end.signal, 'SIGTERM', `the runner ends as SIGTERM would end it\n${output}`);
    const alive = () => {
      try {
        process.kill(trainer, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => !alive(), 2000, 'the trainer to be gone');
    assert.equal(existsSync(lockPath(artifacts, 'llama3-fintech')), false, 'the lock is released');
    assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
