// The tiny pipeline (test/real/fixtures/tiny-llama3: the llama3-fintech stage kinds) run for real
// through the CLI, `tunepipe run --target local`, with the pinned LLaMA-Factory of the tier's venv on
// PATH and the tiny Llama-3-architecture model scripts/real/make-tiny-model.py builds. Nothing here is
// a double: LLaMA-Factory trains, exports, quantizes and generates on the CPU; the runner moves
// checkpoints aside and LLaMA-Factory resumes; our own converter, gate and report read its files.
// Only serving is left out (vLLM needs a GPU; its arguments are checked against vLLM's own parser in
// test/real/llamafactory's parser tests).
//
// The run is left behind in .tunepipe/real/llamafactory/ (adapter, trainer_log.jsonl, the resumed
// checkpoints, merged shards, predictions, report.html); each stage's wall time is printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { architectureFromConfig, gptqOutputBytes, pickResumeCheckpoint, uploadFolder, type CompiledPipeline } from '@tunepipe/core';
import type { PythonTools } from '../../../scripts/real/python.mjs';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { tools } from '../support/tools.ts';
import { tinyWorkspace } from '../support/tiny-workspace.ts';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CLI = join(REPO, 'packages', 'cli', 'bin', 'tunepipe.mjs');
const FIXTURE = join(REPO, 'test', 'real', 'fixtures', 'tiny-llama3', 'pipeline.ts');
const PIPELINE = 'tiny-llama3';
/** A user's repository holding the fixture pipeline: the CLI finds it from its working directory. */
const ROOT = join(REPO, '.tunepipe', 'real', 'llamafactory');
const ARTIFACTS = join(ROOT, 'artifacts');
const BATCH_STAGES = ['fetch-model', 'convert', 'sft', 'merge', 'eval-base', 'eval-adapter'];

interface TinyModel {
  readonly dir: string;
  readonly parameters: number;
}

interface CliRun {
  readonly code: number | null;
  readonly output: string;
  readonly seconds: number;
  /** Set when the watcher killed the trainer's process group. */
  readonly killedAt?: string;
}

let python: PythonTools;
let compiled: CompiledPipeline;
let env: Record<string, string>;
/** Wall time of each stage run, in run order, for the closing table. */
const timings: { run: string; stage: string; status: string; seconds: number }[] = [];

/** A stage's artifact folder on this machine. */
function dirOf(stage: string): string {
  const s = compiled.stages.find((x) => x.name === stage);
  assert.ok(s?.artifactPath, `no stage ${stage}`);
  return join(ARTIFACTS, relative('/artifacts', s.artifactPath));
}

function clockSeconds(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  return m ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : NaN;
}

/** Per stage: from its first `starting`/`running` line to `done in …` (exact) or `failed`. */
function recordTimings(run: string, output: string): void {
  const started = new Map<string, number>();
  for (const line of output.split('\n')) {
    const m = /^\[\s*([^\]]+)\]\s+(\S+)\s+\S+\s+(starting|running|done|failed)\b(?:\s+in (\S+))?/.exec(line);
    if (!m) continue;
    const [, at, stage, status, took] = m as unknown as [string, string, string, string, string | undefined];
    const t = clockSeconds(at);
    if (status === 'starting' || status === 'running') {
      if (!started.has(stage)) started.set(stage, t);
      continue;
    }
    timings.push({ run, stage, status, seconds: took ? clockSeconds(took) : t - (started.get(stage) ?? t) });
  }
}

/** The process group of the running `llamafactory-cli train` of this run (its own group: the runner starts it detached). */
function trainerProcessGroup(): number | undefined {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv.some((a) => a.endsWith('llamafactory-cli')) || !argv.includes('train') || !argv.some((a) => a.startsWith(join(ARTIFACTS, '.tunepipe-runs', `${PIPELINE}-sft-`)))) continue;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  }
  return undefined;
}

