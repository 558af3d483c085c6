import type {
  Adapter,
  BaseModel,
  Dataset,
  Endpoint,
  EvalReport,
  EvaluableModel,
  FinetuningType,
  MergedModel,
  ModelHub,
  QuantizedModel,
  ServableModel,
} from './handles.ts';
import type { ModelArchitecture } from './model/architecture.ts';
import type { ModelSource } from './model/source.ts';
import type { Gate } from './gate.ts';
import type { Predictions } from './kinds/predict.ts';
import { VLLM_DEFAULT_PORT } from './defaults.ts';
import type { TrainingStrategy } from './planner/layout.ts';

/** A reference to a key of a Kubernetes Secret. Secrets are never written as literals. */
export interface SecretRef {
  readonly secretName: string;
  readonly key: string;
}

/** Compute a stage asks for. GPU stages get `nvidia.com/gpu`, the GPU taint toleration and a node selector. */
export interface Resources {
  /** GPUs per pod. @default planner's choice (1 for training on an 8B model) */
  readonly gpus?: number;
  /** GPU catalogue id (node label `tunepipe.dev/gpu`), e.g. `a100-80gb`. @default planner's choice */
  readonly gpuType?: string;
  /** CPU request, a Kubernetes quantity. */
  readonly cpu?: string;
  /** Memory request and limit, a Kubernetes quantity. */
  readonly memory?: string;
}

/**
 * A training stage's compute: how many pods (`nodes`) with how many GPUs each (`gpusPerNode`, the
 * same as `gpus`; set one of them). One node with several GPUs is one pod running torchrun; several
 * nodes are a gang (an Indexed Job or a JobSet with a headless Service) that Kueue admits whole.
 */
export interface SftResources extends Resources {
  /** GPUs per pod of the training gang (torchrun's NPROC_PER_NODE); the same as `gpus`. @default planner's choice */
  readonly gpusPerNode?: number;
  /** Pods of the gang, one per node. @default planner's choice (1) */
  readonly nodes?: number;
}

/** Where a stage's pods run and what they may use, beyond the planner's defaults. */
interface StageCommon {
  /** Stage name, unique within the pipeline; a DNS label. @default the stage kind */
  readonly name?: string;
  readonly resources?: Resources;
  /** Container image; pin a version tag or digest. @default the pinned image for the stage kind */
  readonly image?: string;
  /** Retries for failures that are not node disruption or preemption. @default 2 */
  readonly backoffLimit?: number;
}

interface BaseModelCommon {
  /** LLaMA-Factory template the model was trained with, e.g. `llama3`, `qwen`. */
  readonly template: string;
  /** Name of the fetch stage. @default 'fetch-model' */
  readonly name?: string;
  readonly image?: string;
}

/** A model on Hugging Face or ModelScope, fetched at a pinned revision. */
export interface HubModelOptions extends BaseModelCommon {
  readonly hub: ModelHub;
  /** Repository id on the hub, e.g. `LLM-Research/Meta-Llama-3-8B-Instruct`. */
  readonly id: string;
  /** Commit hash or immutable tag; branches such as `main`/`master` are rejected. */
  readonly revision: string;
  /**
   * @default the catalogue's, for a model in MODEL_CATALOGUE (`catalogueModel(id)`); any other model
   * declares it, e.g. `fromConfigJson(<its config.json>)`.
   */
  readonly architecture?: ModelArchitecture;
  /** Hub token, read from a Secret. Needed for gated models. */
  readonly token?: SecretRef;
  readonly path?: never;
  readonly artifacts?: never;
  readonly uri?: never;
}

/**
 * A model folder on the machine that compiles the pipeline (config.json, weights, tokenizer).
 * The CLI hashes its content (the stages' identity) and reads the architecture from config.json.
 * `tunepipe run --target local` links it into place; for a cluster, copy the folder to the
 * artifacts volume at `uploads/sha256-<digest>/` (the fetch-model Job's `--from`): the Job verifies
 * every file against the digest and copies the folder into its stage folder.
 */
