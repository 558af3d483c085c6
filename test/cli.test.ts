// The CLI end to end, as a user runs it: a child process, its output and its exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'packages/cli/bin/tunepipe.mjs');

function tunepipe(args: string[], cwd = root) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const STACK_LINE = /^\s+at .+\(.+:\d+:\d+\)$/m;

test("the seed's merge mistakes stop plan with exit 1, both named, no stack trace", () => {
  const r = tunepipe(['plan', 'seed-merge'], join(root, 'test/fixtures/bad-repo'));
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /stages\.merge\.args\.template: the template is the one the model was trained with \('llama3'\)/);
  assert.match(r.stderr, /stages\.merge\.args\.export_device: export_device is 'cpu' or 'auto'; 'cuda' is not a value/);
  assert.match(r.stderr, /fix: +use 'auto' to merge on the GPUs/);
  assert.doesNotMatch(r.stderr, STACK_LINE);
});

test('an unknown pipeline is a user error with a suggestion', () => {
  const r = tunepipe(['plan', 'llama3-fintch']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown pipeline/);
  assert.match(r.stderr, /did you mean 'llama3-fintech'\?/);
  assert.doesNotMatch(r.stderr, STACK_LINE);
});

const width = (text: string) => Math.max(...text.split('\n').map((l) => [...l].length));

test('plan prints the stage graph and the planner in one table style within 100 columns; --wide shows everything', () => {
  const r = tunepipe(['plan', 'llama3-fintech']);
  assert.equal(r.code, 0, r.stderr);
  for (const stage of ['fetch-model', 'convert', 'sft', 'merge', 'quantize', 'eval-base', 'eval-adapter', 'serve']) assert.match(r.stdout, new RegExp(`^${stage} `, 'm'));
  assert.match(r.stdout, /5 shards/);
  assert.ok(width(r.stdout) <= 100, `widest line ${width(r.stdout)}`);
  assert.doesNotMatch(r.stdout, /[│┌┐└┘├┤┬┴┼]/, 'no boxed table');
  assert.equal(r.stdout.match(/^─[─ ]+$/gm)?.length, 2, 'two tables, each with one rule under its header');
  // memory as need ±band / usable, time as a band
  assert.match(r.stdout, /^sft +1× l4 +\d+\.\d\d ±\d\.\d\d \/ 22\.49 +\d+m \d\ds–\d+m \d\ds /m);
  const wide = tunepipe(['plan', 'llama3-fintech', '--wide']);
  assert.match(wide.stdout, /hiyouga\/llamafactory:0\.9\.4/);
  assert.match(wide.stdout, /\/artifacts\/llama3-fintech\/sft\/[0-9a-f]{64}/);
});

