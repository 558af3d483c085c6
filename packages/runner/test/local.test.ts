import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLocally, type LocalRunOptions, type RunConvertStage } from '../src/local/run.ts';
import { planLocalStage } from '../src/local/plan.ts';
import { localStatus, readRunRecord } from '../src/progress/record.ts';
import { gzipSync } from 'node:zlib';
import { compile, definePipeline, LLAMA3_8B, type CompileContext } from '@tunepipe/core';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { makePipeline, type FixtureOptions } from './fixtures/pipeline.ts';
import { recorder, waitFor } from './helpers.ts';

// TEST DOUBLES: `npm test` is hermetic (no Python, no GPU), so these tests run the runner against the
// stub llamafactory-cli and vllm in ./doubles/bin, which inject faults on demand (a death at step N,
// a kill while saving). The same behaviours run against the real, pinned LLaMA-Factory on a CPU in
// test/real/llamafactory/pipeline.test.ts (npm run test:real): convert, SFT killed and resumed from
// its last checkpoint, a half-written checkpoint moved aside, merge, evaluation and the gate. vLLM
// stays a double everywhere: it needs a GPU.
const STUBS = fileURLToPath(new URL('./doubles/bin', import.meta.url));
for (const f of readdirSync(STUBS)) chmodSync(join(STUBS, f), 0o755);

/** Stand-in for the injected converter: writes what LLaMA-Factory and GPTQ read from convert. */
const converterDouble: RunConvertStage = async (stage, paths) => {
  assert.equal(stage.kind, 'convert');
  assert.ok(existsSync(paths.mapPath('/config/convert.json')), 'config written before the converter runs');
  assert.deepEqual(paths.argv.slice(0, 2), ['tunepipe', 'convert']);
  paths.log('Converting format of dataset: 100%|██████████| 491/491 [00:00<00:00, 2508.25 examples/s]');
  await writeFile(join(paths.workDir, 'dataset_info.json'), JSON.stringify({ identity: { file_name: 'identity.json' } }));
  await writeFile(join(paths.workDir, 'identity.json'), '[]');
  await writeFile(join(paths.workDir, 'calibration.jsonl'), '{"text":"x"}\n');
};

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

interface Box {
  readonly dir: string;
  readonly artifacts: string;
  readonly calls: string;
  env(extra?: Record<string, string>): Record<string, string>;
  calledTools(): string[];
}

function box(): Box {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-local-'));
  const calls = join(dir, 'calls.txt');
  writeFileSync(calls, '');
  return {
    dir,
    artifacts: join(dir, 'artifacts'),
    calls,
    env: (extra = {}) => ({
      PATH: `${STUBS}${delimiter}${process.env['PATH']}`,
      HOME: process.env['HOME'] ?? dir,
      STUB_CALLS_FILE: calls,
      ...extra,
    }),
    calledTools: () => readFileSync(calls, 'utf8').split('\n').filter(Boolean),
  };
}

const LOCAL_FIXTURE: FixtureOptions = { gate: false, sft: { save_steps: 10 } };

async function runBox(b: Box, fixture: FixtureOptions = {}, options: Partial<LocalRunOptions> & { extraEnv?: Record<string, string> } = {}) {
  const rec = recorder();
  const pipeline = makePipeline({ ...LOCAL_FIXTURE, without: ['serve'], ...fixture });
  const { extraEnv, ...rest } = options;
  const result = await runLocally(pipeline, {
    artifactsDir: b.artifacts,
    env: b.env(extraEnv),
    runConvertStage: converterDouble,
    reporter: rec,
    ...rest,
  });
  return { rec, result, pipeline };
}

