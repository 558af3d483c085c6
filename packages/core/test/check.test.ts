import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check, compile, CheckError, definePipeline, formatIssues, LLAMA3_8B, PINS, type Issue, type Pipeline } from '../src/index.ts';
import { context, fakeSource, seedPipeline } from './fixtures.ts';

function issuesOf(pipeline: Pipeline, ctx = context): Issue[] {
  return check(pipeline, ctx);
}

function only(issues: Issue[], code: string): Issue {
  const found = issues.filter((i) => i.code === code);
  assert.equal(found.length, 1, `expected one ${code} issue, got:\n${formatIssues(issues)}`);
  return found[0]!;
}

/** A valid pipeline whose stages can be bent one at a time. */
function bent(edit: { merge?: Record<string, unknown>; sft?: Record<string, unknown>; quantize?: Record<string, unknown>; serve?: Record<string, unknown>; model?: Record<string, unknown>; convert?: Record<string, unknown>; name?: string }): Pipeline {
  return definePipeline({ name: edit.name ?? 'bent' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B, ...(edit.model as object) });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, calibration: { nsamples: 128, maxlen: 1024 }, ...(edit.convert as object) });
    // A checkpoint per quarter of the run: the default (every 500 steps) never saves on this short run.
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 }, ...(edit.sft as object) });
    const merged = p.merge({ adapter, ...(edit.merge as object) });
    const quantized = p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4 }, ...(edit.quantize as object) });
    p.serve({ model: quantized, ...(edit.serve as object) });
  });
}

test('the seed pipeline checks clean', () => {
  // The fixture requires an evaluation without a gate: worth a warning, not an error.
  assert.deepEqual(issuesOf(seedPipeline()).map((i) => [i.code, i.severity]), [['serve.ungated', 'warning']]);
  assert.deepEqual(issuesOf(bent({})), []);
});

test("the seed's own merge settings fail with both problems named", () => {
  // Written as the seed writes it: a YAML or JavaScript user is not stopped by the types.
  const pipeline = seedPipeline({ merge: { template: 'llama', export_device: 'cuda' as never } });
  assert.throws(
    () => compile(pipeline, context),
    (error: unknown) => {
      assert.ok(error instanceof CheckError);
      const codes = error.issues.map((i) => i.code).sort();
      assert.deepEqual(codes, ['export.device', 'export.template']);
      assert.match(error.message, /stages\.merge\.args\.template: the template is the one the model was trained with \('llama3'\)/);
      assert.match(error.message, /stages\.merge\.args\.export_device: export_device is 'cpu' or 'auto'; 'cuda' is not a value/);
      return true;
    },
  );
});