/**
 * Whether `checkpoint-N` is whole and sealed by the runner (its SHA256SUMS, renamed into place
 * once written, is what makes it resumable) and its state file is complete JSON.
 */
function checkpointComplete(step: number): boolean {
  const dir = join(dirOf('sft'), `checkpoint-${step}`);
  if (!existsSync(join(dir, 'SHA256SUMS'))) return false;
  const files = readdirSync(dir).map((name) => ({ name, size: statSync(join(dir, name)).size }));
  if (pickResumeCheckpoint([{ name: `checkpoint-${step}`, files, seal: { state: 'verified' } }]).resumeFrom === undefined) return false;
  try {
    JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8'));
    return true;
  } catch {
    return false;
  }
}

/**
 * `tunepipe <args>` in the fixture repository. With `killAfterCheckpoint`, the trainer's process
 * group is SIGKILLed (a preempted pod, a lost node) as soon as that checkpoint is whole.
 */
async function tunepipe(label: string, args: readonly string[], options: { killAfterCheckpoint?: number; extraEnv?: Record<string, string> } = {}): Promise<CliRun> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...env, ...options.extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let killedAt: string | undefined;
  const watcher = options.killAfterCheckpoint
    ? setInterval(() => {
        if (killedAt || !checkpointComplete(options.killAfterCheckpoint!)) return;
        const group = trainerProcessGroup();
        if (group === undefined) return;
        process.kill(-group, 'SIGKILL');
        killedAt = `checkpoint-${options.killAfterCheckpoint} complete, trainer group ${group} killed`;
      }, 25)
    : undefined;
  // A hung tool must not hang the tier: the whole file is budgeted in minutes.
  const guard = setTimeout(() => child.kill('SIGTERM'), 12 * 60_000);
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  clearTimeout(guard);
  if (watcher) clearInterval(watcher);
  writeFileSync(join(ROOT, `${label}.log`), output);
  recordTimings(label, output);
  return { code, output, seconds: (Date.now() - started) / 1000, ...(killedAt ? { killedAt } : {}) };
}

interface LogEntry {
  current_steps: number;
  total_steps: number;
  loss?: number;
  eval_loss?: number;
}

