// Runs the wrapper every batch pod runs, with the machine's /bin/sh and sha256sum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageScript } from '../src/stage-script.ts';
import { completeFolder, writeSha256Sums } from '../src/artifacts/folder.ts';
import { INPUT_CORRUPT_EXIT_CODE, shellCheckFunctions, STAGE_ENV } from '../src/artifacts/protocol.ts';
import { checkpointSealFunctions, MOVED_ASIDE_LOG } from '../src/resume.ts';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-wrapper-'));
  const script = join(dir, 'stage.sh');
  writeFileSync(script, stageScript());
  return { dir, script, out: join(dir, 'artifacts', 'stage', 'abc') };
}

/** A whole checkpoint as the trainer leaves it; `seal` writes its integrity record as the wrapper's loop would. */
function checkpoint(dir: string, step: number, options: { seal?: boolean } = {}): string {
  const at = join(dir, `checkpoint-${step}`);
  mkdirSync(at, { recursive: true });
  for (const f of ['adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt']) writeFileSync(join(at, f), `${f} at ${step}`);
  writeFileSync(join(at, 'trainer_state.json'), JSON.stringify({ global_step: step }));
  if (options.seal) sealWithShell(at);
  return at;
}

/** Seals with the wrapper's own shell function, so the test does not lean on the Node side. */
function sealWithShell(at: string): void {
  const r = spawnSync('/bin/sh', ['-c', `${shellCheckFunctions()}\n${checkpointSealFunctions()}\ntp_seal "$0"`, at], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
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

test('in-place mode keeps earlier output so training resumes from its sealed checkpoints', () => {
  const { script, out } = setup();
  checkpoint(out, 100, { seal: true });
  const r = run(script, 'in-place', out, `test -f "${out}/checkpoint-100/trainer_state.json" && echo done > "${out}/adapter_model.safetensors"`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /training resumes from checkpoint-100/);
  // The checkpoint's four files and its seal, and the final adapter.
  assert.equal(JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8')).files, 6);
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
  checkpoint(out, 100, { seal: true });
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

/** Two finished upstream folders named by their hash, one with spaces in its path and file names. */
async function upstreams(dir: string) {
  const a = join(dir, 'artifacts', 'p', 'convert', 'a'.repeat(64));
  const b = join(dir, 'artifacts', 'p', 'fetch model', 'b'.repeat(64));
  mkdirSync(join(a, 'sub'), { recursive: true });
  writeFileSync(join(a, 'train.json'), '[]');
  writeFileSync(join(a, 'sub', 'x.json'), '{}');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'model 00001.safetensors'), 'weights');
  writeFileSync(join(b, '-config.json'), '{}');
  await completeFolder(a, { stage: 'convert', hash: 'a'.repeat(64) });
  await completeFolder(b, { stage: 'fetch-model', hash: 'b'.repeat(64) });
  return { a, b, inputs: `${a}\n${b}` };
}

test('inputs: every upstream folder is checked against its SHA256SUMS before the tool starts', async (t) => {
  await t.test('intact inputs: the tool runs', async () => {
    const { dir, script, out } = setup();
    const { inputs } = await upstreams(dir);
    const r = run(script, 'rename', out, `echo ok > "${out}.partial/x"`, { [STAGE_ENV.inputs]: inputs });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /input .*\/convert\/a{64} verified \(2 files\)/);
    assert.match(r.stdout, /input .*\/fetch model\/b{64} verified \(2 files\)/);
  });
  const corruptions: [string, (a: string, b: string) => void, RegExp][] = [
    ['a changed byte', (_a, b) => writeFileSync(join(b, 'model 00001.safetensors'), 'weightz'), /fetch model\/b{64} is corrupt: model 00001\.safetensors does not match its SHA256SUMS entry/],
    ['a truncated file', (a) => writeFileSync(join(a, 'sub', 'x.json'), ''), /convert\/a{64} is corrupt: sub\/x\.json does not match/],
    ['a missing file', (a) => rmSync(join(a, 'train.json')), /convert\/a{64} is corrupt: train\.json is missing/],
    ['an extra file', (a) => writeFileSync(join(a, 'sub', 'stray file.json'), '1'), /convert\/a{64} is corrupt: sub\/stray file\.json is not listed in SHA256SUMS/],
    ['no marker', (a) => rmSync(join(a, '.tunepipe-complete')), /convert\/a{64} is corrupt: it has no completion marker/],
    ['a marker for another hash', (a) => writeFileSync(join(a, '.tunepipe-complete'), '{"stage":"convert","hash":"other","files":2}\n'), /convert\/a{64} is corrupt: its completion marker is not for hash a{64}/],
    ['a malformed SHA256SUMS', (a) => appendFileSync(join(a, 'SHA256SUMS'), 'nonsense\n'), /convert\/a{64} is corrupt: SHA256SUMS line 3 is malformed/],
  ];
  for (const [name, corrupt, message] of corruptions) {
    await t.test(`${name}: exit ${INPUT_CORRUPT_EXIT_CODE}, naming the folder and the file; the tool never runs`, async () => {
      const { dir, script, out } = setup();
      const { a, b, inputs } = await upstreams(dir);
      corrupt(a, b);
      const r = run(script, 'rename', out, `echo ran > "${dir}/ran"`, { [STAGE_ENV.inputs]: inputs });
      assert.equal(r.code, INPUT_CORRUPT_EXIT_CODE, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Retrying cannot fix this/);
      assert.equal(existsSync(join(dir, 'ran')), false);
      assert.equal(existsSync(join(out, '.tunepipe-complete')), false);
    });
  }
});

test('a marked-complete folder that lost a file is not trusted: the stage runs again', () => {
  const { script, out } = setup();
  assert.equal(run(script, 'rename', out, `echo 1 > "${out}.partial/x"; echo 1 > "${out}.partial/y"`).code, 0);
  rmSync(join(out, 'y'));
  const again = run(script, 'rename', out, `echo 2 > "${out}.partial/x"; echo 2 > "${out}.partial/y"`);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /is marked complete but y is missing; running the stage again/);
  assert.equal(readFileSync(join(out, 'y'), 'utf8'), '2\n');
  // Names only for the stage's own folder: a changed byte is left to the stages that read it.
  writeFileSync(join(out, 'x'), 'changed');
  assert.match(run(script, 'rename', out, 'exit 1').stdout, /already complete/);
});

/** A PATH with this machine's tools but no python3: images without it take the shell's own JSON check. */
function pathWithoutPython(): string {
  const bin = mkdtempSync(join(tmpdir(), 'tunepipe-nopython-'));
  for (const dir of ['/usr/bin', '/bin']) {
    for (const name of readdirSync(dir)) {
      if (!name.startsWith('python') && !existsSync(join(bin, name))) symlinkSync(join(dir, name), join(bin, name));
    }
  }
  return bin;
}

for (const python of [true, false]) test(`in place, checkpoints are sealed once the trainer has moved past them${python ? '' : ' (no python3 in the image)'}`, () => {
  const { script, out } = setup();
  const env = python ? {} : { PATH: pathWithoutPython() };
  const save = (n: number, state = `{"global_step": ${n}}`) =>
    `mkdir -p "${out}/checkpoint-${n}"; for f in adapter_model.safetensors optimizer.pt scheduler.pt; do echo "$f ${n}" > "${out}/checkpoint-${n}/$f"; done; echo '${state}' > "${out}/checkpoint-${n}/trainer_state.json"`;
  // A trainer that saves at 10 and 20, logs step 25, and is killed; then one whose save at 30
  // left a trainer_state.json cut short.
  const first = run(script, 'in-place', out, [save(10), save(20), 'sleep 0.05', `echo '{"current_steps": 25, "total_steps": 40}' >> "${out}/trainer_log.jsonl"`, 'exit 137'].join('; '), env);
  assert.equal(first.code, 137, first.stdout + first.stderr);
  assert.match(first.stdout, /sealed checkpoint-10 \(checkpoint-20 followed it\)/);
  assert.match(first.stdout, /sealed checkpoint-20 \(training logged step 25 after it\)/);
  const seal = readFileSync(join(out, 'checkpoint-20', 'SHA256SUMS'), 'utf8');
  assert.deepEqual(seal.trim().split('\n').map((l) => l.slice(66)), ['adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt', 'trainer_state.json']);

  const second = run(script, 'in-place', out, [save(30, '{"global_step": 3'), 'sleep 0.05', `echo '{"current_steps": 35}' >> "${out}/trainer_log.jsonl"`, 'exit 1'].join('; '), env);
  assert.match(second.stdout, /training resumes from checkpoint-20/);
  assert.doesNotMatch(second.stdout, /sealed checkpoint-30/);
  assert.equal(existsSync(join(out, 'checkpoint-30', 'SHA256SUMS')), false);

  const retry = run(script, 'in-place', out, `echo final > "${out}/adapter_model.safetensors"`, env);
  assert.equal(retry.code, 0, retry.stdout + retry.stderr);
  assert.match(retry.stdout, /checkpoint-30 was never sealed/);
  assert.match(retry.stdout, /training resumes from checkpoint-20/);
});

test('in place, a checkpoint nothing followed is sealed after it stayed unchanged for the settle time', () => {
  const { script, out } = setup();
  const trainer = [
    `mkdir -p "${out}/checkpoint-10"`,
    `for f in adapter_model.safetensors optimizer.pt scheduler.pt; do echo "$f" > "${out}/checkpoint-10/$f"; done; echo '{"global_step": 10}' > "${out}/checkpoint-10/trainer_state.json"`,
    'sleep 2.5',
    'exit 1',
  ].join('; ');
  const r = run(script, 'in-place', out, trainer, { [STAGE_ENV.sealSeconds]: '1' });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /sealed checkpoint-10 \(unchanged since the last pass\)/);
  // Quick deaths seal nothing: a checkpoint written just before is not proven finished.
  const { script: script2, out: out2 } = setup();
  const quick = run(script2, 'in-place', out2, trainer.replace('sleep 2.5', 'true').replaceAll(out, out2));
  assert.equal(quick.code, 1);
  assert.equal(existsSync(join(out2, 'checkpoint-10', 'SHA256SUMS')), false);
});

