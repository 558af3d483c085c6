// The file-system side of local base models: content digest, config.json and safetensors headers
// read at plan time (the fetch-model Job's verify-and-copy is tested with the CLI command).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, compile, definePipeline } from '@tunepipe/core';
import { loadCompileContext } from '../src/context.ts';
import { DigestCache, folderDigest, loadLocalModel, safetensorsParameters } from '../src/model-folder.ts';

const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** A safetensors file with the given tensors (F32 zeros): an 8-byte header length, the JSON header, the data. */
function safetensors(tensors: Record<string, number[]>): Buffer {
  let offset = 0;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.alloc(offset)]);
}

const CONFIG = { model_type: 'llama', hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 10, max_position_embeddings: 64, tie_word_embeddings: false, torch_dtype: 'float32' };
/** Every tensor of that config, named as save_pretrained names them. */
const TENSORS: Record<string, number[]> = {
  'model.embed_tokens.weight': [10, 8],
  'model.layers.0.self_attn.q_proj.weight': [8, 8],
  'model.layers.0.self_attn.k_proj.weight': [4, 8],
  'model.layers.0.self_attn.v_proj.weight': [4, 8],
  'model.layers.0.self_attn.o_proj.weight': [8, 8],
  'model.layers.0.mlp.gate_proj.weight': [16, 8],
  'model.layers.0.mlp.up_proj.weight': [16, 8],
  'model.layers.0.mlp.down_proj.weight': [8, 16],
  'model.layers.0.input_layernorm.weight': [8],
  'model.layers.0.post_attention_layernorm.weight': [8],
  'model.norm.weight': [8],
  'lm_head.weight': [10, 8],
};
const PARAMS = Object.values(TENSORS).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);

async function modelFolder(dir: string): Promise<void> {
  await mkdir(join(dir, '.cache', 'huggingface'), { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(CONFIG));
  await writeFile(join(dir, 'tokenizer.json'), '{"model":{}}');
  await writeFile(join(dir, 'model.safetensors'), safetensors(TENSORS));
  // Not the model: download caches and our own markers never change its digest.
  await writeFile(join(dir, '.cache', 'huggingface', 'download.lock'), String(Math.random()));
}

test('a local folder: digest over its files, config.json, the exact parameter count from safetensors headers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-model-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await modelFolder(join(dir, 'm'));
  assert.equal(await safetensorsParameters(join(dir, 'm', 'model.safetensors')), PARAMS);
  const loaded = await loadLocalModel(dir, 'm');
  assert.equal(loaded.found, true);
  assert.equal(loaded.parameterCount, PARAMS);
  assert.deepEqual(loaded.config, CONFIG);
  assert.deepEqual([loaded.files, loaded.hasWeights, loaded.hasTokenizer], [3, true, true]);
  assert.match(loaded.digest!, /^[0-9a-f]{64}$/);

  await writeFile(join(dir, 'm', '.cache', 'huggingface', 'download.lock'), 'changed');
  assert.equal((await loadLocalModel(dir, 'm')).digest, loaded.digest, 'dot files are not the model');
  await writeFile(join(dir, 'm', 'tokenizer.json'), '{"model":{"changed":true}}');
  assert.notEqual((await loadLocalModel(dir, 'm')).digest, loaded.digest);

  assert.deepEqual(await loadLocalModel(dir, 'absent'), { path: 'absent', found: false });
  await rm(join(dir, 'm', 'config.json'));
  assert.equal((await loadLocalModel(dir, 'm')).configError, 'is missing');
});

test('the digest cache re-reads only files whose size or mtime changed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-model-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await modelFolder(join(dir, 'm'));
  const cacheFile = join(dir, 'digests.json');
  const first = await DigestCache.open(cacheFile);
  const digest = (await folderDigest(join(dir, 'm'), first)).digest;
  await first.save();
  const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as Record<string, { sha256: string }>;
  assert.equal(Object.keys(cached).length, 3);
  // A poisoned entry with the file's size and mtime is believed: proof the file was not read again.
  const key = Object.keys(cached).find((k) => k.endsWith('config.json'))!;
  cached[key]!.sha256 = '0'.repeat(64);
  await writeFile(cacheFile, JSON.stringify(cached));
  assert.notEqual((await folderDigest(join(dir, 'm'), await DigestCache.open(cacheFile))).digest, digest);
  assert.equal((await folderDigest(join(dir, 'm'))).digest, digest);
});

test('plan time: the workspace loads the folder, compile sizes the model from it, the architecture is never typed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-model-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await modelFolder(join(dir, 'm'));
  const pipeline = definePipeline({ name: 'local-model' }, (p) => {
    const base = p.baseModel({ path: join(dir, 'm'), template: 'llama3' });
    const data = p.convert({ sources: ['identity'], cutoffLen: 64 });
    p.sft({ model: base, train: data.train, args: { cutoff_len: 64 } });
  });
  const context = await loadCompileContext(repoRoot, pipeline);
  const model = context.models![join(dir, 'm')]!;
  assert.equal(model.parameterCount, PARAMS);
  assert.deepEqual(check(pipeline, context).filter((i) => i.severity !== 'warning'), []);
  const compiled = compile(pipeline, context);
  assert.equal(compiled.stages[0]!.inputs['model'], `local:sha256:${model.digest}`);
  // A too-long cutoff is judged against config.json's max_position_embeddings (64).
  const tooLong = definePipeline({ name: 'local-model' }, (p) => {
    const base = p.baseModel({ path: join(dir, 'm'), template: 'llama3' });
    const data = p.convert({ sources: ['identity'], cutoffLen: 128 });
    p.sft({ model: base, train: data.train, args: { cutoff_len: 128 } });
  });
  assert.equal(check(tooLong, context).find((i) => i.code === 'sft.cutoff-context')?.fix, 'use at most 64');
});
