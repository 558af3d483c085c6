import { definePipeline, QWEN2_5_7B } from '@tunepipe/core';

/**
 * A second shape of pipeline: ShareGPT conversations, two GPUs (data parallel), a longer
 * context, 8-bit GPTQ and a two-way tensor-parallel vLLM server.
 */
const CUTOFF_LEN = 2048;

export default definePipeline(
  { name: 'qwen-support', description: 'Qwen2.5-7B-Instruct LoRA on ShareGPT support conversations, 2 GPUs' },
  (p) => {
    const base = p.baseModel({
      hub: 'huggingface',
      id: 'Qwen/Qwen2.5-7B-Instruct',
      revision: 'a09a35458c702b33eeacc393d103063234e8bc28',
      template: 'qwen',
      architecture: QWEN2_5_7B,
    });

    const data = p.convert({
      sources: ['support-sharegpt'],
      cutoffLen: CUTOFF_LEN,
      seed: 7,
      split: { validation: 0.05, test: 0.1 },
      // The chats are too short for 256-token windows: calibrate on the handbook corpus, which is
      // not a training source. 8 samples because the example corpus has 12 articles; for real
      // data use LLaMA-Factory's default of 128 samples × 1024 tokens.
      calibration: { nsamples: 8, maxlen: 256, source: 'support-handbook' },
    });

    const adapter = p.sft({
      model: base,
      train: data.train,
      eval: data.validation,
      resources: { gpus: 2, gpuType: 'a100-80gb' },
      args: {
        cutoff_len: CUTOFF_LEN,
        learning_rate: 1e-4,
        num_train_epochs: 3,
        per_device_train_batch_size: 4,
        gradient_accumulation_steps: 4,
        lr_scheduler_type: 'cosine',
        warmup_steps: 20,
        logging_steps: 10,
        // A fraction of the run (Hugging Face's Trainer): a checkpoint per quarter however many rows the
        // data has, so a preempted pod repeats at most a quarter of the training.
        save_steps: 0.25,
        bf16: true,
        report_to: 'none',
        lora_rank: 16,
        lora_alpha: 32,
        lora_dropout: 0.05,
        lora_target: 'q_proj,k_proj,v_proj,o_proj',
        save_total_limit: 3,
      },
    });

    const merged = p.merge({ adapter, args: { export_size: 5, export_device: 'auto' } });
    const quantized = p.quantize({
      model: merged,
      calibration: data.calibration,
      args: { export_quantization_bit: 8, export_quantization_nsamples: 8, export_quantization_maxlen: 256 },
    });
    const report = p.evaluate({ model: quantized, data: data.test, args: { max_new_tokens: 256, do_sample: false }, gate: { bleu4: { min: 10 } } });

    p.serve({
      model: quantized,
      requires: [report],
      resources: { gpus: 2 },
      maxModelLen: 8192,
      args: { 'enable-prefix-caching': true, 'max-num-batched-tokens': 8192 },
    });
  },
);