export interface LocalModelOptions extends BaseModelCommon {
  /** The folder, relative to the repository root or absolute. */
  readonly path: string;
  /**
   * sha256 of the folder's SHA256SUMS. @default computed from the folder. Declare it to compile on
   * machines without the folder (CI); where the folder exists it must match.
   */
  readonly digest?: string;
  /** @default read from the folder's config.json (declare it where the folder is absent) */
  readonly architecture?: ModelArchitecture;
  readonly hub?: never;
  readonly artifacts?: never;
  readonly uri?: never;
}

/** A model folder already on the artifacts volume (put there by another pipeline or by hand). */
export interface ArtifactsModelOptions extends BaseModelCommon {
  /** Path relative to the volume's root, e.g. `models/llama3-8b-instruct`. */
  readonly artifacts: string;
  /**
   * What identifies the folder's content, e.g. the sha256 of its SHA256SUMS; the stages' hashes
   * cover it, so change it when the files change.
   */
  readonly version: string;
  readonly architecture: ModelArchitecture;
  readonly hub?: never;
  readonly path?: never;
  readonly uri?: never;
}

/** A model folder in an object store, downloaded by the fetch-model Job. */
export interface ObjectStoreModelOptions extends BaseModelCommon {
  /** `s3://bucket/prefix` or `gs://bucket/prefix`: the folder holding config.json, weights and tokenizer. */
  readonly uri: string;
  /**
   * The content's identity as the store reports it: an S3 version id or ETag, a GCS generation (of
   * the weights object, or your release tag for the folder). The stages' hashes cover it; the fetch
   * Job records every object's ETag/generation in SOURCE.json.
   */
  readonly version: string;
  readonly architecture: ModelArchitecture;
  /**
   * Secret with the store's credentials, passed as secretKeyRef env: keys AWS_ACCESS_KEY_ID,
   * AWS_SECRET_ACCESS_KEY (and optional AWS_SESSION_TOKEN) for s3://; GOOGLE_SERVICE_ACCOUNT_JSON
   * for gs://. @default none: the pod's workload identity (IRSA, GKE Workload Identity)
   */
  readonly credentials?: { readonly secretName: string };
  readonly hub?: never;
  readonly path?: never;
  readonly artifacts?: never;
}

/** Where a base model comes from: a hub, a local folder, the artifacts volume or an object store. */
export type BaseModelOptions = HubModelOptions | LocalModelOptions | ArtifactsModelOptions | ObjectStoreModelOptions;

/** The source a base model's options describe (check() reports options that name none or several). */
export function modelSourceOf(options: BaseModelOptions): ModelSource {
  const o = (options ?? {}) as {
    readonly hub?: ModelHub; readonly id?: string; readonly revision?: string; readonly path?: string;
    readonly digest?: string; readonly artifacts?: string; readonly uri?: string; readonly version?: string;
  };
  if (o.path !== undefined) return { kind: 'local', path: o.path, ...(o.digest !== undefined ? { digest: o.digest } : {}) };
  if (o.artifacts !== undefined) return { kind: 'artifacts', path: o.artifacts, version: o.version ?? '' };
  if (o.uri !== undefined) return { kind: 'object-store', uri: o.uri, version: o.version ?? '' };
  return { kind: 'hub', hub: o.hub as ModelHub, id: o.id ?? '', revision: o.revision ?? '' };
}

/** Row-count or fraction (0 < x < 1) of a source held out for a split. */
export type SplitSize = number;

