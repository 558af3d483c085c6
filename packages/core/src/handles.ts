import type { ModelArchitecture } from './model/architecture.ts';
import type { ModelSource } from './model/source.ts';

/**
 * Artifacts are typed handles. A stage takes handles and returns one; the `kind` literal makes
 * wrong wiring (an Adapter where a MergedModel is required) a compile-time error.
 */
interface Handle<K extends string> {
  readonly kind: K;
  /** Name of the stage that produces this artifact. */
  readonly stage: string;
}

export type ModelHub = 'huggingface' | 'modelscope';

export interface BaseModel extends Handle<'base-model'> {
  /** Where the weights come from: a hub, a local folder, the artifacts volume or an object store. */
  readonly source: ModelSource;
  /** What names the model: hub repository id (`LLM-Research/Meta-Llama-3-8B-Instruct`), folder or URI. */
  readonly id: string;
  /** What pins its content: hub revision, local content digest (once loaded) or declared version. */
  readonly revision: string;
  /** LLaMA-Factory chat template the model was trained with, e.g. `llama3`. */
  readonly template: string;
  /**
   * As declared. A local folder may leave it out: its config.json is read at plan time
   * (`modelArchitecture()` resolves either).
   */
  readonly architecture?: ModelArchitecture;
}

export type DatasetSplit = 'train' | 'validation' | 'test' | 'calibration';

export interface Dataset extends Handle<'dataset'> {
  readonly split: DatasetSplit;
  /** Entry names in the producing stage's `dataset_info.json`. */
  readonly entries: readonly string[];
}

export type FinetuningType = 'lora' | 'full';

/**
 * What `sft` makes. `F` is the `finetuning_type` its args spelled out: `Adapter<'full'>` when it is
 * the literal `'full'`, which vLLM serves as it is; plain `Adapter` when it was left out or unknown.
 */
export interface Adapter<F extends FinetuningType = FinetuningType> extends Handle<'adapter'> {
  readonly base: BaseModel;
  /** `full`: the folder is a whole model trained from the base, not an adapter on it. */
  readonly finetuningType: F;
  readonly template: string;
}

/** A full fine-tune's output: a whole model of the base's architecture, in the sft stage's folder. */
export type FullFineTune = Adapter<'full'>;

export interface MergedModel extends Handle<'merged-model'> {
  readonly base: BaseModel;
  readonly adapter: Adapter;
  readonly template: string;
}

export interface QuantizedModel extends Handle<'quantized-model'> {
  readonly base: BaseModel;
  readonly source: MergedModel;
  readonly method: 'gptq';
  readonly bits: 2 | 3 | 4 | 8;
  readonly template: string;
}

/** Anything vLLM can serve from the artifacts volume (a LoRA adapter needs a merge first). */
export type ServableModel = MergedModel | QuantizedModel | FullFineTune;
/** Anything `evaluate` can score: an adapter on its base, or a standalone model. */
export type EvaluableModel = BaseModel | Adapter | MergedModel | QuantizedModel;

export interface EvalReport extends Handle<'eval-report'> {
  readonly model: EvaluableModel;
  readonly data: Dataset;
}

export interface Endpoint extends Handle<'endpoint'> {
  readonly model: ServableModel;
  /** Stable in-cluster Service name clients use. */
  readonly serviceName: string;
  readonly servedModelName: string;
  readonly port: number;
}

export type ArtifactHandle =
  | BaseModel
  | Dataset
  | Adapter
  | MergedModel
  | QuantizedModel
  | EvalReport
  | Endpoint;
