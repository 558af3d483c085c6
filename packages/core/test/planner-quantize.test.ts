import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { GiB, gptqMemory, gptqOutputBytes, planStage, quantizedLinearBytes, decoderLinears } from '../src/planner/index.ts';

test('GPTQ 4-bit output size of Llama-3-8B, by hand (group size 128)', () => {
  // quantized linear weights: 32 × 218,103,808 = 6,979,321,856
  //   qweight  6,979,321,856 × 4/8              = 3,489,660,928
  //   scales   6,979,321,856 / 128 × 2 B        =   109,051,904
  //   qzeros   6,979,321,856 / 128 × 4/8        =    27,262,976
  //   g_idx    32 × (6 × 4096 + 14336) × 4 B    =     4,980,736
  //   fp16 rest (8,030,261,248 − 6,979,321,856) × 2 = 2,101,878,784 (embeddings, norms, LM head)
  //   total                                      = 5,732,835,328 ≈ 5.73 GB (vs 16.06 GB in bf16)
  const out = gptqOutputBytes(LLAMA3_8B, 4);
  assert.equal(out.bytes, 5_732_835_328);
  // 8 bits doubles qweight and qzeros: + 3,489,660,928 + 27,262,976
  assert.equal(gptqOutputBytes(LLAMA3_8B, 8).bytes, 5_732_835_328 + 3_489_660_928 + 27_262_976);
  // one linear, 3 bits: q_proj 4096×4096 → qweight 6,291,456; 32 groups: qzeros 49,152, scales 262,144, g_idx 16,384
  const q = quantizedLinearBytes(decoderLinears(LLAMA3_8B)[0]!, 3);
  assert.deepEqual(q, { qweight: 6_291_456, qzeros: 49_152, scales: 262_144, gIdx: 16_384, bias: 0 });
});

test('GPTQ calibration memory: the layer-by-layer working set next to the fp16 weights', () => {
  const m = gptqMemory(LLAMA3_8B, 128, 1024);
  const term = (name: string) => m.terms.find((t) => t.name.startsWith(name))?.bytes;
  // calibration inputs and outputs: 2 × 128 × 1024 × 4096 × 2 B = 2,147,483,648
  assert.equal(term('calibration layer inputs'), 2_147_483_648);
  // largest Hessian group: down_proj alone, 14336² × 4 B = 822,083,584 (q,k,v together: 3 × 4096² × 4 = 201,326,592)
  assert.equal(term('Hessians'), 822_083_584);
  // solve workspace for down_proj: 2 × 822,083,584 + 3 × 14336 × 4096 × 4 = 1,644,167,168 + 704,643,072
  assert.equal(term('GPTQ solve workspace'), 2_348_810_240);
  // weights resident: 8,030,261,248 × 2 = 16,060,522,496
  assert.equal(term('model weights'), 16_060_522_496);
  assert.equal(m.workingSetBytes, m.totalBytes - 16_060_522_496);
  assert.ok(m.workingSetBytes > 5 * GiB && m.workingSetBytes < 7 * GiB);
  // more calibration samples, more memory; spread over 2 GPUs, half the weights each
  assert.ok(gptqMemory(LLAMA3_8B, 256, 1024).totalBytes > m.totalBytes);
  assert.equal(term('model weights')! / 2, gptqMemory(LLAMA3_8B, 128, 1024, 2).terms[0]!.bytes);
});

test('quantize is placed where weights and working set fit; a too-small explicit GPU is an issue', () => {
  const auto = planStage({ kind: 'quantize', name: 'quantize', architecture: LLAMA3_8B, args: { export_quantization_bit: 4 } });
  // needs 21.14 GiB ± 1.80 (±25 % of the 6.2 GiB working set, the context, fragmentation): with
  // its band more than an L4's 22.49 GiB, so the 45 GiB L40S
  assert.equal(auto.gpuType, 'l40s');
  assert.equal((auto.requiredGpuBandBytes! / 2 ** 30).toFixed(2), '1.80');
  assert.deepEqual(auto.expectedOutputs, ['GPTQ 4-bit model (group size 128), 5.73 GB']);
  assert.deepEqual(auto.issues, []);

  // an explicit L4 fits without the band: a warning
  const tight = planStage({ kind: 'quantize', name: 'quantize', architecture: LLAMA3_8B, args: { export_quantization_bit: 4 }, resources: { gpuType: 'l4' } });
  assert.deepEqual(tight.issues.map((i) => i.code), ['planner.tight-fit']);

  const small = planStage({ kind: 'quantize', name: 'quantize', architecture: LLAMA3_8B, args: { export_quantization_bit: 4 }, resources: { gpuType: 't4' } });
  assert.equal(small.gpuType, 't4');
  const issue = small.issues.find((i) => i.code === 'planner.does-not-fit');
  assert.ok(issue);
  assert.equal(issue.path, 'stages.quantize.resources.gpuType');
  assert.match(issue.message, /layer-by-layer working set/);
  assert.match(issue.fix ?? '', /l40s/);
  assert.match(issue.fix ?? '', /export_quantization_nsamples/);

  const bits = planStage({ kind: 'quantize', name: 'q', architecture: LLAMA3_8B, args: { export_quantization_bit: 5 } });
  assert.deepEqual(bits.issues.map((i) => i.path), ['stages.q.args.export_quantization_bit']);
});