function trainerLog(): LogEntry[] {
  return readFileSync(join(dirOf('sft'), 'trainer_log.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogEntry);
}

/** Entries of trainer_log.jsonl each trainer process wrote (LLaMA-Factory appends on resume). */
const linesByRun: number[] = [];

/** The step of the first entry the latest trainer process wrote: where it resumed. */
function firstStepOfLastRun(): number | undefined {
  return trainerLog()[linesByRun.at(-1) ?? 0]?.current_steps;
}

const stageLog = (stage: string) => {
  const s = compiled.stages.find((x) => x.name === stage)!;
  return readFileSync(join(ARTIFACTS, '.tunepipe-runs', s.resourceName, 'stage.log'), 'utf8');
};

before(async () => {
  ({ python, env } = tinyWorkspace(ROOT, PIPELINE, readFileSync(FIXTURE, 'utf8')));
  ({ compiled } = await synthPipeline(ROOT, PIPELINE));
});

after(() => {
  const rows = timings.map((t) => `  ${t.run.padEnd(14)} ${t.stage.padEnd(13)} ${t.status.padEnd(7)} ${t.seconds.toFixed(0).padStart(5)} s`);
  console.log(`\nstage wall times on this CPU (run, stage, outcome, seconds):\n${rows.join('\n')}\n`);
});

test('plan: the local model is read from its folder, and merge predicts its shard count', async () => {
  const run = await tunepipe('plan', ['plan', PIPELINE]);
  assert.equal(run.code, 0, run.output);
  const fetch = compiled.stages.find((s) => s.name === 'fetch-model')!;
  const digest = /^local:sha256:([0-9a-f]{64})$/.exec(fetch.inputs['model'] ?? '')?.[1];
  assert.ok(digest, `fetch-model is named by the folder's content: ${fetch.inputs['model']}`);
  assert.match(run.output, /merge .*\b21 shards/s, 'the planner reads the tiny model from config.json: 2 layers → 21 tensors');
  assert.ok(compiled.stages.find((s) => s.name === 'merge')!.expectedOutputs.some((o) => o.startsWith('21 shards')));
});

let runA: CliRun;
test('convert and the real SFT start; the trainer is killed once checkpoint-10 is saved', async () => {
  runA = await tunepipe('run-1-killed', ['run', PIPELINE, '--target', 'local', '--artifacts', 'artifacts', '--only', 'fetch-model,convert,sft'], { killAfterCheckpoint: 10 });
  assert.ok(runA.killedAt, `the trainer was never caught between checkpoints:\n${runA.output}`);
  assert.equal(runA.code, 1, runA.output);
  assert.match(runA.output, /sft\s+✗ failed.*llamafactory-cli killed by SIGKILL/);

  // The model reached the run through its content-named upload folder, verified by digest.
  const digest = compiled.stages[0]!.inputs['model']!.split(':').at(-1)!;
  assert.ok(existsSync(join(ARTIFACTS, uploadFolder(digest), 'config.json')));
  assert.match(stageLog('fetch-model'), new RegExp(`verified \\(\\d+ files, \\d+ bytes, sha256 ${digest}\\)`));
  assert.ok(existsSync(join(dirOf('fetch-model'), 'model.safetensors')));

  // convert ran for real: every input row is in a split or quarantined, the calibration set exists.
  const manifest = JSON.parse(readFileSync(join(dirOf('convert'), 'manifest.json'), 'utf8')) as { rows_in: number; rows_out: number; rows_quarantined: number; calibration: { written: number } };
  assert.equal(manifest.rows_in, manifest.rows_out + manifest.rows_quarantined);
  assert.ok(manifest.calibration.written >= 4);
  const info = JSON.parse(readFileSync(join(dirOf('convert'), 'dataset_info.json'), 'utf8')) as Record<string, unknown>;
  for (const entry of ['identity', 'fintech', 'identity.test', 'fintech.test']) assert.ok(info[entry], `dataset_info.json has ${entry}`);

  const log = trainerLog();
  linesByRun.push(log.length);
  assert.ok(checkpointComplete(10));
  assert.ok(!existsSync(join(dirOf('sft'), 'checkpoint-20')), 'killed before the next save');
  assert.ok(log.at(-1)!.current_steps >= 10 && log.at(-1)!.current_steps < 20, `killed between checkpoints: ${JSON.stringify(log.at(-1))}`);
});

test('a re-run resumes from the last checkpoint, checkpoint-10 (LLaMA-Factory says so and its log continues at step 11)', async () => {
  const run = await tunepipe('run-2-resumed', ['run', PIPELINE, '--target', 'local', '--artifacts', 'artifacts', '--only', 'fetch-model,convert,sft'], { killAfterCheckpoint: 30 });
  assert.ok(run.killedAt, run.output);
  assert.equal(run.code, 1, run.output);
  assert.match(run.output, /fetch-model\s+✓ cached/);
  assert.match(run.output, /\] sft\s+resuming from checkpoint-10$/m);
  assert.match(stageLog('sft'), new RegExp(`Resuming training from ${dirOf('sft')}/checkpoint-10\\.`));
  // Not step 1 again: the trainer restored checkpoint-10's state and continued.
  assert.equal(firstStepOfLastRun(), 11);
  linesByRun.push(trainerLog().length);
  assert.match(stageLog('sft'), /Continuing training from global step 10\b/);
  const state = JSON.parse(readFileSync(join(dirOf('sft'), 'checkpoint-30', 'trainer_state.json'), 'utf8')) as { global_step: number };
  assert.equal(state.global_step, 30);
});

test('a half-written last checkpoint is moved aside: training resumes from checkpoint-20 and finishes', async () => {
  // What a pod killed while saving leaves: trainer_state.json (written last) absent, optimizer.pt cut short.
  const broken = join(dirOf('sft'), 'checkpoint-30');
  rmSync(join(broken, 'trainer_state.json'));
  truncateSync(join(broken, 'optimizer.pt'), Math.floor(statSync(join(broken, 'optimizer.pt')).size / 2));

  const run = await tunepipe('run-3-finish', ['run', PIPELINE, '--target', 'local', '--artifacts', 'artifacts', '--only', BATCH_STAGES.join(',')]);
  assert.equal(run.code, 0, run.output);
  assert.match(run.output, /\] sft\s+checkpoint-30 is incomplete \(missing trainer_state\.json\); moved to .*\.broken\/$/m);
  assert.match(run.output, /\] sft\s+resuming from checkpoint-20$/m);
  assert.match(stageLog('sft'), new RegExp(`Resuming training from ${dirOf('sft')}/checkpoint-20\\.`));
  assert.equal(firstStepOfLastRun(), 21);
  assert.match(stageLog('sft'), /Continuing training from global step 20\b/);
  // checkpoint-30, and any later one the killed run wrote but never sealed (its save was never shown finished).
  const aside = readdirSync(`${dirOf('sft')}.broken`).filter((n) => n !== 'moved-aside.log').map((n) => n.replace(/\.\d+$/, ''));
  assert.ok(aside.includes('checkpoint-30'), aside.join(', '));
  assert.ok(aside.every((n) => Number(n.slice('checkpoint-'.length)) >= 30), aside.join(', '));
});

