// Runs the wrapper every batch pod runs, with the machine's /bin/sh and sha256sum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageScript } from '../src/stage-script.ts';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-wrapper-'));
  const script = join(dir, 'stage.sh');
  writeFileSync(script, stageScript());
  return { dir, script, out: join(dir, 'artifacts', 'stage', 'abc') };
}

function run(script: string, mode: string, out: string, command: string, env: Record<string, string> = {}) {
  const r = spawnSync('/bin/sh', [script, mode, out, '--', '/bin/sh', '-c', command], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TUNEPIPE_STAGE: 'merge', TUNEPIPE_HASH: 'abc', ...env },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('rename mode publishes atomically with digests and a completion marker', () => {
  const { script, out } = setup();
  const r = run(script, 'rename', out, `mkdir -p "${out}.partial/sub" && echo a > "${out}.partial/model-00001-of-00002.safetensors" && echo b > "${out}.partial/sub/b.json"`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(`${out}.partial`), false);
  assert.deepEqual(JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8')), { stage: 'merge', hash: 'abc', files: 2 });
  const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n');
  assert.equal(sums.length, 2);
  assert.match(sums[0]!, /^[0-9a-f]{64}  model-00001-of-00002\.safetensors$/);
  assert.match(sums[1]!, /^[0-9a-f]{64}  sub\/b\.json$/);
});

test('a completed stage is skipped; TUNEPIPE_FORCE=1 runs it again', () => {
  const { script, out } = setup();
  assert.equal(run(script, 'rename', out, `echo 1 > "${out}.partial/x"`).code, 0);
  const cached = run(script, 'rename', out, 'exit 1');
  assert.equal(cached.code, 0);
  assert.match(cached.stdout, /already complete .* \(cached\)/);
  const forced = run(script, 'rename', out, `echo 2 > "${out}.partial/x"`, { TUNEPIPE_FORCE: '1' });
  assert.equal(forced.code, 0);
  assert.equal(readFileSync(join(out, 'x'), 'utf8'), '2\n');
});

test('a failed tool leaves no marker and no published folder', () => {
  const { script, out } = setup();
  const r = run(script, 'rename', out, `echo half > "${out}.partial/x"; exit 7`);
  assert.equal(r.code, 7);
  assert.equal(existsSync(out), false);
  assert.equal(existsSync(join(out, '.tunepipe-complete')), false);
});

test('in-place mode keeps earlier output so training resumes from its checkpoints', () => {
  const { script, out } = setup();
  mkdirSync(join(out, 'checkpoint-100'), { recursive: true });
  for (const f of ['trainer_state.json', 'adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt']) writeFileSync(join(out, 'checkpoint-100', f), 'x');
  const r = run(script, 'in-place', out, `test -f "${out}/checkpoint-100/trainer_state.json" && echo done > "${out}/adapter_model.safetensors"`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8')).files, 5);
});

test('a gated stage: the run step never publishes, a failed gate leaves no marker', () => {
  const { script, out } = setup();
  const predict = run(script, 'rename', out, `echo '{"predict_bleu-4": 12}' > "${out}.partial/predict_results.json"`, { TUNEPIPE_STEP: 'run' });
  assert.equal(predict.code, 0);
  assert.equal(existsSync(out), false);
  assert.ok(existsSync(`${out}.partial/predict_results.json`));
  const failedGate = run(script, 'rename', out, 'exit 3', { TUNEPIPE_STEP: 'publish' });
  assert.equal(failedGate.code, 3);
  assert.equal(existsSync(join(out, '.tunepipe-complete')), false);
  const passedGate = run(script, 'rename', out, `echo '{"passed":true}' > "${out}.partial/gate.json"`, { TUNEPIPE_STEP: 'publish' });
  assert.equal(passedGate.code, 0);
  assert.ok(existsSync(join(out, 'predict_results.json')), 'the publish step keeps what the run step wrote');
  assert.equal(JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8')).files, 2);
});

test('in-place mode moves a half-written last checkpoint aside before resuming', () => {
  const { script, out } = setup();
  mkdirSync(join(out, 'checkpoint-100'), { recursive: true });
  for (const f of ['trainer_state.json', 'adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt']) writeFileSync(join(out, 'checkpoint-100', f), 'x');
  mkdirSync(join(out, 'checkpoint-200'), { recursive: true });
  writeFileSync(join(out, 'checkpoint-200', 'adapter_model.safetensors'), 'half');
  const r = run(script, 'in-place', out, `test ! -d "${out}/checkpoint-200" && test -d "${out}/checkpoint-100" && echo ok > "${out}/adapter_model.safetensors"`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /checkpoint-200 is incomplete/);
  assert.match(r.stdout, /training resumes from checkpoint-100/);
});

test('a forced in-place stage starts over instead of resuming its old result', () => {
  const { script, out } = setup();
  assert.equal(run(script, 'in-place', out, `echo old > "${out}/adapter_model.safetensors"`).code, 0);
  const forced = run(script, 'in-place', out, `test ! -f "${out}/adapter_model.safetensors" && echo new > "${out}/adapter_model.safetensors"`, { TUNEPIPE_FORCE: '1' });
  assert.equal(forced.code, 0, forced.stdout + forced.stderr);
  assert.equal(readFileSync(join(out, 'adapter_model.safetensors'), 'utf8'), 'new\n');
});
