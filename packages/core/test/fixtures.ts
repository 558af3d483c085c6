import { gzipSync } from 'node:zlib';
import { definePipeline, LLAMA3_8B, type CompileContext, type DatasetSourceInput, type Pipeline, type SftArgs, type ExportArgs } from '../src/index.ts';

/** One alpaca row, as a dataset file travels in a ConfigMap (gzip, base64). */
const ONE_ROW = gzipSync(JSON.stringify([{ instruction: 'Who are you?', input: '', output: 'I am {{name}}.' }])).toString('base64');

export function fakeSource(name: string, digest = 'd'.repeat(64)): DatasetSourceInput {
  return {
    name,
    digest,
    descriptor: { format: 'alpaca', files: [`${name}.json`] },
    files: [{ path: `${name}.json`, sha256: 'e'.repeat(64), size: 1234, gzipBase64: ONE_ROW }],
  };
}

export const context: CompileContext = {
  datasets: { identity: fakeSource('identity', '1'.repeat(64)), fintech: fakeSource('fintech', '2'.repeat(64)) },
};

export interface SeedVariation {
  sft?: Partial<SftArgs>;
  merge?: Partial<ExportArgs> & Record<string, unknown>;
  serveArgs?: Record<string, string | number | boolean>;
  maxModelLen?: number;
}

/** The seed pipeline, with optional changes for tests. */
export function seedPipeline(v: SeedVariation = {}): Pipeline {
  return definePipeline({ name: 'seed' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity', 'fintech'], templateVars: { name: '小聚', author: 'Aron' }, cutoffLen: 1024, calibration: { nsamples: 128, maxlen: 1024 } });
    const adapter = p.sft({ model: base, train: data.train, eval: data.validation, args: { cutoff_len: 1024, learning_rate: 5e-5, num_train_epochs: 10, lora_rank: 8, lora_alpha: 16, lora_target: 'all', bf16: true, ...v.sft } });
    const merged = p.merge({ adapter, args: { export_size: 4, ...(v.merge as ExportArgs) } });
    const quantized = p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4 } });
    const report = p.evaluate({ model: adapter, data: data.test });
    p.serve({ model: quantized, requires: [report], ...(v.maxModelLen ? { maxModelLen: v.maxModelLen } : {}), ...(v.serveArgs ? { args: v.serveArgs } : {}) });
  });
}
