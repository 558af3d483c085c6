import { definePipeline, PLATFORM_SECRETS } from '@tunepipe/core';

/**
 * Full fine-tuning of a 7B model: every weight trains, so weights, gradients and AdamW's states
 * (about 16 bytes per parameter, 120 GB before activations) are sharded over the 8 GPUs of one
 * node. The output is a whole model, not an adapter: it is evaluated and served as it is (merge
 * refuses it).
 */
const CUTOFF_LEN = 1024;

export default definePipeline({ name: 'qwen2-5-7b-full', description: 'Full fine-tuning of Qwen/Qwen2.5-7B-Instruct on fintech, 1 node × 8 GPUs, served by vLLM' }, (p) => {
  const base = p.baseModel({
    hub: 'huggingface',
    id: 'Qwen/Qwen2.5-7B-Instruct',
    revision: 'a09a35458c702b33eeacc393d103063234e8bc28',
    template: 'qwen',
  });

  const data = p.convert({
    // datasets/fintech/dataset.yaml describes the data; list more sources to train on them together.
    sources: ['fintech'],
    cutoffLen: CUTOFF_LEN,
    split: { validation: 0.1, test: 0.1 },
  });

  const model = p.sft({
    model: base,
    train: data.train,
    eval: data.validation,
    // One node of 8; the strategy is the planner's choice (the smallest sharding that fits).
    resources: { gpuType: 'a100-80gb', gpusPerNode: 8, nodes: 1 },
    args: {
      finetuning_type: 'full',
      cutoff_len: CUTOFF_LEN,
      // Full fine-tuning moves every weight: a learning rate well below LoRA's.
      learning_rate: 1e-5,
      num_train_epochs: 3,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 4,
      lr_scheduler_type: 'cosine',
      logging_steps: 10,
      // A checkpoint per quarter of the run: a preempted pod repeats at most a quarter. Each holds
      // the sharded optimizer state (~90 GB): keep two.
      save_steps: 0.25,
      save_total_limit: 2,
      bf16: true,
      report_to: 'none',
    },
  });

  const baseline = p.evaluate({ name: 'eval-base', model: base, data: data.test });
  const report = p.evaluate({ name: 'eval-full', model, data: data.test, baseline, gate: { rougeL: { minOverBaseline: 0 } } });

  // Served only once the gate passed. The 7B model in bf16 (~15 GB) fits one GPU with room for
  // the KV cache: no tensor parallelism.
  p.serve({
    model,
    requires: [report],
    resources: { gpuType: 'a100-80gb', gpus: 1 },
    maxModelLen: 4096,
    apiKey: PLATFORM_SECRETS.vllmApiKey,
  });
});
