// Base models that are already somewhere: a local folder, the artifacts volume, an object store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Job } from 'kubernetes-types/batch/v1.js';
import {
  architectureFromConfig,
  check,
  compile,
  definePipeline,
  formatIssues,
  LLAMA3_8B,
  shardPlan,
  type BaseModelOptions,
  type CompileContext,
  type Issue,
  type LocalModelInput,
  type ModelArchitecture,
  type Pipeline,
} from '../src/index.ts';
import { context as datasets, seedPipeline } from './fixtures.ts';

/** config.json of a small Llama-3-shaped model, as save_pretrained writes it (transformers 4.57). */
const TINY_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 256,
  intermediate_size: 704,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 32,
  vocab_size: 4107,
  max_position_embeddings: 2048,
  tie_word_embeddings: false,
  dtype: 'float32',
};
/** What the tensor layout of that config adds up to (embed + 4 layers + norm + lm_head). */
const TINY_PARAMS = 4107 * 256 * 2 + 4 * (256 * 256 * 2 + 256 * 64 * 2 + 3 * 256 * 704 + 2 * 256) + 256; // 4,923,136
const DIGEST = 'a'.repeat(64);

/** The tiny folder's facts with some replaced; a field set to `undefined` is left out (as the CLI does). */
function localModel(overrides: { [K in keyof LocalModelInput]?: LocalModelInput[K] | undefined } = {}): LocalModelInput {
  const merged: Record<string, unknown> = { path: 'models/tiny', found: true, digest: DIGEST, files: 6, bytes: 20e6, config: TINY_CONFIG, parameterCount: TINY_PARAMS, hasWeights: true, hasTokenizer: true, ...overrides };
  for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
  return merged as unknown as LocalModelInput;
}

function contextWith(model: LocalModelInput | undefined): CompileContext {
  return { ...datasets, ...(model ? { models: { [model.path]: model } } : {}) };
}

/** A small pipeline on the given base model: fetch, convert, sft, merge, evaluate. */
function pipelineOn(model: BaseModelOptions, exportSize = 1): Pipeline {
  return definePipeline({ name: 'tiny' }, (p) => {
    const base = p.baseModel(model);
    const data = p.convert({ sources: ['identity'], cutoffLen: 256 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 256, lora_rank: 8 } });
    p.merge({ adapter, args: { export_size: exportSize } });
    p.evaluate({ model: adapter, data: data.test });
  });
}

const codes = (issues: readonly Issue[]) => issues.map((i) => i.code);
const fetchJob = (pipeline: Pipeline, ctx: CompileContext): Job =>
  compile(pipeline, ctx).stages[0]!.objects.find((o): o is Job => o.kind === 'Job')!;

test('a local folder needs no architecture: it is read from config.json, with the exact parameter count', () => {
  const read = architectureFromConfig(TINY_CONFIG, TINY_PARAMS);
  assert.deepEqual(read.problems, []);
  assert.deepEqual(read.architecture, {
    modelType: 'llama',
    parameterCount: TINY_PARAMS,
    hiddenSize: 256,
    intermediateSize: 704,
    numHiddenLayers: 4,
    numAttentionHeads: 8,
    numKeyValueHeads: 2,
    headDim: 32,
    vocabSize: 4107,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    torchDtype: 'float32',
  } satisfies ModelArchitecture);
  // Without safetensors headers the count comes from the tensor layout of the known families: the same number.
  assert.equal(architectureFromConfig(TINY_CONFIG, undefined).architecture?.parameterCount, TINY_PARAMS);

  const pipeline = pipelineOn({ path: 'models/tiny', template: 'llama3' });
  assert.deepEqual(check(pipeline, contextWith(localModel())).filter((i) => i.severity !== 'warning'), []);
  const [fetch, , sft] = compile(pipeline, contextWith(localModel())).stages;
  // Sized from config.json: 4,923,136 float32 parameters; LoRA rank 8 on all 7 linears of 4 layers.
  assert.deepEqual(fetch!.expectedOutputs, ['model weights, 20 MB (float32)']);
  assert.equal(sft!.expectedOutputs[0], `adapter_model.safetensors (${((4 * 8 * (2 * (256 + 256) + 2 * (256 + 64) + 2 * (256 + 704) + (704 + 256)) * 4) / 1e6).toFixed(1)} MB)`);
});

test('a local model is named by its content digest: moving the folder changes nothing, new weights change every stage', () => {
  const at = (path: string, digest: string) => {
    const model = localModel({ path, digest });
    return compile(pipelineOn({ path, template: 'llama3' }), contextWith(model)).stages.map((s) => s.hash);
  };
  assert.deepEqual(at('models/tiny', DIGEST), at('/elsewhere/tiny', DIGEST));
  const changed = at('models/tiny', 'b'.repeat(64));
  at('models/tiny', DIGEST).forEach((hash, i) => {
    const name = ['fetch-model', 'convert', 'sft', 'merge', 'evaluate'][i];
    if (name === 'convert') assert.equal(changed[i], hash, 'convert does not read the model');
    else assert.notEqual(changed[i], hash, `${name} must re-run on new weights`);
  });
});

