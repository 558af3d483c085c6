import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VLLM_MAX_LORA_RANKS, vllmNumber, vllmValueIssues } from '../src/rules/index.ts';
import { VLLM_SERVE_FLAGS } from '../src/reference/vllm-serve-flags.gen.ts';

const pathOf = (flag: string) => `stages.serve.args.${flag}`;
const check = (flags: Record<string, unknown>, contextTokens?: number) => vllmValueIssues(flags, contextTokens === undefined ? {} : { contextTokens }, pathOf);
const codes = (flags: Record<string, unknown>, contextTokens?: number) => check(flags, contextTokens).map((i) => i.code);

test('the compiled defaults and typical serve options pass', () => {
  assert.deepEqual(
    codes(
      {
        '--served-model-name': 'llama3-fintech',
        '--port': 8000,
        '--max-model-len': 8192,
        '--gpu-memory-utilization': 0.9,
        '--max-num-seqs': 64,
        '--tensor-parallel-size': 2,
        '--enable-lora': true,
        '--max-lora-rank': 64,
        '--max-loras': 4,
        '--max-cpu-loras': 8,
        '--dtype': 'bfloat16',
        '--enforce-eager': false,
        '--swap-space': 0,
        '--block-size': 16,
        '--rope-scaling': '{"rope_type": "dynamic", "factor": 2.0}',
        '--lora-modules': ['a=/adapters/a'],
        '--cuda-graph-sizes': ['1', '2', '4'],
      },
      8192,
    ),
    [],
  );
});

test('numbers must be numbers argparse reads', () => {
  const issues = check({ '--gpu-memory-utilization': 'most', '--max-num-seqs': 2.5, '--port': true, '--max-model-len': '8k tokens' });
  assert.deepEqual(issues.map((i) => [i.path, i.code]), [
    ['stages.serve.args.--gpu-memory-utilization', 'vllm.type'],
    ['stages.serve.args.--max-num-seqs', 'vllm.type'],
    ['stages.serve.args.--port', 'vllm.type'],
    ['stages.serve.args.--max-model-len', 'vllm.type'],
  ]);
  assert.match(issues[1]!.message, /takes an integer; got number 2\.5/);
  assert.match(issues[3]!.message, /or a size such as '32k'/);
  // Text argparse reads as the number passes, and is range-checked as that number.
  assert.deepEqual(codes({ '--max-num-seqs': '64', '--gpu-memory-utilization': '0.85', '--max-model-len': '8k' }, 8192), []);
  assert.deepEqual(codes({ '--max-model-len': '32K' }, 8192), ['vllm.range']);
});

test("vllmNumber reads a value as vLLM's argparse does", () => {
  assert.equal(vllmNumber('--max-model-len', '32k'), 32000);
  assert.equal(vllmNumber('max_model_len', '32K'), 32768);
  assert.equal(vllmNumber('--max-model-len', '25.6k'), 25600);
  assert.equal(vllmNumber('--max-model-len', '1.5K'), undefined, 'vLLM refuses decimals with binary suffixes');
  assert.equal(vllmNumber('--max-num-seqs', '32k'), undefined, 'only the human-readable flags take suffixes');
  assert.equal(vllmNumber('--max-num-seqs', ' 64 '), 64);
  assert.equal(vllmNumber('--gpu-memory-utilization', '9e-1'), 0.9);
  assert.equal(vllmNumber('--gpu-memory-utilization', 0.9), 0.9);
});

test('switches take booleans', () => {
  assert.deepEqual(codes({ '--enable-lora': 'yes', '--trust-remote-code': 1, '--headless': 'true' }), ['vllm.type', 'vllm.type', 'vllm.type']);
  // A Python bool() flag would read the text 'false' as True.
  const [bool] = check({ '--guided-decoding-disable-fallback': 'false' });
  assert.equal(bool!.code, 'vllm.type');
  assert.match(bool!.message, /"false" would mean true/);
});

test('strings, lists and JSON are checked by their declared type', () => {
  assert.deepEqual(codes({ '--dtype': true }), ['vllm.type']);
  assert.deepEqual(codes({ '--lora-modules': [1, 2] }), ['vllm.type']);
  assert.deepEqual(codes({ '--rope-scaling': '{rope_type: dynamic}' }), ['vllm.type']);
  assert.deepEqual(codes({ '--rope-scaling': { rope_type: 'dynamic' } }), ['vllm.type']);
  assert.deepEqual(codes({ '--cuda-graph-sizes': ['1', 'two'] }), ['vllm.type']);
});