export interface ConvertOptions extends StageCommon {
  /** Dataset sources: names of descriptors under `datasets/<name>/dataset.yaml`. */
  readonly sources: readonly string[];
  /** Values for `{{name}}`-style placeholders in the data (LLaMA-Factory does not fill them). */
  readonly templateVars?: Readonly<Record<string, string>>;
  /** Shuffle seed. @default 42 */
  readonly seed?: number;
  /** Keep at most this many rows per source after validation. @default all rows */
  readonly maxSamples?: number;
  /** Held-out rows per source. @default { validation: 0.02, test: 0.1 } */
  readonly split?: { readonly validation?: SplitSize; readonly test?: SplitSize };
  /** Rows whose estimated token count exceeds this are quarantined; must equal the SFT's `cutoff_len`. */
  readonly cutoffLen: number;
  /** GPTQ calibration set drawn from the sources (or a named text corpus source). */
  readonly calibration?: {
    readonly nsamples: number;
    readonly maxlen: number;
    /** A text-corpus source to draw from instead of the training data. */
    readonly source?: string;
  };
}

/**
 * Every source a convert stage reads: its training sources plus `calibration.source` when that is a
 * corpus used only for calibration (not listed in `sources`, so never in the train/validation/test entries).
 */
export function convertInputSources(options: ConvertOptions): string[] {
  const calibration = options.calibration?.source;
  return calibration === undefined || options.sources.includes(calibration) ? [...options.sources] : [...options.sources, calibration];
}

export interface ConvertOutputs {
  readonly train: Dataset;
  readonly validation: Dataset;
  readonly test: Dataset;
  readonly calibration: Dataset;
}

/**
 * LLaMA-Factory training arguments of an SFT stage, under their LLaMA-Factory names.
 * Defaults are LLaMA-Factory's own.
 */
export interface SftArgs {
  /**
   * `full` trains every weight: the stage's output is a whole model, which `serve` takes as it is
   * (`merge` refuses it; it has no adapter to merge). @default 'lora'
   */
  readonly finetuning_type?: 'lora' | 'full';
  /** Maximum tokens of an example (prompt + response). @default 2048 */
  readonly cutoff_len?: number;
  /** Peak learning rate. @default 5e-5 */
  readonly learning_rate?: number;
  /** @default 3.0 */
  readonly num_train_epochs?: number;
  /** Truncate each dataset to this many examples. @default all */
  readonly max_samples?: number;
  /** Micro-batch per GPU. @default 8 */
  readonly per_device_train_batch_size?: number;
  /** @default 1 */
  readonly gradient_accumulation_steps?: number;
  /** @default 'linear' */
  readonly lr_scheduler_type?:
    | 'linear'
    | 'cosine'
    | 'cosine_with_restarts'
    | 'polynomial'
    | 'constant'
    | 'constant_with_warmup'
    | 'inverse_sqrt'
    | 'reduce_lr_on_plateau'
    | 'cosine_with_min_lr'
    | 'cosine_warmup_with_min_lr'
    | 'warmup_stable_decay';
  /** Gradient clipping norm. @default 1.0 */
  readonly max_grad_norm?: number;
  /** Log every N optimizer steps. @default 500 */
  readonly logging_steps?: number;
  /** Save `checkpoint-N` every N steps: how much work a preempted pod loses. @default 500 */
  readonly save_steps?: number;
  /** Linear warm-up steps (`warmup_ratio` is gone in transformers 5). @default 0 */
  readonly warmup_steps?: number;
  /** Pack several examples per sequence. @default false for sft */
  readonly packing?: boolean;
  /** Experiment trackers; tunepipe always sets it explicitly. @default 'none' */
  readonly report_to?: 'none' | 'all' | 'tensorboard' | 'wandb' | 'mlflow' | 'swanlab' | 'trackio';
  /** bf16 mixed precision. @default false */
  readonly bf16?: boolean;
  /** fp16 mixed precision. @default false */
  readonly fp16?: boolean;
  /** Draw training_loss.png after training. @default false */
  readonly plot_loss?: boolean;
  /** @default false */
  readonly trust_remote_code?: boolean;
  /** torch.distributed timeout, seconds. @default 1800 */
  readonly ddp_timeout?: number;
  /** Count input tokens: gives throughput in the log. @default false */
  readonly include_num_input_tokens_seen?: boolean;
  /** @default 'adamw_torch' */
  readonly optim?: 'adamw_torch' | 'adamw_torch_fused' | 'adamw_8bit' | 'paged_adamw_8bit' | 'adafactor' | 'sgd';
  /** Attention implementation. @default 'auto' */
  readonly flash_attn?: 'auto' | 'disabled' | 'sdpa' | 'fa2' | 'fa3';
  /** Dataset preprocessing processes. @default none (single process) */
  readonly preprocessing_num_workers?: number;
  /** LoRA rank r. @default 8 */
  readonly lora_rank?: number;
  /** LoRA alpha. @default 2 × lora_rank */
  readonly lora_alpha?: number;
  /** @default 0 */
  readonly lora_dropout?: number;
  /** Comma-separated module names, or `all` linear layers. @default 'all' */
  readonly lora_target?: string;
  /** When to evaluate on the validation split. @default 'no' ('steps' when an eval dataset is wired) */
  readonly eval_strategy?: 'no' | 'steps' | 'epoch';
  /** @default logging_steps */
  readonly eval_steps?: number;
  /** @default 8 */
  readonly per_device_eval_batch_size?: number;
  /** Keep at most this many checkpoints. @default all */
  readonly save_total_limit?: number;
  /** @default 42 */
  readonly seed?: number;
  /** Turn off gradient checkpointing (more memory, faster). @default false */
  readonly disable_gradient_checkpointing?: boolean;
}

