// Every LLaMA-Factory config the example pipelines generate, parsed by LLaMA-Factory's own parsers
// at the pinned version (scripts/real/llamafactory_parse.py says exactly what runs and what does
// not: the parsers and their checks, no model loading). Then configs the parser ACCEPTS but that
// fail later in the pod: each must still be accepted (else the list is stale) and tunepipe's
// check() must reject each. Configs the parser rejects must be rejected by check() too. Together:
// check() is strictly stronger than the tool's own parser on these.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify } from 'yaml';
import { check, definePipeline, formatIssues, isError, LLAMA3_8B, type Pipeline } from '@tunepipe/core';
import { compiledExamples, identityDatasets, llamaFactoryConfigs, type LlamaFactoryConfig } from '../support/generated.ts';
import { startLineServer, type LineServer } from '../support/python.ts';
import { tools } from '../support/tools.ts';
import { deepSpeedEnv, type DeepSpeedLayer } from '../../../scripts/real/deepspeed.mjs';

interface Verdict {
  ok: boolean;
  error?: string;
}

let lf: LineServer;
let configs: LlamaFactoryConfig[] = [];

before(async () => {
  // The image installs LLaMA-Factory with its deepspeed extra; the tier keeps DeepSpeed as a layer.
  // A DeepSpeed config makes transformers set up torch.distributed: a world of one on loopback.
  lf = await startLineServer('llamafactory_parse.py', [], { ...deepSpeedEnv(tools<DeepSpeedLayer>('deepspeed')), MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29731', RANK: '0', LOCAL_RANK: '0', WORLD_SIZE: '1' });
  for (const { name, compiled } of await compiledExamples()) configs.push(...llamaFactoryConfigs(name, compiled));
});
after(async () => {
  await lf?.close();
});

const parseWithLlamaFactory = (command: 'train' | 'export', yaml: string, files: Readonly<Record<string, string>> = {}) => lf.request<Verdict>({ command, yaml, files });

test('the example pipelines hand LLaMA-Factory train and export configs of every LLaMA-Factory stage kind', () => {
  const kinds = new Set(configs.map((c) => `${c.stageKind}:${c.command}`));
  for (const k of ['sft:train', 'merge:export', 'quantize:export', 'evaluate:train']) assert.ok(kinds.has(k), `no ${k} config among ${[...kinds].join(', ')}`);
  assert.ok(configs.length >= 8, `only ${configs.length} configs`);
  // A DeepSpeed stage's config reaches the parser with the JSON it names (transformers reads it).
  assert.ok(configs.some((c) => c.stageKind === 'sft' && /^deepspeed: \/config\/deepspeed\.json$/m.test(c.yaml) && 'deepspeed.json' in c.siblings), 'no example trains under DeepSpeed');
});

test('LLaMA-Factory (pinned) parses every config the example pipelines generate', async () => {
  const failures: string[] = [];
  for (const c of configs) {
    const verdict = await parseWithLlamaFactory(c.command, c.yaml, c.siblings);
    if (!verdict.ok) failures.push(`${c.pipeline}/${c.stage} (llamafactory-cli ${c.command} ${c.file}): ${verdict.error}`);
  }
  assert.deepEqual(failures, [], `LLaMA-Factory rejects generated configs:\n${failures.join('\n')}`);
});

// --- known-bad settings ------------------------------------------------------------------------

type Stage = 'sft' | 'merge' | 'quantize';

interface BadSetting {
  readonly why: string;
  readonly stage: Stage;
  readonly key: string;
  readonly value: unknown;
  /** How the same setting is written in a pipeline, for check(). */
  readonly pipeline: () => Pipeline;
  /** The issue code check() must report (as an error). */
  readonly code: string;
}

const datasets = identityDatasets;

/** A sound pipeline with one stage's settings changed (values bypass the DSL's types on purpose). */
function pipelineWith(edit: { template?: string; sft?: Record<string, unknown>; merge?: Record<string, unknown>; quantize?: Record<string, unknown>; quantizeExtra?: Record<string, unknown> }): Pipeline {
  return definePipeline({ name: 'bad' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: edit.template ?? 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024, calibration: { nsamples: 128, maxlen: 1024 } });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 }, ...(edit.sft ? { extraArgs: edit.sft } : {}) });
    const merged = p.merge({ adapter, args: { export_size: 4, ...(edit.merge as object) } });
    p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4, ...(edit.quantize as object) }, ...(edit.quantizeExtra ? { extraArgs: edit.quantizeExtra } : {}) });
  });
}

