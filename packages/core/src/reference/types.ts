export type LlamaFactoryValueType = 'bool' | 'int' | 'float' | 'str' | 'dict' | 'any';

export interface LlamaFactoryArg {
  /** The argument dataclass group the key belongs to (TrainingArguments keys are rejected by export). */
  readonly parser: string;
  readonly type: LlamaFactoryValueType;
  /** The Python annotation as written in the source. */
  readonly pyType: string;
  readonly default: unknown;
  /** Whether `llamafactory-cli export` accepts the key. */
  readonly export: boolean;
  readonly choices?: readonly unknown[];
  readonly help?: string;
}

export interface VllmFlag {
  readonly type: string;
  readonly default: unknown;
  readonly choices?: readonly unknown[];
  readonly deprecated?: boolean;
  readonly aliases?: readonly string[];
  readonly help?: string;
  /** Present only on vLLM main after the pinned release line. */
  readonly onlyOnMain?: boolean;
}