test('resume: a sealed checkpoint whose bytes changed, and a garbage unsealed one, are moved aside with a note', () => {
  const { script, out } = setup();
  checkpoint(out, 10, { seal: true });
  const twenty = checkpoint(out, 20, { seal: true });
  writeFileSync(join(twenty, 'optimizer.pt'), 'bit rot');
  const thirty = checkpoint(out, 30);
  writeFileSync(join(thirty, 'trainer_state.json'), '{"global_st');
  const r = run(script, 'in-place', out, `test -d "${out}/checkpoint-10" && test ! -d "${out}/checkpoint-20" && echo ok > "${out}/adapter_model.safetensors"`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /checkpoint-30 was never sealed/);
  assert.match(r.stdout, /checkpoint-20 fails its integrity check \(optimizer\.pt does not match its SHA256SUMS entry\); moved to .*\.broken\/checkpoint-20\.\d+/);
  assert.match(r.stdout, /training resumes from checkpoint-10/);
  const aside = `${out}.broken`;
  assert.deepEqual(readdirSync(aside).map((n) => n.replace(/\.\d+$/, '')).sort(), ['checkpoint-20', 'checkpoint-30', MOVED_ASIDE_LOG].sort());
  const log = readFileSync(join(aside, MOVED_ASIDE_LOG), 'utf8');
  assert.match(log, /^\d+ checkpoint-30 -> checkpoint-30\.\d+: was never sealed/m);
  assert.match(log, /^\d+ checkpoint-20 -> checkpoint-20\.\d+: fails its integrity check/m);
  assert.equal(readFileSync(join(aside, readdirSync(aside).find((n) => n.startsWith('checkpoint-20'))!, 'optimizer.pt'), 'utf8'), 'bit rot', 'kept, not deleted');
});