test("a local model's fetch Job verifies and copies the content-named upload folder; the compiled objects hold no machine path", () => {
  const job = fetchJob(pipelineOn({ path: '/home/someone/models/tiny', template: 'llama3' }), contextWith(localModel({ path: '/home/someone/models/tiny' })));
  const main = job.spec!.template.spec!.containers[0]!;
  assert.equal(main.image, 'ghcr.io/tunepipe/runtime:0.1.0');
  const argv = main.args!;
  assert.deepEqual(argv.slice(0, 2), ['tunepipe', 'fetch-model']);
  assert.equal(argv[argv.indexOf('--from') + 1], `/artifacts/uploads/sha256-${DIGEST}`);
  assert.ok(!JSON.stringify(job).includes('/home/someone'), 'a laptop path would make synth differ between machines');
});

test('without the folder (CI), a declared digest and architecture stand in; otherwise check names what to do', () => {
  const missing = localModel({ found: false, digest: undefined, config: undefined, parameterCount: undefined });
  const issues = check(pipelineOn({ path: 'models/tiny', template: 'llama3' }), contextWith(missing));
  const issue = issues.find((i) => i.code === 'model.path')!;
  assert.equal(issue.path, 'stages.fetch-model.path');
  assert.match(issue.fix!, /declare its digest and architecture/);
  const declared = pipelineOn({ path: 'models/tiny', template: 'llama3', digest: DIGEST, architecture: LLAMA3_8B });
  assert.deepEqual(codes(check(declared, contextWith(missing)).filter((i) => i.severity !== 'warning')), []);
  assert.equal(compile(declared, contextWith(missing)).stages[0]!.inputs['model'], `local:sha256:${DIGEST}`);
});

test('bad local folders: each problem with a fix', () => {
  const run = (model: LocalModelInput, options: Partial<{ digest: string; architecture: ModelArchitecture }> = {}) =>
    check(pipelineOn({ path: 'models/tiny', template: 'llama3', ...options }), contextWith(model));
  const noConfig = run(localModel({ config: undefined, configError: 'is missing' }));
  assert.equal(noConfig.find((i) => i.code === 'model.config')?.message, 'config.json is missing, so the architecture cannot be read');
  const partial = run(localModel({ config: { ...TINY_CONFIG, hidden_size: undefined, vocab_size: '4k' } }));
  assert.deepEqual(
    partial.filter((i) => i.code === 'model.config').map((i) => [i.value, i.fix]),
    [
      ['config.json: hidden_size', 'fix hidden_size in models/tiny/config.json, or declare architecture'],
      ['config.json: vocab_size', 'fix vocab_size in models/tiny/config.json, or declare architecture'],
    ],
  );
  const stale = run(localModel(), { digest: 'c'.repeat(64) }).find((i) => i.code === 'model.digest')!;
  assert.match(stale.fix!, new RegExp(`set digest to '${DIGEST}'`));
  assert.deepEqual(codes(run(localModel({ hasWeights: false, hasTokenizer: false }))).filter((c) => c.startsWith('model.')), ['model.weights', 'model.tokenizer']);
  const mismatch = run(localModel(), { architecture: LLAMA3_8B }).find((i) => i.code === 'model.architecture')!;
  assert.match(String(mismatch.value), /hiddenSize: declared 4096, config.json 256/);
  assert.equal(mismatch.fix, 'remove architecture: tunepipe reads it from config.json');
});

