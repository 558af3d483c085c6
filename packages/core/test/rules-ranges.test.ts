import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llamaFactoryRangeIssues, RANGED_LLAMAFACTORY_KEYS } from '../src/rules/index.ts';
import { LLAMAFACTORY_ARGS } from '../src/reference/llamafactory-args.gen.ts';

const at = (key: string) => `stages.sft.args.${key}`;
const codes = (key: string, value: unknown) => llamaFactoryRangeIssues(key, value, at(key)).map((i) => `${i.code}${i.severity === 'warning' ? ' (warning)' : ''}`);

test('every ranged key is a real LLaMA-Factory argument of a numeric type', () => {
  for (const key of RANGED_LLAMAFACTORY_KEYS) {
    const spec = LLAMAFACTORY_ARGS[key];
    assert.ok(spec, `${key} is not in the argument table`);
    assert.ok(spec.type === 'int' || spec.type === 'float', `${key} is ${spec.type}`);
  }
});

test("LLaMA-Factory's own defaults are all in range", () => {
  for (const key of RANGED_LLAMAFACTORY_KEYS) {
    const d = LLAMAFACTORY_ARGS[key]!.default;
    if (typeof d !== 'number') continue;
    // export_size 5, save_steps 500, lora_dropout 0, warmup_steps 0, … none may trip the rules.
    assert.deepEqual(codes(key, d), [], `${key} default ${d}`);
  }
});

const cases: [key: string, good: unknown[], bad: unknown[]][] = [
  ['lora_rank', [1, 8, 64, 256], [0, -8]],
  ['lora_alpha', [1, 16, 128], [-16]],
  ['lora_dropout', [0, 0.05, 0.5, 0.99], [-0.1, 1, 1.5]],
  ['learning_rate', [1e-5, 2e-4, 1e-2], [0, -1e-4]],
  ['num_train_epochs', [0.5, 1, 3], [0, -1]],
  ['per_device_train_batch_size', [1, 4], [0, -2]],
  ['per_device_eval_batch_size', [1, 8], [0]],
  ['gradient_accumulation_steps', [1, 16], [0, -1]],
  ['save_steps', [1, 500, 0.25, 0.1], [0, -5, 12.5]],
  ['logging_steps', [1, 10, 0.01], [0, 2.5]],
  ['eval_steps', [50, 0.2], [0, -1, 3.3]],
  ['cutoff_len', [1, 1024, 8192], [0, -1]],
  ['max_new_tokens', [1, 512], [0]],
  ['export_quantization_maxlen', [256, 1024], [0]],
  ['export_quantization_nsamples', [1, 128], [0, -128]],
  ['max_samples', [1, 1000], [0]],
  ['warmup_steps', [0, 100], [-1]],
  ['max_grad_norm', [0.3, 1], [-1]],
  ['temperature', [0, 0.7, 1.5], [-0.1]],
  ['top_p', [0.1, 1], [0, -0.5, 1.01]],
  ['top_k', [0, 50], [-1]],
  ['num_beams', [1, 4], [0]],
  ['repetition_penalty', [1, 1.2], [0, -1]],
  ['seed', [0, 42, 2 ** 32 - 1], [-1, 2 ** 32]],
  ['adam_beta2', [0.95, 0.999], [1, -0.1]],
  ['adam_epsilon', [1e-8], [0]],
  ['weight_decay', [0, 0.01], [-0.01]],
];

for (const [key, good, bad] of cases) {
  test(`${key}: in-range values pass, out-of-range values are args.range errors`, () => {
    for (const v of good) assert.deepEqual(codes(key, v), [], `${key}: ${v}`);
    for (const v of bad) assert.deepEqual(codes(key, v), ['args.range'], `${key}: ${v}`);
  });
}

test('a range error says the valid range and how to fix it', () => {
  const [issue] = llamaFactoryRangeIssues('lora_dropout', 1, at('lora_dropout'));
  assert.equal(issue!.path, 'stages.sft.args.lora_dropout');
  assert.equal(issue!.value, 1);
  assert.match(issue!.message, /must be a number ≥ 0 and < 1/);
  assert.match(issue!.fix!, /default is 0/);

  const [steps] = llamaFactoryRangeIssues('save_steps', 12.5, at('save_steps'));
  assert.match(steps!.message, /must be an integer if bigger than 1/);
  assert.match(steps!.fix!, /use 13 \(steps\) or a ratio/);

  const [alpha] = llamaFactoryRangeIssues('lora_alpha', 0, at('lora_alpha'));
  assert.equal(alpha!.code, 'args.range');
  assert.match(alpha!.message, /becomes 2 × lora_rank/);
});

test('NaN and Infinity are range errors on every numeric key, shown as text', () => {
  for (const key of ['learning_rate', 'lora_rank', 'num_train_epochs', 'ddp_timeout', 'warmup_ratio']) {
    for (const v of [NaN, Infinity, -Infinity]) {
      const issues = llamaFactoryRangeIssues(key, v, at(key));
      assert.deepEqual(issues.map((i) => i.code), ['args.range'], `${key}: ${v}`);
      assert.equal(issues[0]!.value, String(v), 'JSON would print NaN as null');
    }
  }
  // A string key or an unknown key is not a number's place: the type check and args.unknown speak.
  assert.deepEqual(llamaFactoryRangeIssues('template', NaN, at('template')), []);
  assert.deepEqual(llamaFactoryRangeIssues('not_a_key', NaN, at('not_a_key')), []);
});

test('wrong types and fractional integers are left to the type check', () => {
  assert.deepEqual(codes('lora_rank', '8'), []);
  assert.deepEqual(codes('lora_rank', 8.5), []);
  assert.deepEqual(codes('learning_rate', '2e-4'), []);
  assert.deepEqual(codes('save_steps', undefined), []);
});

test('unusual values are warnings', () => {
  assert.deepEqual(codes('lora_rank', 512), ['args.unusual (warning)']);
  assert.deepEqual(codes('learning_rate', 0.05), ['args.unusual (warning)']);
  // The warning is about LoRA; a full fine-tune's rate is its own business.
  assert.deepEqual(llamaFactoryRangeIssues('learning_rate', 0.05, at('learning_rate'), { finetuningType: 'full' }), []);
  // The Trainer clips only when max_grad_norm > 0: 0 is allowed but turns clipping off.
  assert.deepEqual(codes('max_grad_norm', 0), ['args.unusual (warning)']);
});

test('export_size keeps the codes check() has always used', () => {
  assert.deepEqual(codes('export_size', 5), []);
  assert.deepEqual(codes('export_size', 0), ['export.size-zero (warning)']);
  assert.deepEqual(codes('export_size', 2.5), ['export.size']);
  assert.deepEqual(codes('export_size', -1), ['export.size']);
  assert.deepEqual(codes('export_size', '4GB'), ['export.size']);
  assert.deepEqual(codes('export_size', NaN), ['export.size']);
  assert.equal(llamaFactoryRangeIssues('export_size', 2.5, 'stages.merge.args.export_size')[0]!.path, 'stages.merge.args.export_size');
});