export interface SftOptions extends Omit<StageCommon, 'resources'> {
  readonly resources?: SftResources;
  /**
   * How the ranks share the work: `ddp` (every rank holds the model), DeepSpeed `zero2`, `zero3`,
   * `zero3-offload`, or PyTorch `fsdp`. @default the planner's choice (`ddp` when it fits)
   */
  readonly strategy?: TrainingStrategy;
  readonly model: BaseModel;
  readonly train: Dataset;
  /** Validation split evaluated during training (`eval_dataset`). */
  readonly eval?: Dataset;
  readonly args?: SftArgs;
  /** Any other LLaMA-Factory training key, checked against its argument table. */
  readonly extraArgs?: Readonly<Record<string, unknown>>;
}

export interface ExportArgs {
  /** Shard size in GB (10^9 bytes), an integer. @default 5 */
  readonly export_size?: number;
  /** `cpu` or `auto` (GPUs via device_map). @default 'cpu' */
  readonly export_device?: 'cpu' | 'auto';
  /** `.bin` instead of `.safetensors`. @default false */
  readonly export_legacy_format?: boolean;
}

export interface MergeOptions extends StageCommon {
  readonly adapter: Adapter;
  readonly args?: ExportArgs;
  /** Must be the adapter's base model; `merge` reads the base from the handle. @default adapter.base */
  readonly base?: BaseModel;
  readonly extraArgs?: Readonly<Record<string, unknown>>;
}

export interface QuantizeArgs extends ExportArgs {
  /** GPTQ bits. */
  readonly export_quantization_bit: 2 | 3 | 4 | 8;
  /** Calibration windows. @default 128 */
  readonly export_quantization_nsamples?: number;
  /** Tokens per calibration window; only rows longer than this are sampled. @default 1024 */
  readonly export_quantization_maxlen?: number;
}

export interface QuantizeOptions extends StageCommon {
  /** A merged model: LLaMA-Factory refuses to quantize with an adapter attached. */
  readonly model: MergedModel;
  /** `text` rows from `convert`'s calibration output. */
  readonly calibration: Dataset;
  readonly args: QuantizeArgs;
  readonly extraArgs?: Readonly<Record<string, unknown>>;
}

export interface GenerationArgs {
  /** @default 1024 */
  readonly max_new_tokens?: number;
  /** @default true */
  readonly do_sample?: boolean;
  /** @default 0.95 */
  readonly temperature?: number;
  /** @default 0.7 */
  readonly top_p?: number;
  /** @default 8 */
  readonly per_device_eval_batch_size?: number;
  /** @default 2048 */
  readonly cutoff_len?: number;
  /** Score at most this many test rows. @default all */
  readonly max_samples?: number;
}