const stageOf = (p: CompiledPipeline, name: string) => p.stages.find((s) => s.name === name)!;
const local = (b: Box, podPath: string) => join(b.artifacts, podPath.replace(/^\/artifacts\//, ''));

test('local: the whole pipeline runs as processes, vLLM included, with markers like the pods write', async () => {
  const b = box();
  try {
    const port = await freePort();
    const { rec, result, pipeline } = await runBox(b, { without: [], servePort: port });
    assert.equal(result.outcome, 'succeeded', rec.output());
    assert.deepEqual(result.stages.map((s) => s.status), Array(7).fill('done'));
    for (const stage of pipeline.stages.filter((s) => s.artifactPath)) {
      const out = local(b, stage.artifactPath!);
      const marker = JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8'));
      assert.equal(marker.stage, stage.name);
      assert.equal(marker.hash, stage.hash);
      const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n');
      assert.equal(sums.length, marker.files);
      for (const line of sums) {
        const [digest, file] = line.split('  ');
        assert.equal(createHash('sha256').update(readFileSync(join(out, file!))).digest('hex'), digest, file);
      }
      assert.ok(!existsSync(`${out}.partial`), `${stage.name}: no .partial left`);
    }
    // The LLaMA-Factory config is the ConfigMap's, with /artifacts rewritten to the local folder.
    const sft = stageOf(pipeline, 'sft');
    const yaml = readFileSync(join(b.artifacts, '.tunepipe-runs', sft.resourceName, 'root', 'config', 'sft.yaml'), 'utf8');
    assert.match(yaml, new RegExp(`output_dir: ${local(b, sft.artifactPath!)}\\n`));
    assert.match(yaml, new RegExp(`model_name_or_path: ${local(b, stageOf(pipeline, 'fetch-model').artifactPath!)}\\n`));
    assert.doesNotMatch(yaml, /: \/artifacts\//, 'no pod path left in the config');
    // Pod-only scratch (HOME=/tmp) stays in the pod; HF_HUB_OFFLINE comes along.
    const sftLog = readFileSync(join(b.artifacts, '.tunepipe-runs', sft.resourceName, 'stage.log'), 'utf8');
    assert.match(sftLog, /stub: HOME=(?!\/tmp)\S* HF_HUB_OFFLINE=1/);
    // Progress came from stdout.
    const sftState = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sftState.progress?.training?.current, 30);
    assert.equal(sftState.progress?.metrics['train']?.['train_loss'], 0.714);
    assert.match(rec.output(), /sft +▶ running +\d+% +\d+\/30 · loss/);
    // One GPU: GPU stages never overlap.
    const gpu = result.stages.filter((s) => ['sft', 'quantize', 'evaluate'].includes(s.stage)).sort((x, y) => x.startedAt! - y.startedAt!);
    for (let i = 1; i < gpu.length; i++) assert.ok(gpu[i]!.startedAt! >= gpu[i - 1]!.finishedAt!, `${gpu[i]!.stage} waits for ${gpu[i - 1]!.stage}`);
    // serve: vLLM answers and is handed back to the caller.
    assert.equal(result.servers.length, 1);
    assert.equal(result.servers[0]!.url, `http://127.0.0.1:${port}/v1`);
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string }[] };
    assert.equal(models.data[0]?.id, 'llama3-fintech');
    await result.servers[0]!.stop();
    assert.match(rec.output(), /evaluate +✓ done .*bleu-4 41\.2/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: a second run is all cache hits and starts no tool', async () => {
  const b = box();
  try {
    await runBox(b);
    const calls = b.calledTools().length;
    const { rec, result } = await runBox(b);
    assert.deepEqual(result.stages.map((s) => s.status), Array(6).fill('cached'));
    assert.equal(b.calledTools().length, calls, 'no llamafactory-cli / modelscope call');
    assert.match(rec.output(), /0 run, 6 cached/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: changing sft re-runs sft and what reads it; --force re-trains from scratch', async () => {
  const b = box();
  try {
    await runBox(b);
    const before = b.calledTools().length;
    const { result } = await runBox(b, { sft: { save_steps: 10, learning_rate: 2e-4 } });
    assert.deepEqual(
      Object.fromEntries(result.stages.map((s) => [s.stage, s.status])),
      { 'fetch-model': 'cached', convert: 'cached', sft: 'done', merge: 'done', quantize: 'done', evaluate: 'done' },
    );
    assert.deepEqual(
      b.calledTools().slice(before).map((c) => c.split(' ').slice(0, 2).join(' ')),
      ['llamafactory-cli train', 'llamafactory-cli export', 'llamafactory-cli export', 'llamafactory-cli train'],
    );

    const forced = await runBox(b, {}, { force: ['sft'] });
    assert.equal(forced.result.stages.find((s) => s.stage === 'sft')!.status, 'done');
    assert.equal(forced.result.stages.find((s) => s.stage === 'convert')!.status, 'cached');
    const sftLog = forced.result.stages.find((s) => s.stage === 'sft')!.progress;
    assert.equal(sftLog?.resumedFrom, undefined, 'a forced sft starts from step 0, not from its old checkpoints');
    assert.match(forced.rec.notes.join('\n'), /--force: clearing/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: a killed sft resumes from its last checkpoint on the next run', async () => {
  const b = box();
  try {
    const first = await runBox(b, {}, { extraEnv: { STUB_LF_DIE_AT_STEP: '25' } });
    assert.equal(first.result.outcome, 'failed');
    const sft = first.result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.failure?.reason, 'llamafactory-cli exited with code 137');
    assert.equal(first.result.stages.find((s) => s.stage === 'merge')!.status, 'blocked');

    const second = await runBox(b);
    assert.equal(second.result.outcome, 'succeeded', second.rec.output());
    const resumed = second.result.stages.find((s) => s.stage === 'sft')!;
    assert.match(resumed.progress?.resumedFrom ?? '', /checkpoint-20$/);
    assert.match(second.rec.notes.join('\n'), /sft: resuming from checkpoint-20/);
    assert.equal(second.result.stages.find((s) => s.stage === 'convert')!.status, 'cached');
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: a checkpoint half-written when the process died is moved aside; training resumes from the one before', async () => {
  const b = box();
  try {
    const first = await runBox(b, {}, { extraEnv: { STUB_LF_DIE_DURING_SAVE: '20' } });
    assert.equal(first.result.outcome, 'failed');
    const sftOut = local(b, stageOf(first.pipeline, 'sft').artifactPath!);
    assert.ok(existsSync(join(sftOut, 'checkpoint-20')));
    assert.ok(!existsSync(join(sftOut, 'checkpoint-20', 'trainer_state.json')));

    const second = await runBox(b);
    assert.equal(second.result.outcome, 'succeeded', second.rec.output());
    assert.match(second.rec.notes.join('\n'), /checkpoint-20 is incomplete \(missing trainer_state\.json, optimizer\.pt, scheduler\.pt\); moved to .*\.broken\//);
    assert.match(second.result.stages.find((s) => s.stage === 'sft')!.progress?.resumedFrom ?? '', /checkpoint-10$/);
    assert.deepEqual(readdirSync(`${sftOut}.broken`).map((n) => n.replace(/\.\d+$/, '')).sort(), ['checkpoint-20', 'moved-aside.log']);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: a failing tool reports its exit code, error line and last log lines', async () => {
  const b = box();
  try {
    const { rec, result } = await runBox(b, {}, { extraEnv: { STUB_LF_FAIL: 'Template llama does not exist.' } });
    assert.equal(result.outcome, 'failed');
    const sft = result.stages.find((s) => s.stage === 'sft')!;
    assert.equal(sft.failure?.reason, 'llamafactory-cli exited with code 1');
    assert.equal(sft.failure?.message, 'ValueError: Template llama does not exist.');
    assert.equal(sft.failure?.logTail.at(-1), 'ValueError: Template llama does not exist.');
    assert.match(sft.failure?.source ?? '', /stage\.log$/);
    assert.match(rec.output(), /✗ sft failed: llamafactory-cli exited with code 1 — ValueError: Template llama does not exist\.\n  last \d+ log lines of .*stage\.log:\n/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: a failed gate is headlined by its verdict; run records say what happened for status and report', async () => {
  const b = box();
  try {
    // Stands in for `tunepipe gate` on PATH: writes its verdict where the gate step is told to, exits 3.
    const bin = join(b.dir, 'bin');
    mkdirSync(bin);
    const gate = join(bin, 'tunepipe');
    writeFileSync(
      gate,
      `#!${process.execPath}
const { writeFileSync } = require('node:fs');
const out = process.argv[process.argv.indexOf('--out') + 1];
const rule = { metric: 'predict_bleu-4', comparison: 'min', value: 50 };
writeFileSync(out, JSON.stringify({ passed: false, summary: 'gate failed', verdicts: [{ rule, passed: false, actual: 41.2, required: 50, message: 'predict_bleu-4 = 41.20 < 50.00 (required)' }] }));
console.log('gate failed: bleu4 41.2 < min 50');
process.exit(3);
`,
    );
    chmodSync(gate, 0o755);
    const path = { PATH: `${bin}${delimiter}${b.env()['PATH']}` };
    const { rec, result, pipeline } = await runBox(b, { gate: true }, { extraEnv: path });
    assert.equal(result.outcome, 'failed', rec.output());
    const evaluate = result.stages.find((s) => s.stage === 'evaluate')!;
    assert.equal(evaluate.failure?.reason, 'gate failed: bleu4 41.2 < min 50');
    assert.match(rec.output(), /✗ evaluate failed: gate failed: bleu4 41\.2 < min 50/);
    assert.doesNotMatch(rec.output(), /exited with code 3/);

    const status = new Map(localStatus(pipeline, b.artifacts).map((s) => [s.stage, s]));
    assert.equal(status.get('evaluate')!.status, 'failed');
    assert.equal(status.get('evaluate')!.failure?.reason, 'gate failed: bleu4 41.2 < min 50');
    assert.equal(status.get('sft')!.status, 'done');
    const sftRecord = readRunRecord(b.artifacts, stageOf(pipeline, 'sft'))!;
    assert.equal(sftRecord.status, 'done');
    assert.ok(sftRecord.durationSeconds! >= 0 && Date.parse(sftRecord.finishedAt!) >= Date.parse(sftRecord.startedAt!));
    assert.equal(sftRecord.runnerPid, process.pid);
    // A second run finds sft cached: its record still tells when it ran.
    await runBox(b, { gate: true }, { extraEnv: path });
    assert.deepEqual(readRunRecord(b.artifacts, stageOf(pipeline, 'sft')), sftRecord);
    assert.equal(localStatus(pipeline, b.artifacts).find((s) => s.stage === 'sft')!.status, 'done');
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: missing tools and secrets are one message before anything runs', async () => {
  const b = box();
  try {
    const pipeline = makePipeline({ ...LOCAL_FIXTURE, serveApiKey: true });
    let converterCalled = false;
    await assert.rejects(
      runLocally(pipeline, {
        artifactsDir: b.artifacts,
        env: { PATH: '/nonexistent' },
        runConvertStage: async () => {
          converterCalled = true;
        },
        reporter: recorder(),
      }),
      (error: Error) => {
        assert.equal(error.name, 'RunnerError');
        const lines = error.message.split('\n');
        assert.equal(lines[0], 'cannot run llama3-fintech locally; nothing was started:');
        assert.match(error.message, /- modelscope is not on PATH \(needed by fetch-model\): pip install modelscope/);
        assert.match(
          error.message,
          /- llamafactory-cli is not on PATH \(needed by sft, merge, quantize, evaluate\): pip install "llamafactory\[metrics\]==0\.9\.4" optimum gptqmodel/,
        );
        assert.match(error.message, /- vllm is not on PATH \(needed by serve\): pip install "vllm==0\.11\.0"/);
        assert.match(error.message, /- stage serve needs VLLM_API_KEY \(in the cluster it comes from Secret llama3-fintech-api-key, key key\): export VLLM_API_KEY=/);
        return true;
      },
    );
    assert.equal(converterCalled, false);
    assert.ok(!existsSync(b.artifacts), 'nothing was written');
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('local: Ctrl-C stops the running tool; the next run resumes', async () => {
  const b = box();
  try {
    const controller = new AbortController();
    const rec = recorder();
    const pipeline = makePipeline({ ...LOCAL_FIXTURE, without: ['serve'] });
    const running = runLocally(pipeline, {
      artifactsDir: b.artifacts,
      env: b.env({ STUB_LF_STEP_MS: '15' }),
      runConvertStage: converterDouble,
      reporter: rec,
      signal: controller.signal,
    });
    await waitFor(() => (rec.last('sft')?.progress?.training?.current ?? 0) >= 15, 10_000, 'sft past step 15');
    controller.abort();
    const result = await running;
    assert.equal(result.outcome, 'stopped');
    assert.equal(result.stages.find((s) => s.stage === 'sft')!.status, 'stopped');
    assert.match(rec.output(), /stopped after .*Run it again to continue; sft resumes from its last checkpoint/);
    const again = await runBox(b);
    assert.equal(again.result.outcome, 'succeeded');
    assert.match(again.result.stages.find((s) => s.stage === 'sft')!.progress?.resumedFrom ?? '', /checkpoint-10$/);
  } finally {
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('planLocalStage: the run description becomes local commands with local paths, without reading a Pod', () => {
  const artifactsDir = '/data/art';
  const pipeline = makePipeline({ gate: true });
  // No objects: the plan comes from `stage.run` alone.
  const runOnly = (name: string) => ({ ...stageOf(pipeline, name), objects: [] });
  const evaluate = planLocalStage(runOnly('evaluate'), {
    artifactsDir,
    env: {},
    selfCommand: ['node', '/opt/tunepipe/cli.js'],
  });
  const runDir = join(artifactsDir, '.tunepipe-runs', stageOf(pipeline, 'evaluate').resourceName);
  const out = join(artifactsDir, `llama3-fintech/evaluate/${stageOf(pipeline, 'evaluate').hash}`);
  // A gated evaluation: LLaMA-Factory (init container), then the gate (our CLI) — in that order.
  assert.deepEqual(evaluate.steps.map((s) => s.command), [
    ['llamafactory-cli', 'train', join(runDir, 'root/config/evaluate.yaml')],
    ['node', '/opt/tunepipe/cli.js', 'gate', '--rules', join(runDir, 'root/config/gate.json'), '--results', `${out}.partial/predict_results.json`, '--out', `${out}.partial/gate.json`],
  ]);
  assert.equal(evaluate.mode, 'rename');
  assert.equal(evaluate.steps[0]!.env['TUNEPIPE_STEP'], 'run');
  assert.equal(evaluate.steps[1]!.env['TUNEPIPE_STEP'], 'publish');
  assert.equal(evaluate.steps[0]!.env['HOME'], undefined, 'HOME=/tmp is pod scratch');
  assert.equal(evaluate.steps[0]!.env['HF_HUB_OFFLINE'], '1');

  const convert = planLocalStage(runOnly('convert'), { artifactsDir, env: {} });
  const convertRun = join(artifactsDir, '.tunepipe-runs', stageOf(pipeline, 'convert').resourceName);
  assert.deepEqual(convert.steps[0]!.command.slice(0, 6), ['tunepipe', 'convert', '--config', join(convertRun, 'root/config/convert.json'), '--inputs', join(convertRun, 'root/inputs')]);
  const gz = convert.files.find((f) => f.path === join(convertRun, 'root/inputs/identity/identity.json.gz'));
  assert.ok(gz && Buffer.isBuffer(gz.content), 'dataset files are written as bytes');

  const serve = planLocalStage(runOnly('serve'), { artifactsDir, env: {} });
  assert.deepEqual(serve.steps.map((s) => s.command[0]), ['vllm'], 'the wait-for-model init container is the runner’s job locally');
  assert.equal(serve.steps[0]!.command[2], join(artifactsDir, `llama3-fintech/quantize/${stageOf(pipeline, 'quantize').hash}`));
  assert.equal(serve.port, 8000);
});

test('planLocalStage on compile() output: remote inputs land in the run folder, pod scratch stays out, secrets are listed', () => {
  const row = gzipSync(JSON.stringify([{ instruction: 'Who?', input: '', output: 'me' }])).toString('base64');
  const context: CompileContext = {
    datasets: {
      small: { name: 'small', digest: '1'.repeat(64), descriptor: { format: 'alpaca', files: ['small.json'] }, files: [{ path: 'small.json', sha256: 'e'.repeat(64), size: 10, gzipBase64: row }] },
      big: { name: 'big', digest: '2'.repeat(64), descriptor: { format: 'alpaca', files: ['big.json'] }, files: [{ path: 'big.json', sha256: 'f'.repeat(64), size: 10_000_000, url: 'https://example.com/big.json' }] },
    },
  };
  const compiled = compile(
    definePipeline({ name: 'probe' }, (p) => {
      const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
      const data = p.convert({ sources: ['small', 'big'], cutoffLen: 1024 });
      const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, lora_rank: 8, lora_target: 'all', bf16: true } });
      p.serve({ model: p.merge({ adapter }), apiKey: { secretName: 'probe-key', key: 'key' } });
    }),
    context,
  );
  // Under /tmp, which is also pod scratch: a path is mapped once, never again.
  const artifactsDir = '/tmp/art';
  const convertStage = stageOf(compiled, 'convert');
  const root = join(artifactsDir, '.tunepipe-runs', convertStage.resourceName, 'root');
  const convert = planLocalStage(convertStage, { artifactsDir, env: {} });
  // The download runs as-is (no wrapper), before the converter, into the local stand-in of its emptyDir.
  assert.deepEqual(convert.steps.map((s) => [s.container, s.wrapper]), [['fetch-inputs', undefined], ['main', 'all']]);
  assert.match(convert.steps[0]!.command[2]!, new RegExp(`--dest ${join(root, 'inputs/.remote/big/big.json')}$`));
  assert.deepEqual(convert.steps[0]!.env, {}, 'HOME=/tmp and the cache folders are pod scratch');
  assert.ok(convert.scratch.includes(join(root, 'inputs/.remote')));
  assert.deepEqual(convert.steps[1]!.command.slice(4, 6), ['--inputs', join(root, 'inputs')]);
  assert.deepEqual(convert.files.map((f) => f.path), [join(root, 'config/convert.json'), join(root, 'config/stage.sh'), join(root, 'inputs/small/small.json.gz')]);
  assert.equal(convert.mode, 'rename');

  const sft = planLocalStage(stageOf(compiled, 'sft'), { artifactsDir, env: {} });
  assert.equal(sft.mode, 'in-place');
  assert.equal(sft.workDir, sft.outDir);
  const yaml = sft.files.find((f) => f.podPath === '/config/sft.yaml')!.content as string;
  assert.match(yaml, new RegExp(`output_dir: ${sft.outDir}\\n`));

  const serve = planLocalStage(stageOf(compiled, 'serve'), { artifactsDir, env: {} });
  assert.equal(serve.port, stageOf(compiled, 'serve').run.port);
  assert.deepEqual(serve.secretEnv, [{ name: 'VLLM_API_KEY', secret: 'probe-key', key: 'key' }]);
  const withKey = planLocalStage(stageOf(compiled, 'serve'), { artifactsDir, env: { VLLM_API_KEY: 'local' } });
  assert.equal(withKey.steps[0]!.env['VLLM_API_KEY'], 'local');
  assert.deepEqual(withKey.secretEnv, []);
});
