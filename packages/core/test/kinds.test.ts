// One resolved stage that every reader trusts: the precedence probes of issue 12 give one answer
// (or an error) in check(), the planner, the emitted config and the hash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { analysePipeline, check, compile, definePipeline, formatIssues, LLAMA3_8B, STAGE_KINDS, type CompiledStage, type Issue, type Pipeline } from '../src/index.ts';
import { context } from './fixtures.ts';

const BASE = { hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B } as const;

function pipelineWith(edit: { sft?: object; merge?: object; serve?: object }): Pipeline {
  return definePipeline({ name: 'probe' }, (p) => {
    const base = p.baseModel(BASE);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, calibration: { nsamples: 128, maxlen: 1024 } });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25, bf16: true }, ...edit.sft });
    const merged = p.merge({ adapter, ...edit.merge });
    const quantized = p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4 } });
    p.serve({ model: quantized, ...edit.serve });
  });
}

function codes(issues: readonly Issue[]): string[] {
  return issues.filter((i) => i.severity !== 'warning').map((i) => `${i.code} ${i.path}`);
}

function configOf(stage: CompiledStage): Record<string, unknown> {
  const configMap = stage.objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === stage.resourceName) as { data: Record<string, string> };
  return parse(configMap.data[`${stage.name}.yaml`]!) as Record<string, unknown>;
}

test('a key set in both args and extraArgs is an error, not a silent winner', () => {
  const issues = check(pipelineWith({ sft: { args: { cutoff_len: 1024, lora_rank: 8 }, extraArgs: { lora_rank: 64 } } }), context);
  assert.deepEqual(codes(issues), ['args.conflict stages.sft.extraArgs.lora_rank']);
  assert.match(issues.find((i) => i.code === 'args.conflict')!.message, /also set at stages\.sft\.args\.lora_rank \(8\)/);
});

test('a key set once, by any route, is what the planner sizes and what the trainer reads', () => {
  for (const sft of [{ args: { cutoff_len: 1024, save_steps: 0.25, bf16: true, lora_rank: 64 } }, { args: { cutoff_len: 1024, save_steps: 0.25, bf16: true }, extraArgs: { lora_rank: 64 } }]) {
    const pipeline = pipelineWith({ sft });
    const analysis = analysePipeline(pipeline, context);
    const planned = analysis.plans.get('sft')!.resources.details;
    assert.equal(planned.kind, 'sft');
    // LoRA rank 64 on every linear layer of Llama-3-8B: 167,772,160 trainable parameters.
    assert.equal(planned.kind === 'sft' ? planned.trainableParams : 0, 167_772_160);
    const compiled = compile(pipeline, context);
    assert.equal(configOf(compiled.stages.find((s) => s.name === 'sft')!)['lora_rank'], 64);
  }
});

test('extraArgs export_size is what merge writes and what plan counts shards with', () => {
  const compiled = compile(pipelineWith({ merge: { extraArgs: { export_size: 2 } } }), context);
  const merge = compiled.stages.find((s) => s.name === 'merge')!;
  assert.equal(configOf(merge)['export_size'], 2);
  // 16.06 GB of bf16 weights in 2 GB shards.
  assert.match(merge.expectedOutputs.join('\n'), /9 shards/);
  const typed = compile(pipelineWith({ merge: { args: { export_size: 2 } } }), context).stages.find((s) => s.name === 'merge')!;
  assert.equal(typed.hash, merge.hash, 'the same value by another route is the same stage');
});

test('keys the compiler derives from handles cannot be set by any route, spreads included', () => {
  const spread = { ...{ model_name_or_path: '/artifacts/elsewhere' } };
  for (const [sft, path] of [
    [{ args: { cutoff_len: 1024, ...spread } }, 'stages.sft.args.model_name_or_path'],
    [{ extraArgs: { dataset: 'other' } }, 'stages.sft.extraArgs.dataset'],
    [{ extraArgs: { template: 'qwen' } }, 'stages.sft.extraArgs.template'],
  ] as const) {
    const issues = check(pipelineWith({ sft }), context);
    assert.ok(issues.some((i) => i.code === 'args.derived' && i.path === path), formatIssues(issues));
  }
  const merge = check(pipelineWith({ merge: { extraArgs: { export_dir: '/tmp/out', adapter_name_or_path: '/x' } } }), context);
  assert.deepEqual(codes(merge), ['args.derived stages.merge.extraArgs.export_dir', 'args.derived stages.merge.extraArgs.adapter_name_or_path']);
});

test('a vLLM flag set by a typed option and by args, in any spelling, is an error', () => {
  for (const key of ['max_model_len', 'max-model-len', '--max-model-len']) {
    const issues = check(pipelineWith({ serve: { maxModelLen: 4096, args: { [key]: 8192 } } }), context);
    assert.deepEqual(codes(issues), [`args.conflict stages.serve.args.${key}`]);
  }
  // Through args alone, the context check still sees it.
  const beyond = check(pipelineWith({ serve: { args: { 'max-model-len': 32768 } } }), context);
  assert.deepEqual(codes(beyond), ['vllm.range stages.serve.args.max-model-len']);
});