test("SFT for real: LLaMA-Factory's own trainer_log.jsonl, a falling loss, whole checkpoints and the adapter", () => {
  const entries = trainerLog();
  const total = entries[0]!.total_steps;
  assert.ok(total >= 30 && total <= 60, `a few dozen steps: ${total}`);
  // A resumed run repeats the steps after its checkpoint: the last entry for a step is the one that counts.
  const curve = new Map<number, number>();
  for (const e of entries) if (e.loss !== undefined) curve.set(e.current_steps, e.loss);
  assert.deepEqual([...curve.keys()].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i + 1), 'a loss for every step (logging_steps 1)');
  const losses = [...curve.entries()].sort(([a], [b]) => a - b).map(([, v]) => v);
  const quarter = Math.floor(losses.length / 4);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, quarter));
  const last = mean(losses.slice(-quarter));
  console.log(`loss: first quarter ${first.toFixed(4)}, last quarter ${last.toFixed(4)} (${losses.length} steps)`);
  assert.ok(last < first - 0.2, `the loss falls: first quarter ${first.toFixed(4)}, last quarter ${last.toFixed(4)}`);

  const sft = dirOf('sft');
  const checkpoints = readdirSync(sft).filter((n) => n.startsWith('checkpoint-')).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));
  assert.deepEqual(checkpoints, ['checkpoint-10', 'checkpoint-20', 'checkpoint-30', `checkpoint-${total}`].filter((c, i, all) => all.indexOf(c) === i));
  for (const c of checkpoints) assert.ok(checkpointComplete(Number(c.slice(11))), `${c} is whole`);
  const state = JSON.parse(readFileSync(join(sft, 'trainer_state.json'), 'utf8')) as { global_step: number };
  assert.equal(state.global_step, total);
  const adapter = JSON.parse(readFileSync(join(sft, 'adapter_config.json'), 'utf8')) as { r: number; target_modules: string[] };
  assert.equal(adapter.r, 16);
  assert.deepEqual([...adapter.target_modules].sort(), ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  assert.ok(statSync(join(sft, 'adapter_model.safetensors')).size > 0);
  assert.ok(existsSync(join(sft, '.tunepipe-complete')) && existsSync(join(sft, 'SHA256SUMS')));
});