export interface EvaluateOptions extends StageCommon {
  readonly model: EvaluableModel;
  readonly data: Dataset;
  readonly args?: GenerationArgs;
  /** Scores that must hold before `serve` may roll out this pipeline's model. */
  readonly gate?: Gate;
  /** Evaluate stage whose scores are the baseline for `gate` rules relative to a baseline. */
  readonly baseline?: EvalReport;
  readonly extraArgs?: Readonly<Record<string, unknown>>;
}

export interface PredictOptions extends StageCommon {
  readonly model: EvaluableModel;
  /** The rows to answer (usually convert's `test` output). */
  readonly data: Dataset;
  readonly args?: GenerationArgs;
  readonly extraArgs?: Readonly<Record<string, unknown>>;
}

/** `vllm serve` flags, by their long names without `--` (either `max_model_len` or `max-model-len`). */
export type VllmArgs = Readonly<Record<string, string | number | boolean | readonly string[]>>;

export interface ServeOptions extends Omit<StageCommon, 'backoffLimit'> {
  readonly model: ServableModel;
  /** Name clients use for `model` in requests. @default the pipeline name */
  readonly servedModelName?: string;
  /** Typed common flags; anything else goes in `args`. */
  readonly maxModelLen?: number;
  /** @default 0.9 */
  readonly gpuMemoryUtilization?: number;
  readonly maxNumSeqs?: number;
  /** Bearer key required on `/v1/*`, from a Secret. */
  readonly apiKey?: SecretRef;
  /** @default 1 */
  readonly replicas?: number;
  /** @default 8000 */
  readonly port?: number;
  /** Gates that must pass before this model is served. */
  readonly requires?: readonly EvalReport[];
  /**
   * The post-deploy check, a Job run once the new model serves: `/health`, `/v1/models`, the
   * identity prompts must name `expectName`, and `data` is scored through the API.
   */
  readonly verify?: {
    readonly expectName: string;
    /** Test split scored through the served API (BLEU-4 / ROUGE, as LLaMA-Factory scores). */
    readonly data?: Dataset;
    /** @default ['你是谁？', 'Who are you?'] */
    readonly identityPrompts?: readonly string[];
    /** Score at most this many rows. @default all */
    readonly limit?: number;
  };
  readonly args?: VllmArgs;
}

export type StageSpec =
  | { readonly kind: 'fetch-model'; readonly name: string; readonly options: BaseModelOptions }
  | { readonly kind: 'convert'; readonly name: string; readonly options: ConvertOptions }
  | { readonly kind: 'sft'; readonly name: string; readonly options: SftOptions }
  | { readonly kind: 'merge'; readonly name: string; readonly options: MergeOptions }
  | { readonly kind: 'quantize'; readonly name: string; readonly options: QuantizeOptions }
  | { readonly kind: 'evaluate'; readonly name: string; readonly options: EvaluateOptions }
  | { readonly kind: 'predict'; readonly name: string; readonly options: PredictOptions }
  | { readonly kind: 'serve'; readonly name: string; readonly options: ServeOptions };

export interface PipelineMeta {
  /** DNS label; names every object. */
  readonly name: string;
  readonly description?: string;
}

export interface Pipeline extends PipelineMeta {
  /** Stages in definition order, which is a topological order: a handle exists only after its stage. */
  readonly stages: readonly StageSpec[];
}

export interface PipelineBuilder {
  baseModel(options: BaseModelOptions): BaseModel;
  convert(options: ConvertOptions): ConvertOutputs;
  /**
   * `args.finetuning_type: 'full'` written as the literal makes the handle a `FullFineTune`, which
   * `serve` takes; a LoRA adapter (the default) must be merged first.
   */
  sft<F extends FinetuningType = FinetuningType>(options: SftOptions & { readonly args?: { readonly finetuning_type?: F } }): Adapter<F>;
  merge(options: MergeOptions): MergedModel;
  quantize(options: QuantizeOptions): QuantizedModel;
  evaluate(options: EvaluateOptions): EvalReport;
  /** Answers every row of `data` with the model (generated_predictions.jsonl); no scores, no gate. */
  predict(options: PredictOptions): Predictions;
  serve(options: ServeOptions): Endpoint;
}

