import { definePipeline, PLATFORM_SECRETS } from '@tunepipe/core';

/**
 * The QLoRA variant of llama3-70b-lora: the frozen 70B weights in 4-bit (bitsandbytes NF4), the
 * adapter in 16-bit. ZeRO-3 and FSDP shard a quantized model only in 4-bit bitsandbytes, which is
 * this. The planner picks the layout on H100 nodes.
 */
const CUTOFF_LEN = 1024;

export default definePipeline({ name: 'llama3-70b-qlora', description: 'QLoRA (4-bit) fine-tuning of meta-llama/Llama-3.1-70B-Instruct on fintech, 8 H100 per node' }, (p) => {
  const base = p.baseModel({
    hub: 'huggingface',
    id: 'meta-llama/Llama-3.1-70B-Instruct',
    // A branch (check() warns): pin the commit you audited, from the model page's history.
    revision: 'main',
    template: 'llama3',
    // Gated on Hugging Face: the fetch reads a token of an account that accepted the terms.
    token: { secretName: PLATFORM_SECRETS.hubTokens.secretName, key: PLATFORM_SECRETS.hubTokens.huggingface },
  });

  const data = p.convert({
    // datasets/fintech/dataset.yaml describes the data; list more sources to train on them together.
    sources: ['fintech'],
    cutoffLen: CUTOFF_LEN,
    split: { validation: 0.1, test: 0.1 },
  });

  const adapter = p.sft({
    model: base,
    train: data.train,
    eval: data.validation,
    // Whole H100 nodes; how many, and the strategy, are the planner's choice.
    resources: { gpuType: 'h100-80gb', gpusPerNode: 8 },
    args: {
      cutoff_len: CUTOFF_LEN,
      learning_rate: 1e-4,
      num_train_epochs: 3,
      per_device_train_batch_size: 1,
      gradient_accumulation_steps: 8,
      lr_scheduler_type: 'cosine',
      logging_steps: 10,
      // A checkpoint per quarter of the run: a preempted gang repeats at most a quarter.
      save_steps: 0.25,
      bf16: true,
      report_to: 'none',
      lora_rank: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      lora_target: 'all',
    },
    // LLaMA-Factory's QLoRA switch (bitsandbytes, NF4 by default).
    extraArgs: { quantization_bit: 4 },
  });

  // The adapter merges into the 16-bit base (LLaMA-Factory cannot merge into 4-bit weights):
  // the whole model in host memory (about 140 GB), not a GPU.
  const merged = p.merge({ adapter, args: { export_size: 5, export_device: 'cpu' } });

  p.serve({ model: merged, resources: { gpuType: 'h100-80gb', gpus: 4 }, maxModelLen: 4096, apiKey: PLATFORM_SECRETS.vllmApiKey });
});
