import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogProgressParser, parseClock, parseLog } from '../src/progress/parse.ts';
import { parsePythonDict } from '../src/progress/python-literal.ts';
import { SEED_TRAIN_LOG } from './helpers.ts';

const SEED = `${SEED_TRAIN_LOG.join('\n')}\n`;

test('the seed log: step/total, loss, lr, epoch, tokens/s, ETA, checkpoints and final metrics', () => {
  const p = parseLog(SEED);
  assert.equal(p.totalSteps, 300);
  assert.equal(p.numExamples, 481);
  assert.equal(p.numEpochs, 10);
  assert.deepEqual(
    { current: p.training?.current, total: p.training?.total, elapsed: p.training?.elapsedSeconds },
    { current: 300, total: 300, elapsed: 25 * 60 + 30 },
  );
  assert.equal(p.numbers.loss, 0.448);
  assert.equal(p.numbers.learningRate, 1.3707658621964215e-9);
  assert.equal(p.numbers.epoch, 9.7);
  assert.equal(p.numbers.tokensPerSecond, 1840.12);
  assert.equal(p.numbers.tokensSeen, 2812704);
  assert.equal(p.numbers.evalLoss, 1.0198612213134766);
  assert.match(p.lastCheckpoint ?? '', /checkpoint-300$/);
  assert.deepEqual(p.trainSummary, { runtimeSeconds: 1530.1399, loss: 0.7139853564898173 });
  assert.deepEqual(p.metrics['train'], {
    epoch: 9.6971,
    num_input_tokens_seen: 2812704,
    total_flos: '118286078GF',
    train_loss: 0.714,
    train_runtime: '0:25:30.13',
    train_samples_per_second: 3.144,
    train_steps_per_second: 0.196,
  });
});

test('progress mid-run: the tqdm bar and the callback dict on the same physical line', () => {
  const upTo = SEED_TRAIN_LOG.findIndex((l) => l.includes(' 15/300 '));
  const p = parseLog(`${SEED_TRAIN_LOG.slice(0, upTo + 1).join('\n')}\n`);
  assert.equal(p.training?.current, 15);
  assert.equal(p.training?.etaSeconds, 23 * 60 + 44);
  assert.equal(p.training?.secondsPerItem, 5);
  assert.equal(p.numbers.loss, 1.1926);
  assert.equal(p.numbers.learningRate, 4.9732e-5);
  assert.equal(p.numbers.epoch, 0.5);
  assert.equal(p.numbers.tokensPerSecond, 1844.52);
});

test('chunks split anywhere give the same result as the whole log', () => {
  const whole = parseLog(SEED);
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 20; round++) {
    const parser = new LogProgressParser();
    let at = 0;
    while (at < SEED.length) {
      const size = 1 + Math.floor(random() * 200);
      parser.push(SEED.slice(at, at + size));
      at += size;
    }
    parser.end();
    assert.deepEqual(parser.progress, whole, `round ${round}`);
  }
});

test('tqdm redraws with carriage returns, several bars on one line: the last one wins', () => {
  const parser = new LogProgressParser();
  parser.push('[INFO] >>   Total optimization steps = 300\n');
  parser.push(' 40%|████      | 119/300 [10:07<16:19,  5.41s/it] 40%|████      | 120/300 [10:14<17:00,  5.67s/it]');
  assert.equal(parser.progress.training?.current, 120, 'a bar without a newline yet is read');
  parser.push('\r 40%|████      | 121/300 [10:19<16:10,  5.42s/it]\r');
  assert.equal(parser.progress.training?.current, 121);
});

test('labelled bars are phases; unlabelled bars with another total are not the training bar', () => {
  const p = parseLog(
    [
      'Running tokenizer on dataset (num_proc=16): 100%|██████| 491/491 [00:03<00:00, 147.00 examples/s]',
      '[INFO] >>   Total optimization steps = 300',
      ' 33%|███▎      | 100/300 [08:26<17:17,  5.19s/it]',
      '100%|██████████| 5/5 [00:00<00:00,  6.60it/s]',
      'Loading checkpoint shards:  50%|█████     | 2/4 [00:01<00:01,  1.47it/s]',
    ].join('\n') + '\n',
  );
  assert.equal(p.training?.current, 100);
  assert.deepEqual({ label: p.phase?.label, current: p.phase?.current, total: p.phase?.total }, { label: 'Loading checkpoint shards', current: 2, total: 4 });
  assert.ok(Math.abs((p.phase?.secondsPerItem ?? 0) - 1 / 1.47) < 1e-9);
});

test('resume, errors and predict metrics are picked up', () => {
  const p = parseLog(
    [
      '[INFO|2025-04-30 23:30:00] llamafactory.hparams.parser:401 >> Resuming training from /artifacts/p/sft/abc/checkpoint-100.',
      'Traceback (most recent call last):',
      'ValueError: Template llama does not exist.',
      '***** predict metrics *****',
      '  predict_bleu-4           =     41.2',
      '  predict_rouge-l          =     52.3',
      'done',
    ].join('\n') + '\n',
  );
  assert.equal(p.resumedFrom, '/artifacts/p/sft/abc/checkpoint-100');
  assert.equal(p.lastError, 'ValueError: Template llama does not exist.');
  assert.deepEqual(p.metrics['predict'], { 'predict_bleu-4': 41.2, 'predict_rouge-l': 52.3 });
  assert.equal(p.lastLine, 'done');
});