test('plan --explain names every memory term and prints the trainable-parameter line; --json is for tools', () => {
  const r = tunepipe(['plan', 'llama3-fintech', '--explain', 'sft']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^trainable params: 20,971,520 \|\| all params: 8,051,232,768 \|\| trainable%: 0\.2605$/m);
  for (const term of ['frozen weights', 'LoRA gradients (fp32)', 'optimizer states (adamw_torch)', 'gradient of the fp32 logits', 'CUDA context (outside PyTorch)']) assert.ok(r.stdout.includes(`\n${term}  `), term);
  assert.match(r.stdout, /^host memory \(per pod\)$/m);
  assert.match(r.stdout, /^train +\d+m \d\ds$/m);
  assert.ok(width(r.stdout) <= 100);
  const typo = tunepipe(['plan', 'llama3-fintech', '--explain', 'stf']);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /did you mean 'sft'\?/);

  const json = tunepipe(['plan', 'qwen-support', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const plan = JSON.parse(json.stdout);
  assert.equal(plan.schema, 'tunepipe.plan/v1');
  assert.deepEqual(plan.pipelines.map((p: { pipeline: string }) => p.pipeline), ['qwen-support']);
  const sft = plan.pipelines[0].stages.find((s: { name: string }) => s.name === 'sft');
  assert.deepEqual([sft.gpuType, sft.gpus, sft.placement], ['a100-80gb', 2, 'explicit']);
  assert.ok(sft.memory.gpu.terms.some((t: { name: string; bytes: number }) => t.name === 'frozen weights' && t.bytes > 0));
  assert.match(sft.details.paramsLogLine, /^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d\.\d{4}$/);
  assert.equal(typeof sft.deadlineSeconds, 'number');
});

test('--version prints the version; diff can be limited to one pipeline, as JSON too', () => {
  const version = tunepipe(['--version']);
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')).version);
  const diff = tunepipe(['diff', 'qwen-support', '--json']);
  assert.equal(diff.code, 0, diff.stderr);
  const parsed = JSON.parse(diff.stdout);
  assert.equal(parsed.schema, 'tunepipe.diff/v1');
  assert.deepEqual(parsed.pipelines.map((p: { pipeline: string }) => p.pipeline), ['qwen-support']);
});

test('--help works on every command', () => {
  for (const command of [[], ['synth'], ['plan'], ['gate']]) {
    const r = tunepipe([...command, '--help']);
    assert.equal(r.code, 0, `${command.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: tunepipe/);
  }
});

test('a usage error exits 1', () => {
  const r = tunepipe(['synth', '--no-such-flag']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown option '--no-such-flag'/);
});

test('synth --check passes on the committed manifests and writes nothing', () => {
  const r = tunepipe(['synth', '--check']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /committed manifests are up to date \(\d+ files\)/);
});

test('diff against HEAD: every stage cached, no GPU-hours', () => {
  const r = tunepipe(['diff', '--base', 'HEAD', '--format', 'markdown']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /tunepipe-plan/);
  assert.match(r.stdout, /0 stages will run/);
  assert.match(r.stdout, /0\.00 GPU-hours/);
});

test('report writes a self-contained HTML and Markdown report from an artifacts folder', () => {
  const out = mkdtempSync(join(tmpdir(), 'tunepipe-report-'));
  const r = tunepipe(['report', 'llama3-fintech', '--artifacts', join(out, 'artifacts'), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /^<!DOCTYPE html>/i);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href="http/i, 'nothing loaded from elsewhere');
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /\| eval-adapter \| evaluate \|/);
});

test('verify against an endpoint that does not answer fails its checks with exit 3, no stack trace', () => {
  const r = tunepipe(['verify', '--endpoint', 'http://127.0.0.1:9', '--served-model-name', 'llama3-fintech', '--expect-name', '小聚']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /post-deploy check FAILED/);
  assert.doesNotMatch(r.stdout + r.stderr, STACK_LINE);
});

test('the runtime image bundle builds and runs the gate with plain node (no tsx)', () => {
  const build = spawnSync(process.execPath, ['build.mjs'], { cwd: join(root, 'packages/cli'), encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-gate-'));
  writeFileSync(join(dir, 'gate.json'), JSON.stringify({ rules: [{ metric: 'predict_bleu-4', comparison: 'min', value: 20 }], baselineResults: null }));
  writeFileSync(join(dir, 'pass.json'), JSON.stringify({ 'predict_bleu-4': 21.5 }));
  writeFileSync(join(dir, 'fail.json'), JSON.stringify({ 'predict_bleu-4': 18.2 }));
  const bundle = join(root, 'packages/cli/dist/tunepipe.mjs');
  const gate = (results: string) => spawnSync(process.execPath, [bundle, 'gate', '--rules', join(dir, 'gate.json'), '--results', join(dir, results), '--out', join(dir, `${results}.verdict`)], { cwd: dir, encoding: 'utf8' });
  const passed = gate('pass.json');
  assert.equal(passed.status, 0, passed.stderr);
  assert.match(passed.stdout, /gate passed \(1\/1 rules\)/);
  const failed = gate('fail.json');
  assert.equal(failed.status, 3);
  assert.match(failed.stdout, /predict_bleu-4 = 18\.20 < 20\.00 \(required\)/);
  assert.equal(JSON.parse(readFileSync(join(dir, 'fail.json.verdict'), 'utf8')).passed, false);
});

test('run --target local --only convert converts the example data for real; a second run is cached', () => {
  const artifacts = mkdtempSync(join(tmpdir(), 'tunepipe-artifacts-'));
  const first = tunepipe(['run', 'llama3-fintech', '--target', 'local', '--only', 'convert', '--artifacts', artifacts]);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const conservation = /convert: rows_in (\d+) = rows_out (\d+) \+ rows_quarantined (\d+) ✓/.exec(first.stdout);
  assert.ok(conservation, first.stdout);
  assert.equal(Number(conservation[1]), Number(conservation[2]) + Number(conservation[3]));
  assert.match(first.stdout, /identity: \d+ in, \d+ out \(train \d+, validation \d+, test \d+\)/);
  const dir = resolve(root, /output: (\S+)\//.exec(first.stdout)![1]!);
  assert.ok(dir.startsWith(artifacts), dir);
  for (const file of ['dataset_info.json', 'identity.jsonl', 'fintech.test.jsonl', 'calibration.jsonl', 'quarantine.jsonl', 'manifest.json', 'SHA256SUMS', '.tunepipe-complete']) {
    assert.ok(existsSync(join(dir, file)), file);
  }
  const info = JSON.parse(readFileSync(join(dir, 'dataset_info.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(info).sort(), ['calibration', 'fintech', 'fintech.test', 'fintech.validation', 'identity', 'identity.test', 'identity.validation']);
  const second = tunepipe(['run', 'llama3-fintech', '--target', 'local', '--only', 'convert', '--artifacts', artifacts]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout + second.stderr, /0 run, 1 cached/);

  // status and logs read the local run records; the report takes its durations from them.
  const status = tunepipe(['status', 'llama3-fintech', '--target', 'local', '--artifacts', artifacts]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^llama3-fintech on this machine, artifacts in /);
  assert.match(status.stdout, /^convert +✓ done +in \d+s$/m);
  assert.match(status.stdout, /^sft +· waiting +not run on this machine$/m);
  const states = JSON.parse(tunepipe(['status', 'llama3-fintech', '--target', 'local', '--artifacts', artifacts, '--json']).stdout);
  assert.equal(states.schema, 'tunepipe.status/v1');
  assert.equal(states.stages.find((s: { stage: string }) => s.stage === 'convert').status, 'done');
  const logs = tunepipe(['logs', 'llama3-fintech', 'convert', '--target', 'local', '--artifacts', artifacts]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /identity\.test\.jsonl/);
  const report = tunepipe(['report', 'llama3-fintech', '--artifacts', artifacts, '--json']);
  assert.equal(report.code, 0, report.stderr);
  const markdown = readFileSync(JSON.parse(report.stdout).markdown, 'utf8');
  assert.match(markdown, /^\| convert \| convert \| [0-9a-f]{8} \| ran \| [\d.]+ s \|/m);
});