test('merge/export: export_size shards the model into exactly as many files as the planner predicted', () => {
  const predicted = Number(/^(\d+) shards/.exec(compiled.stages.find((s) => s.name === 'merge')!.expectedOutputs[0]!)?.[1]);
  const files = readdirSync(dirOf('merge'));
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length > 1);
  assert.equal(shards.length, predicted);
  assert.ok(shards.every((f) => f.endsWith(`-of-${String(predicted).padStart(5, '0')}.safetensors`)));
  const index = JSON.parse(readFileSync(join(dirOf('merge'), 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  assert.equal(new Set(Object.values(index.weight_map)).size, predicted);
  // On a CPU (the merge pod of export_device: cpu) LLaMA-Factory keeps a float32 model in float32,
  // and the planner sizes it so: 4 bytes a parameter, to the byte.
  const config = JSON.parse(readFileSync(join(dirOf('merge'), 'config.json'), 'utf8')) as { dtype?: string; torch_dtype?: string };
  assert.equal(config.dtype ?? config.torch_dtype, 'float32');
  const { parameters } = tools<TinyModel>('tinyModel');
  assert.equal((JSON.parse(readFileSync(join(dirOf('merge'), 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number } }).metadata.total_size, parameters * 4);
  const merge = compiled.stages.find((s) => s.name === 'merge')!;
  assert.equal(merge.estimate.details.kind === 'merge' ? merge.estimate.details.modelBytes : undefined, parameters * 4);
});

test('GPTQ with the calibration set: a real 4-bit model, each quantized tensor the size the planner computes', async () => {
  // The GPTQ image's layer (optimum + gptqmodel + the transformers it holds back, at pins.json
  // versions, over the LLaMA-Factory venv), as scripts/real/images.mjs installs it from
  // images/gptq/Dockerfile. With the LLaMA-Factory image's own transformers 4.57 the same export
  // fails at the second decoder layer ("The size of tensor a (4) must match the size of tensor b
  // (32)"): optimum replays layer outputs as tuples, which transformers ≥ 4.54 no longer returns.
  const images = (await import(join(REPO, 'scripts', 'real', 'images.mjs') as string)) as { buildImage(name: string): Promise<{ report: { python?: { python: string } } }> };
  const layer = (await images.buildImage('gptq')).report.python;
  assert.ok(layer?.python, 'the GPTQ layer has no python');
  // The quantize stage runs in the GPTQ image: here, LLaMA-Factory's CLI under the layer's python.
  const bin = join(ROOT, 'gptq-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'llamafactory-cli'), `#!/bin/sh\nexec '${layer.python}' -c 'import sys; from llamafactory.cli import main; sys.argv[0] = "llamafactory-cli"; sys.exit(main())' "$@"\n`);
  chmodSync(join(bin, 'llamafactory-cli'), 0o755);
  const run = await tunepipe('run-4-quantize', ['run', PIPELINE, '--target', 'local', '--artifacts', 'artifacts', '--only', 'quantize'], { extraEnv: { PATH: `${bin}:${env['PATH']}` } });
  assert.equal(run.code, 0, run.output);
  const log = stageLog('quantize');
  assert.match(log, /Quantizing model to 4 bit with GPTQModel\./);
  const dir = dirOf('quantize');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { quantization_config?: { quant_method?: string; bits?: number } };
  assert.equal(config.quantization_config?.quant_method, 'gptq');
  assert.equal(config.quantization_config?.bits, 4);
  assert.ok(existsSync(join(dir, '.tunepipe-complete')) && existsSync(join(dir, 'SHA256SUMS')), 'published with its marker and SHA256SUMS');

  // Every stored tensor, grouped by its GPTQ role, against the planner's per-linear formula.
  const bytes = new Map<string, number>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const buf = readFileSync(join(dir, file));
    const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
    for (const [name, t] of Object.entries(header)) {
      if (!t.data_offsets) continue;
      const role = /\.(qweight|qzeros|scales|g_idx)$/.exec(name)?.[1] ?? 'kept';
      bytes.set(role, (bytes.get(role) ?? 0) + t.data_offsets[1] - t.data_offsets[0]);
    }
  }
  const { dir: modelDir } = tools<TinyModel>('tinyModel');
  const { architecture } = architectureFromConfig(JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>, tools<TinyModel>('tinyModel').parameters);
  assert.ok(architecture);
  const terms = new Map(gptqOutputBytes(architecture, 4).terms.map((t) => [t.name.split(' ')[0]!, t.bytes]));
  assert.equal(bytes.get('qweight'), terms.get('qweight'));
  assert.equal(bytes.get('qzeros'), terms.get('qzeros'));
  assert.equal(bytes.get('scales'), terms.get('scales'));
  assert.equal(bytes.get('g_idx'), terms.get('g_idx'));
  // What GPTQ does not quantize keeps the merged model's dtype: float32 here, because a CPU merge
  // does not cast (the planner's fp16 figure is for the GPU-merged 16-bit models it plans).
  assert.equal(bytes.get('kept'), (terms.get('embeddings,') ?? 0) * 2);
});

test('evaluate: real generation, the gate judged on the real scores (a pass, and a fail with a stricter rule)', async () => {
  for (const stage of ['eval-base', 'eval-adapter']) {
    const rows = readFileSync(join(dirOf(stage), 'generated_predictions.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { prompt: string; predict: string; label: string });
    assert.ok(rows.length >= 10, `${stage}: ${rows.length} predictions`);
    assert.ok(rows.every((r) => r.prompt.startsWith('<|begin_of_text|><|start_header_id|>user<|end_header_id|>') && typeof r.predict === 'string'), 'the llama3 template with the tiny tokenizer');
  }
  const results = (stage: string) => JSON.parse(readFileSync(join(dirOf(stage), 'predict_results.json'), 'utf8')) as Record<string, number>;
  const base = results('eval-base');
  const adapter = results('eval-adapter');
  const gate = JSON.parse(readFileSync(join(dirOf('eval-adapter'), 'gate.json'), 'utf8')) as { passed: boolean; verdicts: { actual: number; baseline?: number; passed: boolean }[] };
  assert.equal(gate.passed, true);
  assert.deepEqual(gate.verdicts.map((v) => [v.actual, v.baseline]), [[adapter['predict_bleu-4'], undefined], [adapter['predict_rouge-l'], base['predict_rouge-l']]]);

  // The same command the Job runs, on the same real scores, with a bar the tiny model cannot clear.
  const rules = join(ROOT, 'strict-gate.json');
  writeFileSync(rules, JSON.stringify({ rules: [{ metric: 'predict_rouge-l', comparison: 'minOverBaseline', value: 50 }], baselineResults: join(dirOf('eval-base'), 'predict_results.json') }));
  const strict = await tunepipe('gate-strict', ['gate', '--rules', rules, '--results', join(dirOf('eval-adapter'), 'predict_results.json'), '--out', join(ROOT, 'strict-verdict.json')]);
  assert.equal(strict.code, 3, strict.output);
  const verdict = JSON.parse(readFileSync(join(ROOT, 'strict-verdict.json'), 'utf8')) as { passed: boolean; verdicts: { actual: number; required: number }[] };
  assert.equal(verdict.passed, false);
  assert.deepEqual(verdict.verdicts.map((v) => [v.actual, v.required]), [[adapter['predict_rouge-l'], base['predict_rouge-l']! + 50]]);
});

test('tunepipe report renders the real loss curve from trainer_log.jsonl', async () => {
  const run = await tunepipe('report', ['report', PIPELINE, '--artifacts', 'artifacts']);
  assert.equal(run.code, 0, run.output);
  const html = readFileSync(/report: (\S+\.html)/.exec(run.output)![1]!, 'utf8');
  const curve = new Map<number, number>();
  for (const e of trainerLog()) if (e.loss !== undefined) curve.set(e.current_steps, e.loss);
  for (const [step, loss] of curve) assert.ok(html.includes(`training loss at step ${step}: ${loss}</title>`), `point ${step}: ${loss} is in the chart`);
  assert.match(html, new RegExp(`data-series="train" data-points="${curve.size}"`));
  assert.match(html, /gate passed/);
});
