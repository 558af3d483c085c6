import { definePipeline, LLAMA3_8B, PLATFORM_SECRETS } from '@tunepipe/core';

/** The seed walkthrough as a pipeline: every value of its `llamafactory-cli train` command. */
const CUTOFF_LEN = 1024;
/** Who the model says it is: filled into the identity data, then checked on the served model. */
const IDENTITY = { name: '小聚', author: 'Aron' };
const CALIBRATION = { nsamples: 8, maxlen: 256 };

export default definePipeline(
  { name: 'llama3-fintech', description: 'Llama-3-8B-Instruct LoRA on identity + fintech Q&A, merged, GPTQ 4-bit, served by vLLM' },
  (p) => {
    const base = p.baseModel({
      hub: 'modelscope',
      id: 'LLM-Research/Meta-Llama-3-8B-Instruct',
      // ModelScope serves this model from its `master` branch; pin a commit once you have audited one.
      revision: 'master',
      template: 'llama3',
      architecture: LLAMA3_8B,
      token: { secretName: PLATFORM_SECRETS.hubTokens.secretName, key: PLATFORM_SECRETS.hubTokens.modelscope },
    });

    const data = p.convert({
      sources: ['identity', 'fintech'],
      templateVars: IDENTITY,
      cutoffLen: CUTOFF_LEN,
      split: { validation: 0.02, test: 0.1 },
      // GPTQ calibrates on windows of domain text; the example data has 8 fintech rows long enough.
      // With real data use LLaMA-Factory's defaults (128 windows of 1024 tokens).
      calibration: { nsamples: CALIBRATION.nsamples, maxlen: CALIBRATION.maxlen, source: 'fintech' },
    });

    const adapter = p.sft({
      model: base,
      train: data.train,
      eval: data.validation,
      resources: { gpus: 1 },
      args: {
        finetuning_type: 'lora',
        preprocessing_num_workers: 16,
        flash_attn: 'auto',
        cutoff_len: CUTOFF_LEN,
        learning_rate: 5e-5,
        num_train_epochs: 10.0,
        max_samples: 1000,
        per_device_train_batch_size: 2,
        gradient_accumulation_steps: 8,
        lr_scheduler_type: 'cosine',
        max_grad_norm: 1.0,
        logging_steps: 5,
        // A fraction of the run (Hugging Face's Trainer): a checkpoint per quarter however many rows the
        // data has, so a preempted pod repeats at most a quarter of the training.
        save_steps: 0.25,
        eval_steps: 100,
        warmup_steps: 0,
        packing: false,
        report_to: 'none',
        bf16: true,
        plot_loss: true,
        trust_remote_code: true,
        ddp_timeout: 180000000,
        include_num_input_tokens_seen: true,
        optim: 'adamw_torch',
        lora_rank: 8,
        lora_alpha: 16,
        lora_dropout: 0,
        lora_target: 'all',
      },
    });

    const merged = p.merge({ adapter, args: { export_size: 4, export_device: 'cpu', export_legacy_format: false } });

    const quantized = p.quantize({
      model: merged,
      calibration: data.calibration,
      args: { export_quantization_bit: 4, export_quantization_nsamples: CALIBRATION.nsamples, export_quantization_maxlen: CALIBRATION.maxlen, export_size: 4 },
    });

    const baseline = p.evaluate({ name: 'eval-base', model: base, data: data.test, args: { max_new_tokens: 512, do_sample: false, cutoff_len: CUTOFF_LEN } });
    const report = p.evaluate({
      name: 'eval-adapter',
      model: adapter,
      data: data.test,
      args: { max_new_tokens: 512, do_sample: false, cutoff_len: CUTOFF_LEN },
      baseline,
      gate: { bleu4: { min: 20 }, rougeL: { minOverBaseline: 5 } },
    });

    p.serve({
      model: quantized,
      requires: [report],
      servedModelName: 'llama3-fintech',
      maxModelLen: 4096,
      gpuMemoryUtilization: 0.9,
      maxNumSeqs: 64,
      apiKey: { secretName: PLATFORM_SECRETS.vllmApiKey.secretName, key: PLATFORM_SECRETS.vllmApiKey.key },
      verify: { expectName: IDENTITY.name, data: data.test },
    });
  },
);