test('serve wait-for-model: once the marker is there, the model folder is checked against its SHA256SUMS, naming the file', async () => {
  const { waitForMarkers } = await import('../src/pods.ts');
  const root = mkdtempSync(join(tmpdir(), 'tp wait $(x) '));
  try {
    const model = join(root, 'c'.repeat(64));
    mkdirSync(model);
    writeFileSync(join(model, 'model.safetensors'), 'weights');
    await completeFolder(model, { stage: 'quantize', hash: 'c'.repeat(64) });
    const container = waitForMarkers('wait-for-model', [join(model, '.tunepipe-complete')], 'runtime', { verify: [model] });
    const run = () =>
      spawnSync(container.command![0]!, [...container.command!.slice(1), ...container.args!], {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'], ...Object.fromEntries(container.env!.map((e) => [e.name, e.value!])) },
      });
    const ok = run();
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /verified \(1 files\)/);
    writeFileSync(join(model, 'model.safetensors'), 'weightz');
    const bad = run();
    assert.equal(bad.status, INPUT_CORRUPT_EXIT_CODE);
    assert.match(bad.stderr, /model\.safetensors does not match its SHA256SUMS entry/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function gangSetup(options: { sharded?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-gang-'));
  const script = join(dir, 'stage.sh');
  writeFileSync(script, stageScript({ gang: true, shardedCheckpoints: options.sharded === true }));
  return { dir, script, out: join(dir, 'artifacts', 'stage', 'abc') };
}

test('a gang: only node 0 moves checkpoints aside, seals and publishes; node 1 trains and leaves the folder alone', () => {
  const { script, out } = gangSetup();
  checkpoint(out, 100, { seal: true });
  checkpoint(out, 200);
  const follower = run(script, 'in-place', out, `echo rank1 > "${out}/rank1.txt"`, { NODE_RANK: '1' });
  assert.equal(follower.code, 0, follower.stdout + follower.stderr);
  assert.match(follower.stdout, /node 1 of stage merge finished; node 0 publishes/);
  assert.ok(existsSync(join(out, 'checkpoint-200')), 'node 1 moves nothing aside');
  assert.equal(existsSync(join(out, 'checkpoint-200', 'SHA256SUMS')), false, 'node 1 seals nothing');
  assert.equal(existsSync(join(out, '.tunepipe-complete')), false, 'node 1 publishes nothing');

  const lead = run(script, 'in-place', out, `echo done > "${out}/adapter_model.safetensors"`, { NODE_RANK: '0' });
  assert.equal(lead.code, 0, lead.stdout + lead.stderr);
  assert.match(lead.stdout, /checkpoint-200 was never sealed/);
  assert.match(lead.stdout, /training resumes from checkpoint-100/);
  assert.ok(existsSync(join(out, '.tunepipe-complete')));
  // A rank that restarts after node 0 published finds the stage complete.
  const late = run(script, 'in-place', out, 'exit 1', { NODE_RANK: '1' });
  assert.equal(late.code, 0);
  assert.match(late.stdout, /\(cached\)/);
});

test('a gang under TUNEPIPE_FORCE=1: node 1 neither removes the marker nor the folder', () => {
  const { script, out } = gangSetup();
  assert.equal(run(script, 'in-place', out, `echo 1 > "${out}/x"`, { NODE_RANK: '0' }).code, 0);
  const follower = run(script, 'in-place', out, 'true', { NODE_RANK: '1', TUNEPIPE_FORCE: '1' });
  assert.equal(follower.code, 0, follower.stderr);
  assert.ok(existsSync(join(out, '.tunepipe-complete')));
  assert.equal(readFileSync(join(out, 'x'), 'utf8'), '1\n');
});

test('sharded checkpoints (DeepSpeed: optimizer state in global_stepN/, `latest`) are whole without optimizer.pt', () => {
  const { script, out } = gangSetup({ sharded: true });
  const at = join(out, 'checkpoint-100');
  mkdirSync(join(at, 'global_step100'), { recursive: true });
  for (const f of ['adapter_model.safetensors', 'scheduler.pt', 'global_step100/zero_pp_rank_0_mp_rank_00_optim_states.pt']) writeFileSync(join(at, f), `${f}`);
  writeFileSync(join(at, 'latest'), 'global_step100');
  writeFileSync(join(at, 'trainer_state.json'), JSON.stringify({ global_step: 100 }));
  const r = spawnSync('/bin/sh', ['-c', `${shellCheckFunctions()}\n${checkpointSealFunctions({ sharded: true })}\ntp_seal "$0"`, at], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lead = run(script, 'in-place', out, 'true', { NODE_RANK: '0' });
  assert.equal(lead.code, 0, lead.stdout + lead.stderr);
  assert.match(lead.stdout, /training resumes from checkpoint-100/);
  // The single-pod wrapper would call the same checkpoint incomplete (no optimizer.pt).
  assert.doesNotMatch(stageScript(), /optimizer_0/);
});