test('handles are checked for what their stage really produces', () => {
  const forged = definePipeline({ name: 'forged' }, (p) => {
    const base = p.baseModel(BASE);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    p.sft({ model: base, train: { ...data.train, entries: ['identity', 'fintech'] }, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.sft({ name: 'sft-2', model: { ...base, stage: 'convert' }, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.sft({ name: 'sft-3', model: { ...base, stage: 'later' }, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.sft({ name: 'sft-4', model: { ...base, stage: 'nowhere' }, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.baseModel({ ...BASE, name: 'later' });
    p.sft({ name: 'sft-5', model: undefined as never, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
  });
  const found = codes(check(forged, context));
  assert.deepEqual(found, [
    'wiring.dataset-entry stages.sft.train',
    'wiring.kind stages.sft-2.model',
    'wiring.forward stages.sft-3.model',
    'wiring.foreign stages.sft-4.model',
    'wiring.missing stages.sft-5.model',
  ]);
  assert.throws(() => compile(forged, context), /5 problems/);
});

test('planner findings join check() findings in one list', () => {
  const issues = check(pipelineWith({ sft: { args: { cutoff_len: 1024, lora_target: 'q_proj,w_pack', save_steps: 0.25 }, extraArgs: { lr_scheduler_type: 'cosine_annealing' } } }), context);
  const found = codes(issues);
  assert.ok(found.includes('args.choice stages.sft.extraArgs.lr_scheduler_type'), found.join('\n'));
  assert.ok(found.some((c) => c.startsWith('planner.') && c.includes('lora_target')), found.join('\n'));
});

test('a stage kind is one unit: predict is a module in kinds/ and a DSL method', () => {
  assert.ok(Object.hasOwn(STAGE_KINDS, 'predict'));
  const pipeline = definePipeline({ name: 'labels' }, (p) => {
    const base = p.baseModel(BASE);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25, bf16: true } });
    const predictions = p.predict({ model: adapter, data: data.test, args: { max_new_tokens: 256, do_sample: false } });
    assert.equal(predictions.kind, 'predictions');
  });
  assert.deepEqual(codes(check(pipeline, context)), []);
  const compiled = compile(pipeline, context);
  const stage = compiled.stages.find((s) => s.kind === 'predict')!;
  assert.deepEqual(stage.dependsOn, ['fetch-model', 'sft', 'convert']);
  const config = configOf(stage);
  assert.equal(config['do_predict'], true);
  assert.equal(config['adapter_name_or_path'], compiled.stages.find((s) => s.name === 'sft')!.artifactPath);
  assert.equal(config['max_new_tokens'], 256);
  assert.equal(config['eval_dataset'], 'identity.test');
  assert.deepEqual(stage.run.steps.map((s) => s.argv.join(' ')), [`llamafactory-cli train /config/predict.yaml`]);
  assert.equal(stage.run.mode, 'rename');
  assert.ok(stage.gpus >= 1, 'placed on a GPU by the generation model');
});

test('the compiled stage carries its run description: argv, publish mode, port, files', () => {
  const compiled = compile(pipelineWith({ serve: { port: 9000 } }), context);
  const sft = compiled.stages.find((s) => s.name === 'sft')!;
  assert.equal(sft.run.mode, 'in-place');
  assert.deepEqual(sft.run.steps[0]!.argv, ['llamafactory-cli', 'train', '/config/sft.yaml']);
  assert.ok(sft.run.files.some((f) => f.path === '/config/stage.sh'));
  const serve = compiled.stages.find((s) => s.name === 'serve')!;
  assert.equal(serve.run.port, 9000);
  const service = serve.objects.find((o) => o.kind === 'Service') as { spec: { ports: { port: number }[] } };
  assert.equal(service.spec.ports[0]!.port, 9000);
  const convert = compiled.stages.find((s) => s.name === 'convert')!;
  assert.ok(convert.run.files.some((f) => f.path.startsWith('/inputs/identity/') && f.base64), 'the dataset files the pod sees');
});

test('numbers are range-checked by whichever route they come, vLLM values too', () => {
  const issues = check(pipelineWith({ sft: { args: { cutoff_len: 1024, save_steps: 0.25, learning_rate: -1e-4 }, extraArgs: { lora_rank: 0 } }, serve: { args: { 'max-lora-rank': 48, 'max-num-seqs': 'many' } } }), context);
  const found = codes(issues);
  for (const expected of ['args.range stages.sft.args.learning_rate', 'args.range stages.sft.extraArgs.lora_rank', 'vllm.range stages.serve.args.max-lora-rank', 'vllm.type stages.serve.args.max-num-seqs']) {
    assert.ok(found.includes(expected), `${expected} in\n${found.join('\n')}`);
  }
});

test('a secret-shaped value anywhere in the options is reported, and no message prints it', () => {
  const token = `hf_${'aB3'.repeat(12)}`;
  const pipeline = definePipeline({ name: 'leak' }, (p) => {
    const base = p.baseModel(BASE);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, templateVars: { name: token } });
    p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 }, extraArgs: { run_name: `run ${token}` } });
  });
  const issues = check(pipeline, context);
  const leaks = issues.filter((i) => i.code === 'secret.literal').map((i) => i.path);
  assert.deepEqual(leaks.sort(), ['stages.convert.templateVars.name', 'stages.sft.extraArgs.run_name']);
  assert.ok(!formatIssues(issues).includes(token), 'the token is redacted from every issue');
  assert.throws(() => compile(pipeline, context), (error: Error) => !error.message.includes(token));
});

test('objects are unique by construction: two converts of one source share its dataset ConfigMap', () => {
  const pipeline = definePipeline({ name: 'twice' }, (p) => {
    p.convert({ sources: ['identity'], cutoffLen: 1024 });
    p.convert({ name: 'convert-b', sources: ['identity'], cutoffLen: 1024, seed: 7 });
  });
  const compiled = compile(pipeline, context);
  const keys = compiled.objects.map((o) => `${o.kind}/${o.metadata?.name}`);
  assert.equal(new Set(keys).size, keys.length, keys.join('\n'));
  const data = compiled.objects.filter((o) => o.metadata?.labels?.['app.kubernetes.io/component'] === 'dataset');
  assert.equal(data.length, 1);
  assert.equal(data[0]!.metadata?.labels?.['tunepipe.dev/stage'], undefined, 'a shared object belongs to no stage');
  assert.ok(compiled.stages.every((s) => !s.objects.includes(data[0]!)));
  // Both Jobs still mount it, and both runs still see its files.
  for (const stage of compiled.stages) assert.ok(stage.run.files.some((f) => f.path.startsWith('/inputs/identity/')));
});

/** A base, its data and one sft stage whose output `serve` takes (through a merge when `viaMerge`). */
function servedSft(sft: object, viaMerge = false, handle = (h: object) => h): Pipeline {
  return definePipeline({ name: 'probe' }, (p) => {
    const base = p.baseModel(BASE);
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const trained = p.sft({ model: base, train: data.train, resources: { gpuType: 'a100-80gb', gpus: 8 }, args: { cutoff_len: 1024, save_steps: 0.25, bf16: true }, ...sft });
    const model = viaMerge ? p.merge({ adapter: trained }) : (handle(trained) as Parameters<typeof p.serve>[0]['model']);
    p.serve({ model, resources: { gpuType: 'a100-80gb', gpus: 1 } });
  });
}

test("a full fine-tune is served from its sft stage's folder, sized like a merged model of its base", () => {
  const full = servedSft({ args: { finetuning_type: 'full', cutoff_len: 1024, save_steps: 0.25, bf16: true } });
  assert.deepEqual(codes(check(full, context)), []);
  const compiled = compile(full, context);
  const sft = compiled.stages.find((s) => s.name === 'sft')!;
  const serve = compiled.stages.find((s) => s.name === 'serve')!;
  assert.deepEqual(serve.run.steps[0]!.argv.slice(0, 3), ['vllm', 'serve', sft.artifactPath]);
  // The init container checks the model folder's SHA256SUMS before vLLM reads it, as for a merged model.
  const deployment = serve.objects.find((o) => o.kind === 'Deployment') as { spec: { template: { spec: { initContainers: { env: { name: string; value: string }[] }[] } } } };
  assert.deepEqual(deployment.spec.template.spec.initContainers[0]!.env.find((e) => e.name === 'TUNEPIPE_INPUTS')?.value, sft.artifactPath);

  const analysis = analysePipeline(full, context);
  const merged = analysePipeline(servedSft({}, true), context);
  const inputOf = (a: typeof analysis) => {
    const input = STAGE_KINDS.serve.plannerInput(a.stages.find((s) => s.name === 'serve') as Parameters<typeof STAGE_KINDS.serve.plannerInput>[0], a.env);
    assert.ok(input.kind === 'serve');
    return input;
  };
  assert.deepEqual(inputOf(analysis).weights, { format: 'dense' });
  assert.deepEqual(inputOf(analysis).architecture, inputOf(merged).architecture);
  const plan = (a: typeof analysis) => { const { gpus, gpuType, memory } = a.plans.get('serve')!; return { gpus, gpuType, memory }; };
  assert.deepEqual(plan(analysis), plan(merged));
});

test("serve refuses a LoRA adapter with a fix naming merge, whatever its handle claims", () => {
  const issues = check(servedSft({}), context);
  assert.deepEqual(codes(issues), ['serve.input stages.serve.model']);
  const issue = issues.find((i) => i.code === 'serve.input')!;
  assert.match(issue.message, /LoRA adapter/);
  assert.match(issue.fix!, /merge/);
  // The stage's resolved args decide, as for merge: a handle edited to say 'full' is still an adapter.
  assert.deepEqual(codes(check(servedSft({}, false, (h) => ({ ...h, finetuningType: 'full' })), context)), ['serve.input stages.serve.model']);
  // finetuning_type through extraArgs is sft's own error; serve adds none on top.
  assert.deepEqual(codes(check(servedSft({ extraArgs: { finetuning_type: 'full' } }), context)), ['sft.finetuning-type stages.sft.extraArgs.finetuning_type']);
});