const cases: Array<{ code: string; pipeline: () => Pipeline; path: string; message: RegExp; fix?: RegExp; ctx?: typeof context }> = [
  { code: 'name.dns', pipeline: () => bent({ name: 'Seed_Pipeline' }), path: 'pipeline.name', message: /is not a DNS-1123 label/, fix: /use 'seed-pipeline'/ },
  { code: 'name.length', pipeline: () => bent({ name: 'x'.repeat(44) }), path: 'stages.fetch-model.name', message: /Job name would be 65 characters; Kubernetes allows 63/ },
  { code: 'image.unpinned', pipeline: () => bent({ sft: { image: 'hiyouga/llamafactory:latest' } }), path: 'stages.sft.image', message: /image is not pinned/ },
  { code: 'template.unknown', pipeline: () => bent({ model: { template: 'llama-3' } }), path: 'stages.fetch-model.template', message: /LLaMA-Factory has no template 'llama-3'/, fix: /^did you mean 'llama3' or/ },
  { code: 'dataset.missing', pipeline: () => bent({ convert: { sources: ['identty'] } }), path: 'stages.convert.sources[0]', message: /no dataset source 'identty'/, fix: /did you mean 'identity'/ },
  { code: 'dataset.too-large', pipeline: () => bent({}), ctx: { datasets: { identity: { ...fakeSource('identity'), files: [{ path: 'big.json', sha256: 'f'.repeat(64), size: 5e6, gzipBase64: 'A'.repeat(1_000_000) }] } } }, path: 'datasets/identity/big.json', message: /over the 900 KiB a ConfigMap may carry/, fix: /upload it once under its digest/ },
  { code: 'sft.overwrite', pipeline: () => bent({ sft: { extraArgs: { overwrite_output_dir: true } } }), path: 'stages.sft.extraArgs.overwrite_output_dir', message: /would throw away its checkpoints/ },
  { code: 'sft.precision', pipeline: () => bent({ sft: { args: { cutoff_len: 1024, bf16: true, fp16: true } } }), path: 'stages.sft.args', message: /bf16 and fp16 are mutually exclusive/ },
  { code: 'sft.cutoff-context', pipeline: () => bent({ sft: { args: { cutoff_len: 16384 } }, convert: { cutoffLen: 16384 } }), path: 'stages.sft.args.cutoff_len', message: /longer than the model's context \(8192 tokens\)/ },
  { code: 'sft.cutoff-mismatch', pipeline: () => bent({ sft: { args: { cutoff_len: 2048 } } }), path: 'stages.sft.args.cutoff_len', message: /filters rows at cutoffLen 1024, training truncates at 2048/ },
  { code: 'args.unknown', pipeline: () => bent({ sft: { extraArgs: { lora_rnak: 16 } } }), path: 'stages.sft.extraArgs.lora_rnak', message: /llamafactory-cli train has no argument 'lora_rnak'/, fix: /did you mean 'lora_rank'/ },
  { code: 'args.choice', pipeline: () => bent({ sft: { args: { cutoff_len: 1024, lr_scheduler_type: 'cosine_annealing' } } }), path: 'stages.sft.args.lr_scheduler_type', message: /is not one of "linear", "cosine"/ },
  { code: 'args.type', pipeline: () => bent({ sft: { args: { cutoff_len: 1024, lora_rank: '8' } } }), path: 'stages.sft.args.lora_rank', message: /must be an integer \(int\)/ },
  { code: 'args.warmup-ratio', pipeline: () => bent({ sft: { extraArgs: { warmup_ratio: 1.5 } } }), path: 'stages.sft.extraArgs.warmup_ratio', message: /must lie in range \[0,1\]/, fix: /between 0 and 1/ },
  { code: 'args.derived', pipeline: () => bent({ sft: { extraArgs: { output_dir: '/tmp/x' } } }), path: 'stages.sft.extraArgs.output_dir', message: /output_dir is derived from the stage's handles/ },
  { code: 'args.training-key', pipeline: () => bent({ merge: { extraArgs: { bf16: true } } }), path: 'stages.merge.extraArgs.bf16', message: /llamafactory-cli export accepts no training keys/ },
  { code: 'export.device', pipeline: () => bent({ merge: { args: { export_device: 'cuda' } } }), path: 'stages.merge.args.export_device', message: /'cuda' is not a value/ },
  { code: 'export.size', pipeline: () => bent({ merge: { args: { export_size: 4.5 } } }), path: 'stages.merge.args.export_size', message: /shard size in whole GB/ },
  { code: 'export.template', pipeline: () => bent({ merge: { args: { template: 'llama2' } as never } }), path: 'stages.merge.args.template', message: /the one the model was trained with \('llama3'\)/ },
  { code: 'quantize.bits', pipeline: () => bent({ quantize: { args: { export_quantization_bit: 5 } } }), path: 'stages.quantize.args.export_quantization_bit', message: /GPTQ supports 2, 3, 4 or 8 bits/ },
  { code: 'quantize.adapter', pipeline: () => bent({ quantize: { extraArgs: { adapter_name_or_path: '/x' } } }), path: 'stages.quantize.extraArgs.adapter_name_or_path', message: /Please merge adapters before quantizing the model/ },
  { code: 'quantize.calibration-size', pipeline: () => bent({ quantize: { args: { export_quantization_bit: 4, export_quantization_maxlen: 2048 } } }), path: 'stages.convert.calibration', message: /quantize draws 128 windows of 2048 tokens/ },
  { code: 'secret.literal', pipeline: () => bent({ sft: { extraArgs: { hf_hub_token: 'hf_abc' } } }), path: 'stages.sft.extraArgs.hf_hub_token', message: /secret written as a literal/ },
  { code: 'vllm.unknown', pipeline: () => bent({ serve: { args: { 'max-model-length': 4096 } } }), path: 'stages.serve.args.max-model-length', message: /vllm serve has no flag --max-model-length/, fix: /did you mean '--max-model-len'/ },
  { code: 'vllm.quantization', pipeline: () => bent({ serve: { args: { quantization: 'gptq' } } }), path: 'stages.serve.args.quantization', message: /forcing 'gptq' disables the faster Marlin kernels/ },
  { code: 'vllm.derived', pipeline: () => bent({ serve: { args: { port: 9000 } } }), path: 'stages.serve.args.port', message: /--port is set by tunepipe/ },
  { code: 'vllm.derived', pipeline: () => bent({ serve: { args: { '-tp': 4 } } }), path: 'stages.serve.args.-tp', message: /--tensor-parallel-size is set by tunepipe/ },
  { code: 'vllm.choice', pipeline: () => bent({ serve: { args: { dtype: 'bf16' } } }), path: 'stages.serve.args.dtype', message: /is not one of auto, bfloat16/ },
  { code: 'vllm.range', pipeline: () => bent({ serve: { maxModelLen: 32768 } }), path: 'stages.serve.maxModelLen', message: /longer than the model's context \(8192 tokens\)/ },
  { code: 'vllm.range', pipeline: () => bent({ serve: { gpuMemoryUtilization: 1.5 } }), path: 'stages.serve.gpuMemoryUtilization', message: /must be a number > 0 and ≤ 1/ },
  { code: 'resources.gpus', pipeline: () => bent({ sft: { resources: { gpus: 0.5 } } }), path: 'stages.sft.resources.gpus', message: /whole number of GPUs/ },
];

for (const c of cases) {
  test(`check ${c.code}: ${c.path}`, () => {
    const issue = only(issuesOf(c.pipeline(), c.ctx ?? context), c.code);
    assert.equal(issue.path, c.path);
    assert.match(issue.message, c.message);
    if (c.fix) assert.match(issue.fix ?? '', c.fix);
  });
}

test('warmup_ratio is valid for the pinned transformers 4.57 and only warned about (transformers 5 deprecates it)', () => {
  const issue = only(issuesOf(bent({ sft: { extraArgs: { warmup_ratio: 0.1 } } })), 'args.warmup-ratio');
  assert.equal(issue.severity, 'warning');
  assert.ok(issue.message.startsWith(`works with the pinned transformers ${PINS.python.transformers}, but transformers 5 deprecates`), issue.message);
  assert.match(issue.fix ?? '', /use warmup_steps/);
  assert.equal(only(issuesOf(bent({ sft: { extraArgs: { warmup_ratio: -0.1 } } })), 'args.warmup-ratio').severity ?? 'error', 'error');
});

test('check model.revision warns on a branch and compile still succeeds', () => {
  const pipeline = bent({ model: { revision: 'main' } });
  const issue = only(issuesOf(pipeline), 'model.revision');
  assert.equal(issue.severity, 'warning');
  assert.doesNotThrow(() => compile(pipeline, context));
});

test('an SFT run that would write no checkpoint before its end is a warning naming its step count', () => {
  // 150 rows less the validation and test splits, batch 2, accumulation 8, 10 epochs: 80 optimizer steps.
  const withRows = { datasets: { identity: { ...fakeSource('identity'), stats: { rows: 150, meanTokens: 200, maxTokens: 600 } } } };
  const sft = (saveSteps: number) => ({ args: { cutoff_len: 1024, num_train_epochs: 10, per_device_train_batch_size: 2, gradient_accumulation_steps: 8, save_steps: saveSteps } });
  const issue = only(issuesOf(bent({ sft: sft(100) }), withRows), 'sft.no-checkpoint');
  assert.equal(issue.severity, 'warning');
  assert.equal(issue.path, 'stages.sft.args.save_steps');
  assert.match(issue.message, /80 optimizer steps/);
  assert.match(issue.fix ?? '', /at most 20\b/);
  assert.doesNotThrow(() => compile(bent({ sft: sft(100) }), withRows), 'a warning does not stop compile');
  for (const ok of [20, 79, 0.25]) {
    assert.deepEqual(issuesOf(bent({ sft: sft(ok) }), withRows).filter((i) => i.code === 'sft.no-checkpoint'), [], `save_steps ${ok}`);
  }
  assert.equal(only(issuesOf(bent({ sft: sft(80) }), withRows), 'sft.no-checkpoint').value, 80, 'a save at the last step is no checkpoint before the end');
});

test('secret literals are never echoed in issues', () => {
  const issues = issuesOf(bent({ sft: { extraArgs: { hf_hub_token: 'hf_supersecret' } }, serve: { args: { 'api-key': 'sk-supersecret' } } }));
  const text = formatIssues(issues);
  assert.equal(issues.filter((i) => i.code === 'secret.literal').length, 2);
  assert.doesNotMatch(text, /supersecret/);
});

test('quantizing an adapter (a JavaScript user bypassing types) is caught', () => {
  const pipeline = definePipeline({ name: 'js' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, calibration: { nsamples: 128, maxlen: 1024 } });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024 } });
    p.quantize({ model: adapter as never, calibration: data.calibration, args: { export_quantization_bit: 4 } });
  });
  const issue = only(issuesOf(pipeline), 'quantize.input');
  assert.match(issue.message, /GPTQ quantizes a merged model only/);
});