test('Python dict literals: quotes, exponents, True/False/None, nan, nested dicts', () => {
  assert.deepEqual(parsePythonDict("{'loss': 1.4229, 'learning_rate': 4.9978e-05, 'epoch': 0.17}")?.value, {
    loss: 1.4229,
    learning_rate: 4.9978e-5,
    epoch: 0.17,
  });
  const v = parsePythonDict(`{'a': True, 'b': None, "c": 'it\\'s', 'd': [1, (2, 3)], 'e': {'f': -inf}, 'g': nan}`)?.value;
  assert.equal(v?.['a'], true);
  assert.equal(v?.['b'], null);
  assert.equal(v?.['c'], "it's");
  assert.deepEqual(v?.['d'], [1, [2, 3]]);
  assert.deepEqual(v?.['e'], { f: Number.NEGATIVE_INFINITY });
  assert.ok(Number.isNaN(v?.['g']));
  assert.equal(parsePythonDict("{'loss': }"), undefined);
  assert.equal(parsePythonDict('not a dict'), undefined);
  // The seed's model card line: nested dict, no numbers the parser cares about.
  assert.deepEqual(parseLog("{'task': {'name': 'Causal Language Modeling', 'type': 'text-generation'}}\n").numbers, {});
});

test('parseClock', () => {
  assert.equal(parseClock('23:44'), 23 * 60 + 44);
  assert.equal(parseClock('1:02:03'), 3723);
  assert.equal(parseClock('0:25:30.13'), 1530.13);
  assert.equal(parseClock('?'), undefined);
});

test('the pod wrapper moving an untrusted checkpoint aside at resume: parsed from its real output, worded as local status words it', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { checkpointRepairScript, writeSha256Sums } = await import('@tunepipe/core');
  const { formatCheckpointResume, formatStageLine } = await import('../src/progress/format.ts');
  const root = mkdtempSync(join(tmpdir(), 'tp-resume '));
  try {
    const out = join(root, 'sft');
    for (const step of [100, 200]) {
      const dir = join(out, `checkpoint-${step}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ global_step: step }));
      for (const f of ['adapter_model.safetensors', 'optimizer.pt', 'scheduler.pt']) writeFileSync(join(dir, f), `${f} ${step}`);
    }
    await writeSha256Sums(join(out, 'checkpoint-100'));
    const r = spawnSync('/bin/sh', ['-c', checkpointRepairScript()], { encoding: 'utf8', env: { PATH: process.env['PATH'], work: out } });
    assert.equal(r.status, 0, r.stderr);
    const p = parseLog(`some trainer line\n${r.stdout}{'loss': 0.5, 'epoch': 1.0}\n`);
    assert.deepEqual(p.checkpointResume, {
      resumeFrom: 'checkpoint-100',
      movedAside: [{ name: 'checkpoint-200', reason: 'was never sealed (its save was not confirmed finished)' }],
      aside: `${out}.broken`,
    });
    assert.equal(
      formatCheckpointResume(p.checkpointResume!),
      `resumed from checkpoint-100: checkpoint-200 was never sealed (its save was not confirmed finished); moved to ${out}.broken/`,
    );
    const line = formatStageLine({ stage: 'sft', kind: 'sft', hash: 'h', status: 'running', attempts: 2, preemptions: 1, expectedSeconds: 60, progress: p }, { nameWidth: 8, bar: false, now: 0 });
    assert.match(line, /\(checkpoint-200 not trusted; resumed from checkpoint-100\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('wrapper resume lines: nothing moved is no note; a later start replaces an earlier one; a start over says so', () => {
  assert.equal(parseLog('tunepipe: training resumes from checkpoint-300\n').checkpointResume, undefined);
  const twice = parseLog(
    [
      'tunepipe: checkpoint-400 is incomplete (missing optimizer.pt); moved to /a/b c.broken/checkpoint-400.1700000000',
      'tunepipe: training resumes from checkpoint-300',
      'tunepipe: checkpoint-300 fails its integrity check (adapter_model.safetensors does not match its SHA256SUMS entry); moved to /a/b c.broken/checkpoint-300.1700000100',
      'tunepipe: adapter_model.safetensors is the weights of an unfinished save with no checkpoint to resume from; moved to /a/b c.broken/adapter_model.safetensors.1700000100',
      'tunepipe: no checkpoint to resume from; training starts from step 0',
      '',
    ].join('\n'),
  );
  assert.deepEqual(twice.checkpointResume, {
    movedAside: [
      { name: 'checkpoint-300', reason: 'fails its integrity check (adapter_model.safetensors does not match its SHA256SUMS entry)' },
      { name: 'adapter_model.safetensors', reason: 'is the weights of an unfinished save with no checkpoint to resume from' },
    ],
    aside: '/a/b c.broken',
  });
  const clean = parseLog('tunepipe: checkpoint-400 was never sealed (x); moved to /o.broken/checkpoint-400.1\ntunepipe: training resumes from checkpoint-300\ntunepipe: training resumes from checkpoint-500\n');
  assert.equal(clean.checkpointResume, undefined, 'a later start that moved nothing is the current state');
});

test('cluster status prints a checkpoint: line for a stage whose pod did not trust its newest checkpoint', async () => {
  const { formatStatus } = await import('../src/cluster/inspect.ts');
  const progress = parseLog('tunepipe: checkpoint-400 was never sealed (its save was not confirmed finished); moved to /artifacts/p/sft/abc.broken/checkpoint-400.17\ntunepipe: training resumes from checkpoint-300\n');
  const text = formatStatus('p', 'ns', [{ stage: 'sft', kind: 'sft', hash: 'abc', status: 'running', attempts: 2, preemptions: 1, expectedSeconds: 60, progress }], 0);
  assert.match(text, /\ncheckpoint: sft: resumed from checkpoint-300: checkpoint-400 was never sealed \(its save was not confirmed finished\); moved to \/artifacts\/p\/sft\/abc\.broken\/$/);
});