/**
 * Defines a pipeline. `build` wires stages by handles; nothing is validated here (a handle that is
 * missing or forged is carried as it is, for check() to report) — `check()`
 * reports every problem at once, and `compile()` refuses to emit objects while any remain.
 */
export function definePipeline(meta: PipelineMeta, build: (p: PipelineBuilder) => void): Pipeline {
  const stages: StageSpec[] = [];
  const add = <S extends StageSpec>(spec: S): S => {
    stages.push(spec);
    return spec;
  };

  const builder: PipelineBuilder = {
    baseModel(options) {
      const { name } = add({ kind: 'fetch-model', name: options?.name ?? 'fetch-model', options });
      const source = modelSourceOf(options);
      return {
        kind: 'base-model',
        stage: name,
        source,
        id: source.kind === 'hub' ? source.id : source.kind === 'object-store' ? source.uri : source.path,
        revision: source.kind === 'hub' ? source.revision : source.kind === 'local' ? (source.digest ?? '') : source.version,
        template: options?.template,
        ...(options?.architecture ? { architecture: options?.architecture } : {}),
      };
    },
    convert(options) {
      const { name } = add({ kind: 'convert', name: options?.name ?? 'convert', options });
      const split = (s: Dataset['split'], suffix: string): Dataset => ({
        kind: 'dataset',
        stage: name,
        split: s,
        entries: (Array.isArray(options?.sources) ? options?.sources : []).map((source) => `${source}${suffix}`),
      });
      return {
        train: split('train', ''),
        validation: split('validation', '.validation'),
        test: split('test', '.test'),
        calibration: { kind: 'dataset', stage: name, split: 'calibration', entries: ['calibration'] },
      };
    },
    sft<F extends FinetuningType>(options: SftOptions & { readonly args?: { readonly finetuning_type?: F } }): Adapter<F> {
      const { name } = add({ kind: 'sft', name: options?.name ?? 'sft', options });
      return {
        kind: 'adapter',
        stage: name,
        base: options?.model,
        // Left out, F is the default union and the value 'lora' one of it.
        finetuningType: (options?.args?.finetuning_type ?? 'lora') as F,
        template: options?.model?.template,
      };
    },
    merge(options) {
      const { name } = add({ kind: 'merge', name: options?.name ?? 'merge', options });
      return {
        kind: 'merged-model',
        stage: name,
        base: options?.base ?? options?.adapter?.base,
        adapter: options?.adapter,
        template: options?.adapter?.template,
      };
    },
    quantize(options) {
      const { name } = add({ kind: 'quantize', name: options?.name ?? 'quantize', options });
      return {
        kind: 'quantized-model',
        stage: name,
        base: options?.model?.base,
        source: options?.model,
        method: 'gptq',
        bits: options?.args?.export_quantization_bit,
        template: options?.model?.template,
      };
    },
    evaluate(options) {
      const { name } = add({ kind: 'evaluate', name: options?.name ?? 'evaluate', options });
      return { kind: 'eval-report', stage: name, model: options?.model, data: options?.data };
    },
    predict(options) {
      const { name } = add({ kind: 'predict', name: options?.name ?? 'predict', options });
      return { kind: 'predictions', stage: name, model: options?.model, data: options?.data };
    },
    serve(options) {
      const { name } = add({ kind: 'serve', name: options?.name ?? 'serve', options });
      return {
        kind: 'endpoint',
        stage: name,
        model: options?.model,
        serviceName: `${meta?.name}-${name}`,
        servedModelName: options?.servedModelName ?? meta?.name,
        port: options?.port ?? VLLM_DEFAULT_PORT,
      };
    },
  };

  if (typeof build === 'function') build(builder);
  return { name: meta?.name, ...(meta?.description ? { description: meta.description } : {}), stages };
}
