// Type tests: wrong wiring must not compile. `tsc` (npm test runs it first) fails if any
// ts-expect-error directive below stops being an error; the runtime part checks the handles' kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectTypeOf } from 'expect-type';
import { definePipeline, LLAMA3_8B, type Adapter, type FullFineTune, type MergedModel, type QuantizedModel, type Endpoint, type Dataset } from '../src/index.ts';

test('stages return typed handles and reject wrong wiring at compile time', () => {
  const kinds: string[] = [];
  definePipeline({ name: 'types' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'x/y', revision: 'abc1234', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['a'], cutoffLen: 512 });
    expectTypeOf(data.train).toEqualTypeOf<Dataset>();
    const adapter = p.sft({ model: base, train: data.train });
    expectTypeOf(adapter).toEqualTypeOf<Adapter>();
    const merged = p.merge({ adapter });
    expectTypeOf(merged).toEqualTypeOf<MergedModel>();
    const quantized = p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4 } });
    expectTypeOf(quantized).toEqualTypeOf<QuantizedModel>();
    const endpoint = p.serve({ model: quantized });
    expectTypeOf(endpoint).toEqualTypeOf<Endpoint>();

    // @ts-expect-error an Adapter is not a MergedModel: quantizing needs a merge first
    p.quantize({ name: 'q2', model: adapter, calibration: data.calibration, args: { export_quantization_bit: 4 } });
    // @ts-expect-error a Dataset cannot be served
    p.serve({ name: 's2', model: data.test });
    // @ts-expect-error an Adapter cannot be served by vLLM without merging
    p.serve({ name: 's3', model: adapter });
    const lora = p.sft({ name: 'sft-lora', model: base, train: data.train, args: { finetuning_type: 'lora' } });
    expectTypeOf(lora).toEqualTypeOf<Adapter<'lora'>>();
    // @ts-expect-error a LoRA adapter, even spelled out, is merged before vLLM serves it
    p.serve({ name: 's4', model: lora });
    // A full fine-tune's folder is a whole model: vLLM serves it as it is.
    const full = p.sft({ name: 'sft-full', model: base, train: data.train, args: { finetuning_type: 'full', cutoff_len: 512 } });
    expectTypeOf(full).toEqualTypeOf<FullFineTune>();
    expectTypeOf(p.serve({ name: 's5', model: full })).toEqualTypeOf<Endpoint>();
    // @ts-expect-error typed args stay checked when finetuning_type is full
    p.sft({ name: 'sft4', model: base, train: data.train, args: { finetuning_type: 'full', lora_rnak: 8 } });
    // @ts-expect-error merge takes an Adapter, not a BaseModel
    p.merge({ name: 'm2', adapter: base });
    // @ts-expect-error sft trains on a Dataset, not a model
    p.sft({ name: 'sft2', model: base, train: merged });
    // @ts-expect-error GPTQ bits are 2, 3, 4 or 8
    p.quantize({ name: 'q3', model: merged, calibration: data.calibration, args: { export_quantization_bit: 5 } });
    // @ts-expect-error export_device is 'cpu' or 'auto'
    p.merge({ name: 'm3', adapter, args: { export_device: 'cuda' } });
    // @ts-expect-error unknown LLaMA-Factory key in typed args
    p.sft({ name: 'sft3', model: base, train: data.train, args: { lora_rnak: 8 } });
    kinds.push(base.kind, adapter.kind, merged.kind, quantized.kind, endpoint.kind, full.finetuningType, lora.finetuningType);
  });
  assert.deepEqual(kinds, ['base-model', 'adapter', 'merged-model', 'quantized-model', 'endpoint', 'full', 'lora']);
});
