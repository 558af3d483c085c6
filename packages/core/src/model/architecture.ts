/** Shape facts of a base model, as in its config.json: what planning and checks need. */
export interface ModelArchitecture {
  /** `model_type` in config.json, e.g. `llama`, `qwen2`. */
  readonly modelType: string;
  /** Total parameters, exactly, as LLaMA-Factory logs `all params`. */
  readonly parameterCount: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  /** Context length the model was trained for (`max_position_embeddings`). */
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  readonly torchDtype: 'bfloat16' | 'float16' | 'float32';
}

/** Meta-Llama-3-8B(-Instruct): config.json as logged in the seed's training run. */
export const LLAMA3_8B: ModelArchitecture = {
  modelType: 'llama',
  parameterCount: 8_030_261_248,
  hiddenSize: 4096,
  intermediateSize: 14336,
  numHiddenLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  headDim: 128,
  vocabSize: 128256,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: false,
  torchDtype: 'bfloat16',
};

/** Qwen2.5-7B-Instruct: config.json of the published checkpoint. */
export const QWEN2_5_7B: ModelArchitecture = {
  modelType: 'qwen2',
  parameterCount: 7_615_616_512,
  hiddenSize: 3584,
  intermediateSize: 18944,
  numHiddenLayers: 28,
  numAttentionHeads: 28,
  numKeyValueHeads: 4,
  headDim: 128,
  vocabSize: 152064,
  maxPositionEmbeddings: 32768,
  tieWordEmbeddings: false,
  torchDtype: 'bfloat16',
};