const acceptedButBad: BadSetting[] = [
  { why: 'no template "llama" (LLaMA-Factory stops with "Template llama does not exist." when it builds the dataset)', stage: 'sft', key: 'template', value: 'llama', pipeline: () => pipelineWith({ template: 'llama' }), code: 'template.unknown' },
  { why: 'no template "llama-3"', stage: 'sft', key: 'template', value: 'llama-3', pipeline: () => pipelineWith({ template: 'llama-3' }), code: 'template.unknown' },
  { why: 'a template only newer LLaMA-Factory has (the old tables accepted it)', stage: 'sft', key: 'template', value: 'qwen3_5', pipeline: () => pipelineWith({ template: 'qwen3_5' }), code: 'template.unknown' },
  { why: 'export_size is whole GB; 4.5 becomes max_shard_size="4.5GB"', stage: 'merge', key: 'export_size', value: 4.5, pipeline: () => pipelineWith({ merge: { export_size: 4.5 } }), code: 'export.size' },
  { why: "export_device is 'cpu' or 'auto' (a Literal the YAML path never enforces)", stage: 'merge', key: 'export_device', value: 'cuda', pipeline: () => pipelineWith({ merge: { export_device: 'cuda' } }), code: 'export.device' },
  { why: 'GPTQ has no 5-bit kernels', stage: 'quantize', key: 'export_quantization_bit', value: 5, pipeline: () => pipelineWith({ quantize: { export_quantization_bit: 5 } }), code: 'quantize.bits' },
  { why: 'export_model refuses it after parsing: "Please merge adapters before quantizing the model."', stage: 'quantize', key: 'adapter_name_or_path', value: '/artifacts/bad/sft/adapter', pipeline: () => pipelineWith({ quantizeExtra: { adapter_name_or_path: '/artifacts/bad/sft/adapter' } }), code: 'quantize.adapter' },
  { why: 'transformers looks report_to up in its integrations only when the Trainer starts', stage: 'sft', key: 'report_to', value: 'tensorbord', pipeline: () => pipelineWith({ sft: { report_to: 'tensorbord' } }), code: 'args.choice' },
];

const rejectedByBoth: BadSetting[] = [
  { why: 'a misspelt key', stage: 'sft', key: 'lora_rnak', value: 16, pipeline: () => pipelineWith({ sft: { lora_rnak: 16 } }), code: 'args.unknown' },
  { why: 'a training key in an export config', stage: 'merge', key: 'bf16', value: true, pipeline: () => pipelineWith({ merge: { bf16: true } }), code: 'args.training-key' },
  { why: 'warmup_ratio outside [0, 1]', stage: 'sft', key: 'warmup_ratio', value: 1.5, pipeline: () => pipelineWith({ sft: { warmup_ratio: 1.5 } }), code: 'args.warmup-ratio' },
  { why: 'an unknown scheduler', stage: 'sft', key: 'lr_scheduler_type', value: 'cosine_annealing', pipeline: () => pipelineWith({ sft: { lr_scheduler_type: 'cosine_annealing' } }), code: 'args.choice' },
];

function exampleConfig(stage: Stage): LlamaFactoryConfig {
  const c = configs.find((x) => x.pipeline === 'llama3-fintech' && x.stageKind === stage);
  assert.ok(c, `llama3-fintech has no ${stage} config`);
  return c;
}

function withSetting(c: LlamaFactoryConfig, key: string, value: unknown): string {
  const doc = parse(c.yaml) as Record<string, unknown>;
  doc[key] = value;
  return stringify(doc);
}

function checkErrors(pipeline: Pipeline, code: string): string[] {
  const issues = check(pipeline, { datasets });
  assert.ok(
    issues.some((i) => i.code === code && isError(i)),
    `check() does not reject it with ${code}; it reports:\n${formatIssues(issues) || '(nothing)'}`,
  );
  return issues.map((i) => i.code);
}

for (const bad of acceptedButBad) {
  test(`LLaMA-Factory's parser accepts ${bad.key}: ${JSON.stringify(bad.value)} (${bad.why}); check() rejects it`, async () => {
    const c = exampleConfig(bad.stage);
    const verdict = await parseWithLlamaFactory(c.command, withSetting(c, bad.key, bad.value));
    assert.equal(verdict.ok, true, `the pinned parser now rejects it (${verdict.error}): move it to the rejected list`);
    checkErrors(bad.pipeline(), bad.code);
  });
}

for (const bad of rejectedByBoth) {
  test(`LLaMA-Factory's parser and check() both reject ${bad.key}: ${JSON.stringify(bad.value)} (${bad.why})`, async () => {
    const c = exampleConfig(bad.stage);
    const verdict = await parseWithLlamaFactory(c.command, withSetting(c, bad.key, bad.value));
    assert.equal(verdict.ok, false, 'the pinned parser accepts it');
    checkErrors(bad.pipeline(), bad.code);
  });
}

test('the sound pipeline the bad settings start from has no errors, so each error above is the setting', () => {
  const errors = check(pipelineWith({}), { datasets }).filter(isError);
  assert.deepEqual(errors, [], formatIssues(errors));
});