test('serving a LoRA adapter (types bypassed) names merge; serving a full fine-tune checks clean', () => {
  const served = (finetuning_type: 'lora' | 'full') => definePipeline({ name: 'js' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const model = p.sft({ model: base, train: data.train, args: { finetuning_type, cutoff_len: 1024, save_steps: 0.25 } });
    p.serve({ model: model as never });
  });
  const issue = only(issuesOf(served('lora')), 'serve.input');
  assert.equal(issue.path, 'stages.serve.model');
  assert.match(issue.fix!, /p\.merge/);
  assert.deepEqual(issuesOf(served('full')).filter((i) => i.severity !== 'warning'), []);
});

test('every issue is reported at once, not just the first', () => {
  const pipeline = bent({ sft: { extraArgs: { lora_rnak: 16, warmup_ratio: 0.1 } }, merge: { args: { export_device: 'cuda', export_size: -1 } }, serve: { args: { quantization: 'gptq' } } });
  const codes = issuesOf(pipeline).map((i) => i.code).sort();
  assert.deepEqual(codes, ['args.unknown', 'args.warmup-ratio', 'export.device', 'export.size', 'vllm.quantization']);
});

test('a duplicated stage name is reported with a fix', () => {
  const pipeline = definePipeline({ name: 'dup' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024 } });
    p.evaluate({ model: adapter, data: data.test });
    p.evaluate({ model: base, data: data.test });
  });
  const issue = only(issuesOf(pipeline), 'stage.duplicate');
  assert.match(issue.fix ?? '', /name: 'evaluate-2'/);
});

test('evaluating on the training split is reported', () => {
  const pipeline = definePipeline({ name: 'evsplit' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    p.evaluate({ model: base, data: data.train });
  });
  assert.match(only(issuesOf(pipeline), 'evaluate.split').message, /scores the model on its train data/);
});

test('gate problems are reported by check, with a fix', () => {
  const pipeline = definePipeline({ name: 'gated' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024 } });
    p.evaluate({ model: adapter, data: data.test, gate: { bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } } });
  });
  const issue = only(issuesOf(pipeline), 'gate.needs-baseline');
  assert.equal(issue.path, 'stages.evaluate.gate.rougeL.minOverBaseline');
  assert.match(issue.fix ?? '', /set `baseline`/);
});