test('an object-store model needs a declared version; credentials travel only as secretKeyRef', () => {
  const uri = 's3://models-bucket/llama3-8b-instruct';
  const noVersion = check(pipelineOn({ uri, template: 'llama3', architecture: LLAMA3_8B } as unknown as BaseModelOptions), datasets);
  const issue = noVersion.find((i) => i.code === 'model.version')!;
  assert.equal(issue.path, 'stages.fetch-model.version');
  assert.match(issue.fix!, /S3 object version id or ETag/);
  assert.throws(() => compile(pipelineOn({ uri, template: 'llama3', architecture: LLAMA3_8B } as unknown as BaseModelOptions), datasets), /model.version|is required/);

  const bad = check(pipelineOn({ uri: 'https://bucket/x', version: 'v1', template: 'llama3', architecture: LLAMA3_8B }), datasets);
  assert.match(bad.find((i) => i.code === 'model.uri')!.fix!, /s3:\/\/<bucket>\/<prefix> or gs:\/\/<bucket>\/<prefix>/);

  const s3 = pipelineOn({ uri, version: '"9b2cf535f27731c974343645a3985328"', template: 'llama3', architecture: LLAMA3_8B, credentials: { secretName: 'model-store' } });
  const job = fetchJob(s3, datasets);
  const main = job.spec!.template.spec!.containers[0]!;
  assert.deepEqual(main.args, ['tunepipe-fetch-model', '--uri', uri, '--version', '"9b2cf535f27731c974343645a3985328"', '--dest', `${job.metadata!.annotations!['tunepipe.dev/artifact-path']}.partial`]);
  const secretEnv = (main.env ?? []).filter((e) => e.valueFrom);
  assert.deepEqual(secretEnv.map((e) => [e.name, e.valueFrom!.secretKeyRef!.name, e.valueFrom!.secretKeyRef!.key]), [
    ['AWS_ACCESS_KEY_ID', 'model-store', 'AWS_ACCESS_KEY_ID'],
    ['AWS_SECRET_ACCESS_KEY', 'model-store', 'AWS_SECRET_ACCESS_KEY'],
    ['AWS_SESSION_TOKEN', 'model-store', 'AWS_SESSION_TOKEN'],
  ]);
  assert.ok((main.env ?? []).every((e) => e.value === undefined || !/AWS|GOOGLE/.test(e.name)), 'no credential as a literal');
  const gs = fetchJob(pipelineOn({ uri: 'gs://model-bucket/llama3', version: '1712345678901234', template: 'llama3', architecture: LLAMA3_8B, credentials: { secretName: 'model-store' } }), datasets);
  assert.deepEqual(gs.spec!.template.spec!.containers[0]!.env!.filter((e) => e.valueFrom).map((e) => e.name), ['GOOGLE_SERVICE_ACCOUNT_JSON']);

  const v1 = compile(s3, datasets).stages.map((s) => s.hash);
  const v2 = compile(pipelineOn({ uri, version: 'other', template: 'llama3', architecture: LLAMA3_8B, credentials: { secretName: 'model-store' } }), datasets).stages.map((s) => s.hash);
  assert.notEqual(v1[0], v2[0], 'a new version is a new fetch');
  assert.notEqual(v1[2], v2[2], 'and new training');
});

test('an artifacts-volume model: a path on the volume plus a declared version', () => {
  const ok = pipelineOn({ artifacts: '/artifacts/models/llama3', version: 'sha256:1234', template: 'llama3', architecture: LLAMA3_8B });
  const main = fetchJob(ok, datasets).spec!.template.spec!.containers[0]!;
  assert.equal(main.args![main.args!.indexOf('--from') + 1], '/artifacts/models/llama3');
  const same = pipelineOn({ artifacts: 'models/llama3', version: 'sha256:1234', template: 'llama3', architecture: LLAMA3_8B });
  assert.equal(compile(ok, datasets).stages[0]!.hash, compile(same, datasets).stages[0]!.hash, '/artifacts/x and x are one folder');
  const escape = check(pipelineOn({ artifacts: '../../etc', version: '', template: 'llama3', architecture: LLAMA3_8B }), datasets);
  assert.deepEqual(codes(escape).filter((c) => c.startsWith('model.')), ['model.artifacts', 'model.version']);
});

test('one source per base model', () => {
  const both = { hub: 'huggingface', id: 'x/y', revision: 'abc1234', path: 'models/tiny', template: 'llama3', architecture: LLAMA3_8B } as unknown as BaseModelOptions;
  const issue = check(pipelineOn(both), contextWith(localModel())).find((i) => i.code === 'model.source');
  assert.ok(issue, formatIssues(check(pipelineOn(both), contextWith(localModel()))));
  assert.deepEqual(issue.value, ['hub', 'path']);
});

test('hub models compile exactly as before: same fetch config and identity', () => {
  const stage = compile(seedPipeline(), datasets).stages[0]!;
  assert.deepEqual(stage.config, { hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2' });
  assert.equal(stage.inputs['model'], 'huggingface:meta-llama/Meta-Llama-3-8B-Instruct@8afb486c1db24fe5011ec46dfbe5b5dccdb575c2');
});

test('export_size 0 is a warning, and the planner predicts one shard per tensor', () => {
  const pipeline = pipelineOn({ path: 'models/tiny', template: 'llama3' }, 0);
  const warning = check(pipeline, contextWith(localModel())).find((i) => i.code === 'export.size-zero')!;
  assert.equal(warning.severity, 'warning');
  const arch = architectureFromConfig(TINY_CONFIG, TINY_PARAMS).architecture!;
  const shards = shardPlan(arch, 2, 0);
  // embed_tokens, 4 × (7 linears + 2 norms), the final norm and lm_head.
  assert.equal(shards.count, 1 + 4 * 9 + 1 + 1);
  assert.equal(shards.exact, true);
  assert.equal(shards.fileNames[0], 'model-00001-of-00039.safetensors');
  const merge = compile(pipeline, contextWith(localModel())).stages.find((s) => s.name === 'merge')!;
  assert.ok(merge.expectedOutputs.some((o) => /39 shards/.test(o)), merge.expectedOutputs.join('\n'));
});