test('ranges: utilisation, counts, port', () => {
  const cases: [string, unknown[], unknown[]][] = [
    ['--gpu-memory-utilization', [0.1, 0.9, 1], [0, -0.5, 1.1, 90]],
    ['--max-num-seqs', [1, 256], [0, -1]],
    ['--tensor-parallel-size', [1, 8], [0]],
    ['--max-model-len', [1, 4096], [0, -1]],
    ['--port', [1, 8000, 65535], [0, 65536, 70000]],
    ['--max-loras', [1], [0]],
    ['--swap-space', [0, 4], [-1]],
  ];
  for (const [flag, good, bad] of cases) {
    for (const v of good) assert.deepEqual(codes({ [flag]: v }), [], `${flag} ${v}`);
    for (const v of bad) assert.deepEqual(codes({ [flag]: v }), ['vllm.range'], `${flag} ${v}`);
  }
  const [issue] = check({ '--gpu-memory-utilization': 90 });
  assert.match(issue!.message, /must be a number > 0 and ≤ 1/);
  assert.match(issue!.fix!, /> 0 and ≤ 1/);
});

test('NaN and Infinity are range errors, shown as text', () => {
  for (const v of [NaN, Infinity, 'inf', 'nan']) {
    const issues = check({ '--gpu-memory-utilization': v });
    assert.deepEqual(issues.map((i) => i.code), ['vllm.range'], String(v));
    assert.equal(typeof issues[0]!.value, 'string');
  }
  assert.deepEqual(codes({ '--max-num-seqs': Infinity }), ['vllm.range']);
});

test("--max-model-len against the model's context, through every spelling", () => {
  for (const key of ['--max-model-len', 'max_model_len', 'max-model-len']) {
    const issues = check({ [key]: 16384 }, 8192);
    assert.deepEqual(issues.map((i) => [i.code, i.path]), [['vllm.range', `stages.serve.args.${key}`]], key);
    assert.match(issues[0]!.message, /longer than the model's context \(8192 tokens\)/);
    assert.equal(issues[0]!.fix, 'use at most 8192');
  }
  assert.deepEqual(codes({ max_model_len: 8192 }, 8192), []);
  assert.deepEqual(codes({ max_model_len: 16384 }), [], 'without a known context only the lower bound applies');
  assert.deepEqual(codes({ max_model_len: '9k' }, 8192), ['vllm.range']);
});

test('two spellings of one flag are a duplicate', () => {
  const issues = check({ max_model_len: 4096, '--max-model-len': 8192, '-tp': 2, '--tensor-parallel-size': 2 });
  assert.deepEqual(issues.map((i) => [i.code, i.path]), [
    ['vllm.duplicate', 'stages.serve.args.--max-model-len'],
    ['vllm.duplicate', 'stages.serve.args.--tensor-parallel-size'],
  ]);
});

test("--max-lora-rank must be one of vLLM 0.11.0's ranks", () => {
  assert.deepEqual([...VLLM_MAX_LORA_RANKS], [8, 16, 32, 64, 128, 256, 320, 512]);
  assert.equal(VLLM_SERVE_FLAGS['--max-lora-rank']!.default, 16, 'the default is one of them');
  for (const r of VLLM_MAX_LORA_RANKS) assert.deepEqual(codes({ '--max-lora-rank': r }), []);
  const [issue] = check({ max_lora_rank: 24 });
  assert.equal(issue!.code, 'vllm.range');
  assert.match(issue!.message, /accepts --max-lora-rank 8, 16, 32, 64, 128, 256, 320, 512 only/);
  assert.match(issue!.fix!, /use 32/);
  assert.match(check({ '--max-lora-rank': 1024 })[0]!.fix!, /use 512/);
  assert.deepEqual(codes({ '--max-lora-rank': 4 }), ['vllm.range']);
});

test('numeric choices and cross-flag limits', () => {
  assert.deepEqual(codes({ '--block-size': 7 }), ['vllm.choice']);
  assert.deepEqual(codes({ '--block-size': '32' }), []);
  assert.deepEqual(codes({ '--max-num-batched-tokens': 32, '--max-num-seqs': 64 }), ['vllm.range']);
  assert.deepEqual(codes({ '--max-num-batched-tokens': '8k', '--max-num-seqs': 64 }), []);
  assert.deepEqual(codes({ '--max-cpu-loras': 2, '--max-loras': 4 }), ['vllm.range']);
});

test('unknown flags are left to vllm.unknown', () => {
  assert.deepEqual(codes({ '--max-modle-len': 'x' }), []);
});
